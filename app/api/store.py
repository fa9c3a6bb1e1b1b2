"""The long-term store over HTTP, in the Agent Protocol's shape (what `langgraph-sdk`'s `store`
client speaks), plus one route of ours to delete everything under a namespace prefix.

Every namespace here is the caller's own: the owner comes from the transport (`OwnerDep`) and
the service stores items under it, so whatever namespace a client sends, it names part of its
own store and never another owner's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from langgraph.store.base import Item, SearchItem
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import OwnerDep, ResourcesDep
from app.api.schemas import ErrorBody
from app.api.threads import ERRORS as THREAD_ERRORS
from app.services.memories import MAX_DEPTH, MAX_KEY_CHARS, MAX_LABEL_CHARS, MemoryService

router = APIRouter(prefix="/store", tags=["store"])

ERRORS: dict[int | str, dict[str, object]] = {
    **THREAD_ERRORS,
    404: {"model": ErrorBody, "description": "memory_not_found, or long_term_memory_off"},
    422: {"model": ErrorBody, "description": "Invalid input (namespace, key, value size, ttl, query)"},
}

Label = Annotated[str, Field(min_length=1, max_length=MAX_LABEL_CHARS)]
Namespace = Annotated[list[Label], Field(max_length=MAX_DEPTH)]
Key = Annotated[str, Field(min_length=1, max_length=MAX_KEY_CHARS)]


async def get_memories(resources: ResourcesDep) -> MemoryService:
    return resources.memories


MemoriesDep = Annotated[MemoryService, Depends(get_memories)]


class PutItemIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"namespace": ["memories"], "key": "office", "value": {"content": "I cover London"}}]
        },
    )

    namespace: Namespace
    key: Key
    value: dict[str, Any]
    # False: not searchable by meaning; a list: the value's fields to embed; null: the default.
    index: Literal[False] | list[Annotated[str, Field(max_length=MAX_LABEL_CHARS)]] | None = None
    ttl: float | None = Field(default=None, description="Minutes until the item expires (null: never).")


class DeleteItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: Namespace
    key: Key


class SearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace_prefix: Namespace = []
    filter: dict[str, Any] | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=100_000)
    query: str | None = None
    refresh_ttl: bool | None = None


class ListNamespacesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefix: Namespace | None = None
    suffix: Namespace | None = None
    max_depth: int | None = Field(default=None, ge=1, le=MAX_DEPTH)
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=100_000)


class ItemOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    namespace: list[str]
    key: str
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class SearchItemOut(ItemOut):
    score: float | None = None


class SearchOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    items: list[SearchItemOut]


class NamespacesOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    namespaces: list[list[str]]


class DeletedOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    deleted: int


def _item(item: Item) -> ItemOut:
    return ItemOut(
        namespace=list(item.namespace),
        key=item.key,
        value=item.value,
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


def _search_item(item: SearchItem) -> SearchItemOut:
    return SearchItemOut(**_item(item).model_dump(), score=item.score)


@router.put("/items", status_code=204, responses=ERRORS)
async def put_item(body: PutItemIn, owner: OwnerDep, memories: MemoriesDep) -> Response:
    """Create or replace an item of the caller's store."""
    await memories.put(
        owner=owner,
        namespace=body.namespace,
        key=body.key,
        value=body.value,
        index=body.index,
        ttl_minutes=body.ttl,
    )
    return Response(status_code=204)


@router.get("/items", responses=ERRORS)
async def get_item(
    owner: OwnerDep,
    memories: MemoriesDep,
    key: Annotated[str, Query(min_length=1, max_length=MAX_KEY_CHARS)],
    namespace: Annotated[str, Query(max_length=MAX_DEPTH * (MAX_LABEL_CHARS + 1))] = "",
    refresh_ttl: bool | None = None,
) -> ItemOut:
    """One item; `namespace` is its labels joined with '.' (as the SDK sends it)."""
    labels = namespace.split(".") if namespace else []
    return _item(await memories.get(owner=owner, namespace=labels, key=key, refresh_ttl=refresh_ttl))


@router.delete("/items", status_code=204, responses=ERRORS)
async def delete_item(body: DeleteItemIn, owner: OwnerDep, memories: MemoriesDep) -> Response:
    """Delete one item (nothing happens if there is none)."""
    await memories.delete(owner=owner, namespace=body.namespace, key=body.key)
    return Response(status_code=204)


@router.post("/items/search", responses=ERRORS)
async def search_items(body: SearchIn, owner: OwnerDep, memories: MemoriesDep) -> SearchOut:
    """Items under a namespace prefix, by `filter` on their value and, with `query`, by meaning
    (most similar first, each with its `score`)."""
    found = await memories.search(owner=owner, **body.model_dump())
    return SearchOut(items=[_search_item(i) for i in found])


@router.post("/namespaces", responses=ERRORS)
async def list_namespaces(body: ListNamespacesIn, owner: OwnerDep, memories: MemoriesDep) -> NamespacesOut:
    """The caller's namespaces, optionally by prefix and suffix ('*' matches one label)."""
    found = await memories.list_namespaces(owner=owner, **body.model_dump())
    return NamespacesOut(namespaces=[list(n) for n in found])


@router.delete("/namespaces", responses=ERRORS)
async def delete_namespace(
    owner: OwnerDep,
    memories: MemoriesDep,
    prefix: Annotated[str, Query(max_length=MAX_DEPTH * (MAX_LABEL_CHARS + 1))] = "",
) -> DeletedOut:
    """Delete every item under `prefix` (labels joined with '.'); no prefix: all of the caller's
    items (a right-to-be-forgotten request)."""
    labels = prefix.split(".") if prefix else []
    return DeletedOut(deleted=await memories.delete_prefix(owner=owner, prefix=labels))

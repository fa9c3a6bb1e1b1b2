"""The long-term store as a service: the store routes' checks, on the caller's own memories.

The owner is a keyword argument taken from the transport; every namespace here is relative to
it (app/memory/longterm.py adds and removes the owner's prefix), so a namespace in a request
can only ever name part of the caller's own store. Bad input is an `InvalidInput` (422)
before anything reaches the store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langgraph.store.base import Item, SearchItem

from app.errors import InvalidInput, LongTermMemoryOff, MemoryNotFound
from app.memory.longterm import ScopedStore
from app.services.memory_setup import LongTermMemory
from app.settings import MemorySettings

MAX_LABEL_CHARS = 128
MAX_DEPTH = 10
MAX_KEY_CHARS = 256
MAX_QUERY_CHARS = 2000
MAX_TTL_MINUTES = 10 * 365 * 24 * 60
FILTER_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})


def check_namespace(
    namespace: Sequence[str], *, what: str = "namespace", empty_ok: bool = False
) -> tuple[str, ...]:
    if not namespace and not empty_ok:
        raise InvalidInput(f"`{what}` must have at least one label.")
    if len(namespace) > MAX_DEPTH:
        raise InvalidInput(f"`{what}` has {len(namespace)} labels; at most {MAX_DEPTH} are allowed.")
    for label in namespace:
        if not isinstance(label, str) or not label:
            raise InvalidInput(f"`{what}` labels must be non-empty strings.")
        if len(label) > MAX_LABEL_CHARS:
            raise InvalidInput(f"`{what}` labels are at most {MAX_LABEL_CHARS} characters.")
        if "." in label or "\x00" in label:
            raise InvalidInput(f"`{what}` labels cannot contain '.' or NUL characters.")
    return tuple(namespace)


def _check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_CHARS or "\x00" in key:
        raise InvalidInput(f"`key` must be 1 to {MAX_KEY_CHARS} characters, without NUL.")
    return key


def _check_filter(filter_: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not filter_:
        return None
    for field, condition in filter_.items():
        if len(field) > MAX_LABEL_CHARS or "\x00" in field:
            raise InvalidInput(f"`filter` fields are at most {MAX_LABEL_CHARS} characters, without NUL.")
        if isinstance(condition, dict):
            unknown = set(condition) - FILTER_OPERATORS
            if unknown:
                raise InvalidInput(
                    f"`filter` operators must be among {sorted(FILTER_OPERATORS)}; got {sorted(unknown)[:3]}."
                )
    return dict(filter_)


class MemoryService:
    def __init__(self, memory: LongTermMemory | None, settings: MemorySettings) -> None:
        self._memory = memory
        self._settings = settings

    def _store(self, owner: str) -> ScopedStore:
        if self._memory is None:
            raise LongTermMemoryOff()
        return self._memory.store.for_owner(owner)

    async def put(
        self,
        *,
        owner: str,
        namespace: Sequence[str],
        key: str,
        value: Mapping[str, Any],
        index: bool | list[str] | None,
        ttl_minutes: float | None,
    ) -> None:
        store = self._store(owner)
        size = len(json.dumps(value, ensure_ascii=False).encode())
        if size > self._settings.max_value_bytes:
            raise InvalidInput(
                f"`value` is {size} bytes as JSON; at most {self._settings.max_value_bytes}"
                " (MEMORY_MAX_VALUE_BYTES) are allowed."
            )
        if ttl_minutes is not None and not 0 < ttl_minutes <= MAX_TTL_MINUTES:
            raise InvalidInput(f"`ttl` is in minutes, above 0 and at most {MAX_TTL_MINUTES}.")
        if index is True:
            index = None
        kwargs: dict[str, Any] = {} if ttl_minutes is None else {"ttl": ttl_minutes}
        await store.aput(check_namespace(namespace), _check_key(key), dict(value), index=index, **kwargs)

    async def get(self, *, owner: str, namespace: Sequence[str], key: str, refresh_ttl: bool | None) -> Item:
        item = await self._store(owner).aget(
            check_namespace(namespace), _check_key(key), refresh_ttl=refresh_ttl
        )
        if item is None:
            raise MemoryNotFound(f"No item {key!r} in namespace {list(namespace)!r}.")
        return item

    async def delete(self, *, owner: str, namespace: Sequence[str], key: str) -> None:
        await self._store(owner).adelete(check_namespace(namespace), _check_key(key))

    async def search(
        self,
        *,
        owner: str,
        namespace_prefix: Sequence[str],
        filter: Mapping[str, Any] | None,
        limit: int,
        offset: int,
        query: str | None,
        refresh_ttl: bool | None,
    ) -> list[SearchItem]:
        store = self._store(owner)
        if query is not None:
            if len(query) > MAX_QUERY_CHARS:
                raise InvalidInput(f"`query` is at most {MAX_QUERY_CHARS} characters.")
            if not store.semantic:
                raise InvalidInput(
                    "Searching by `query` needs an embedder and none is configured"
                    " (EMBEDDING_PROVIDER=none); search by `filter` or set EMBEDDING_PROVIDER."
                )
        return await store.asearch(
            check_namespace(namespace_prefix, what="namespace_prefix", empty_ok=True),
            query=query or None,
            filter=_check_filter(filter),
            limit=limit,
            offset=offset,
            refresh_ttl=refresh_ttl,
        )

    async def list_namespaces(
        self,
        *,
        owner: str,
        prefix: Sequence[str] | None,
        suffix: Sequence[str] | None,
        max_depth: int | None,
        limit: int,
        offset: int,
    ) -> list[tuple[str, ...]]:
        return await self._store(owner).alist_namespaces(
            prefix=check_namespace(prefix or (), what="prefix", empty_ok=True) or None,
            suffix=check_namespace(suffix or (), what="suffix", empty_ok=True) or None,
            max_depth=max_depth,
            limit=limit,
            offset=offset,
        )

    async def delete_prefix(self, *, owner: str, prefix: Sequence[str]) -> int:
        """Delete every item of the caller under `prefix` (all of them for an empty prefix)."""
        if self._memory is None:
            raise LongTermMemoryOff()
        return await self._memory.store.delete_prefix(
            owner=owner, prefix=check_namespace(prefix, what="prefix", empty_ok=True)
        )

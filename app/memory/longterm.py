"""Long-term memory: LangGraph's `AsyncPostgresStore` on the shared pool, scoped per owner.

The stock store keeps its schema (`store`, `store_vectors`, an HNSW index) and its SQL for
get/put/search/list; what it lacks is wrapped here:

* per-owner scoping: every namespace a caller sends is stored under `("owners", <owner>)`, and
  that prefix is added on the way in and removed on the way out, so no namespace a client can
  send (wildcards, empty prefixes, labels that look like an owner) reaches another owner's
  items. The owner comes from the transport (HTTP) or the run config (a graph's nodes), never
  from the namespace itself;
* pool sharing: the store gets the process's pool (its `_cursor` borrows one connection per call
  with its own dict-row cursor, so the pool's tuple rows are untouched); its own `setup()` is not
  used: the tables come from our migrations and app/memory/longterm_schema.py;
* TTL: the store's per-item `ttl` and default TTL (minutes, as in the Agent Protocol), swept by
  the service's sweeper in batches (`sweep_expired`) instead of the store's own background task;
* delete-all under a namespace prefix (`delete_prefix`), for right-to-be-forgotten requests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Any, cast
from urllib.parse import quote, unquote

from langchain_core.embeddings import Embeddings
from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    validate_op_namespace,
)
from langgraph.store.postgres.aio import AsyncPostgresStore
from langgraph.store.postgres.base import PostgresIndexConfig

from app.memory.pool import Pool

ROOT = "owners"
# The prefix labels this module adds in front of a caller's namespace.
_SCOPE_DEPTH = 2


def owner_label(owner: str) -> str:
    """The owner as one namespace label: percent-encoded, so an owner with '.' (an email) stays
    one label and no character of it acts as a LIKE or regex pattern."""
    return quote(owner, safe="").replace(".", "%2E").replace("*", "%2A")


def owner_of_label(label: str) -> str:
    return unquote(label)


def _under(path: str) -> str:
    """A LIKE pattern for every namespace strictly under the dot-joined `path`."""
    return path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ".%"


def _scope_item(item: Item | None) -> Item | None:
    if item is None:
        return None
    namespace = item.namespace[_SCOPE_DEPTH:]
    if isinstance(item, SearchItem):
        return SearchItem(namespace, item.key, item.value, item.created_at, item.updated_at, item.score)
    return Item(
        value=item.value,
        key=item.key,
        namespace=namespace,
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


class ScopedStore(BaseStore):
    """A `BaseStore` over one owner's part of the shared store; `owner` is asked on every call
    (for a graph, the owner of the run being executed)."""

    supports_ttl = True

    def __init__(self, inner: AsyncPostgresStore, owner: Callable[[], str]) -> None:
        self._inner = inner
        self._owner = owner
        self.ttl_config = inner.ttl_config

    @property
    def semantic(self) -> bool:
        """Whether `query` searches by meaning (an embedder is configured)."""
        return self._inner.embeddings is not None

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        raise TypeError("the long-term store is async only: use aget/aput/asearch/adelete")

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        prefix = (ROOT, owner_label(self._owner()))
        ops = list(ops)
        for op in ops:
            # The owner prefix already keeps every label inside the owner's part; this keeps a
            # label with '.' from naming a deeper namespace than the one it claims to be.
            validate_op_namespace(op)
        results = await self._inner.abatch([_scoped(op, prefix) for op in ops])
        return [_unscoped(result) for result in results]


def _scoped(op: Op, prefix: tuple[str, str]) -> Op:
    if isinstance(op, GetOp):
        return op._replace(namespace=(*prefix, *op.namespace))
    if isinstance(op, PutOp):
        return op._replace(namespace=(*prefix, *op.namespace))
    if isinstance(op, SearchOp):
        return op._replace(namespace_prefix=(*prefix, *op.namespace_prefix))
    if isinstance(op, ListNamespacesOp):
        conditions: list[MatchCondition] = []
        for condition in op.match_conditions or ():
            if condition.match_type == "prefix":
                conditions.append(MatchCondition("prefix", (*prefix, *condition.path)))
            else:
                conditions.append(condition)
        if not any(c.match_type == "prefix" for c in conditions):
            conditions.append(MatchCondition("prefix", prefix))
        depth = None if op.max_depth is None else op.max_depth + _SCOPE_DEPTH
        return op._replace(match_conditions=tuple(conditions), max_depth=depth)
    raise TypeError(f"unknown store operation {type(op).__name__}")


def _unscoped(result: Result) -> Result:
    if isinstance(result, Item):
        return _scope_item(result)
    if isinstance(result, list):
        if all(isinstance(r, Item) for r in result):
            return [cast(SearchItem, _scope_item(cast(Item, r))) for r in result]
        return [tuple(ns[_SCOPE_DEPTH:]) for ns in cast(list[tuple[str, ...]], result)]
    return result


class LongTermStore:
    """The process's long-term store: the stock store on the pool, plus what it lacks (above)."""

    def __init__(
        self,
        pool: Pool,
        *,
        embeddings: Embeddings | None,
        dims: int,
        default_ttl_minutes: float | None,
    ) -> None:
        index: PostgresIndexConfig | None = None
        if embeddings is not None:
            # Only the memory's text is embedded, so a value's other fields do not blur the match.
            index = {"dims": dims, "embed": embeddings, "fields": ["content"]}
            index["distance_type"] = "cosine"
        # Expired items are hidden at once, not only after the next sweep deletes them.
        ttl: TTLConfig = {"refresh_on_read": False, "default_ttl": default_ttl_minutes, "omit_expired": True}
        # The store's connection type is a dict-row pool; ours yields tuples, which the store never
        # sees: it opens every cursor with row_factory=dict_row.
        self.store = AsyncPostgresStore(cast(Any, pool), index=index, ttl=ttl)
        self._pool = pool

    def for_owner(self, owner: str) -> ScopedStore:
        return ScopedStore(self.store, lambda: owner)

    def scoped(self, owner: Callable[[], str]) -> ScopedStore:
        return ScopedStore(self.store, owner)

    async def delete_prefix(self, *, owner: str, prefix: tuple[str, ...]) -> int:
        """Delete every item of `owner` under `prefix` (all of them for an empty prefix)."""
        path = ".".join((ROOT, owner_label(owner), *prefix))
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                r"DELETE FROM store WHERE prefix = %s OR prefix LIKE %s ESCAPE '\'", (path, _under(path))
            )
            return cur.rowcount

    async def sweep_expired(self, *, batch: int) -> int:
        """Delete expired items, `batch` at a time (their vectors go with them: ON DELETE CASCADE)."""
        total = 0
        while True:
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "DELETE FROM store WHERE (prefix, key) IN ("
                    "  SELECT prefix, key FROM store WHERE expires_at < now()"
                    "  LIMIT %s FOR UPDATE SKIP LOCKED)",
                    (batch,),
                )
                deleted = cur.rowcount
            total += deleted
            if deleted < batch:
                return total

    async def close(self) -> None:
        # AsyncBatchedBaseStore starts a queue task at construction; we call `abatch` directly and
        # never use it, but it must not outlive the loop (a "Task was destroyed" warning).
        task = cast(asyncio.Task[None] | None, getattr(self.store, "_task", None))
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

"""The thread registry: who owns a thread, its title and metadata, counters and run lease.

Listing and ownership checks read only this table, never the checkpoint tables. A thread is
identified by (owner, thread_id): two owners may use the same thread id without ever seeing each
other. The checkpointer keys a thread by `thread_key`, a random UUID, so a thread deleted and
created again under the same id starts from nothing, and a turn still running on the deleted one
cannot write into the new one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from app.memory.pool import Pool

_COLUMNS = (
    "owner, thread_id, thread_key, title, metadata, created_at, updated_at, last_activity_at,"
    " message_count, turn_count, head_checkpoint_id, lease_run_id, lease_expires_at,"
    " ttl_seconds, compacted_at, branch, branch_count, graph_id, interrupts, interrupted_at"
)


def lease_free(alias: str = "") -> str:
    """The one spelling of "no run holds this thread": no lease, or an expired one. One clock
    (`clock_timestamp()`, as the lease is written), so a long transaction never sees it stale."""
    t = f"{alias}." if alias else ""
    return f"({t}lease_run_id IS NULL OR {t}lease_expires_at < clock_timestamp())"


# What a thread search may be ordered by, and the column each means.
SEARCH_ORDERS = {
    "thread_id": "thread_id",
    "created_at": "created_at",
    "updated_at": "last_activity_at",
}

# The checkpointer's tables (langgraph-checkpoint-postgres schema), keyed by our thread_key.
CHECKPOINT_TABLES = ("checkpoint_writes", "checkpoint_blobs", "checkpoints")
# What a copied thread takes of them, beside its new thread_id.
CHECKPOINT_COPY_COLUMNS = {
    "checkpoints": "checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata",
    "checkpoint_blobs": "checkpoint_ns, channel, version, type, blob",
    "checkpoint_writes": "checkpoint_ns, checkpoint_id, task_id, idx, channel, type, blob, task_path",
}


async def purge_checkpoints(conn: AsyncConnection[Any], thread_keys: list[str]) -> None:
    """Delete every checkpoint, write and blob of these threads (inside the caller's transaction)."""
    for table in CHECKPOINT_TABLES:
        await conn.execute(f"DELETE FROM {table} WHERE thread_id = ANY(%s)", (thread_keys,))


@dataclass(frozen=True)
class ThreadRecord:
    owner: str
    thread_id: str
    thread_key: uuid.UUID
    title: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime
    message_count: int
    turn_count: int
    head_checkpoint_id: str | None
    lease_run_id: uuid.UUID | None
    lease_expires_at: datetime | None
    ttl_seconds: int | None
    compacted_at: datetime | None
    branch: int  # the transcript branch the head is on
    branch_count: int
    graph_id: str | None  # the graph its turns run on (None: none ran yet)
    # The interrupts its last turn paused on ([{"id", "value"}]; None: not waiting), and since when.
    interrupts: list[dict[str, Any]] | None = None
    interrupted_at: datetime | None = None

    def status_at(self, now: datetime) -> Literal["idle", "busy", "interrupted"]:
        """The Agent Protocol's thread status: a turn runs, or one waits for a decision."""
        if self.busy_at(now):
            return "busy"
        return "interrupted" if self.interrupts else "idle"

    def busy_at(self, now: datetime) -> bool:
        return (
            self.lease_run_id is not None
            and self.lease_expires_at is not None
            and self.lease_expires_at > now
        )


@dataclass(frozen=True)
class ThreadQuery:
    """Threads whose metadata contains `metadata`, in `status` (busy, idle, interrupted; None:
    any), a page of them ordered by `order_by` (one of SEARCH_ORDERS)."""

    metadata: dict[str, Any]
    status: Literal["idle", "busy", "interrupted"] | None
    limit: int
    offset: int
    order_by: str
    descending: bool


@dataclass(frozen=True)
class ThreadPage:
    threads: list[ThreadRecord]
    next_cursor: tuple[datetime, str] | None


class ThreadRegistry:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def create(
        self,
        owner: str,
        thread_id: str,
        *,
        title: str | None,
        metadata: dict[str, Any],
        ttl_seconds: int | None = None,
    ) -> ThreadRecord | None:
        """Insert a new thread; None if this owner already has one with that id."""
        async with self._pool.connection() as conn:
            return await self._insert(
                conn, owner, thread_id, title=title, metadata=metadata, ttl_seconds=ttl_seconds
            )

    async def ensure(self, owner: str, thread_id: str) -> ThreadRecord:
        """The thread, created empty if this owner has none with that id (race-safe)."""
        async with self._pool.connection() as conn:
            record = await self._select(conn, owner, thread_id)
            if record is None:
                record = await self._insert(conn, owner, thread_id, title=None, metadata={})
            if record is None:  # created concurrently by another request
                record = await self._select(conn, owner, thread_id)
            assert record is not None
            return record

    async def get(self, owner: str, thread_id: str) -> ThreadRecord | None:
        async with self._pool.connection() as conn:
            return await self._select(conn, owner, thread_id)

    async def page(
        self,
        owner: str,
        *,
        limit: int,
        before: tuple[datetime, str] | None,
        title_contains: str | None = None,
    ) -> ThreadPage:
        """Newest activity first; `before` is the (last_activity_at, thread_id) of the last row seen;
        `title_contains` keeps the threads whose title holds it (any case) or whose id it is."""
        # Only the conditions that apply, so the plain listing keeps its index scan.
        where = ["owner = %(owner)s"]
        params: dict[str, object] = {"owner": owner, "limit": limit + 1}
        if before is not None:
            where.append("(last_activity_at, thread_id) < (%(after)s, %(id)s)")
            params.update(after=before[0], id=before[1])
        if title_contains is not None:
            escaped = title_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append("(title ILIKE %(pattern)s OR thread_id = %(q)s)")
            params.update(pattern=f"%{escaped}%", q=title_contains)
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(ThreadRecord))
            await cur.execute(
                f"SELECT {_COLUMNS} FROM lma_threads WHERE {' AND '.join(where)}"
                " ORDER BY last_activity_at DESC, thread_id DESC LIMIT %(limit)s",
                params,
            )
        rows = await cur.fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = (rows[-1].last_activity_at, rows[-1].thread_id) if more and rows else None
        return ThreadPage(threads=rows, next_cursor=cursor)

    async def search(self, owner: str, query: ThreadQuery) -> list[ThreadRecord]:
        """The owner's threads that match `query`."""
        metadata, limit, offset = query.metadata, query.limit, query.offset
        column = SEARCH_ORDERS[query.order_by]
        direction = "DESC" if query.descending else "ASC"
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(ThreadRecord))
            await cur.execute(
                f"SELECT {_COLUMNS} FROM lma_threads WHERE owner = %(owner)s AND metadata @> %(metadata)s"
                "  AND CASE %(status)s::text"
                f"    WHEN 'busy' THEN NOT {lease_free()}"
                f"    WHEN 'interrupted' THEN {lease_free()} AND interrupts IS NOT NULL"
                f"    WHEN 'idle' THEN {lease_free()} AND interrupts IS NULL"
                "    ELSE true END"
                f" ORDER BY {column} {direction}, thread_id {direction} LIMIT %(limit)s OFFSET %(offset)s",
                {
                    "owner": owner,
                    "metadata": Jsonb(metadata),
                    "status": query.status,
                    "limit": limit,
                    "offset": offset,
                },
            )
            return await cur.fetchall()

    async def update(
        self,
        owner: str,
        thread_id: str,
        *,
        title: str | None,
        set_title: bool,
        metadata: dict[str, Any] | None,
        ttl_seconds: int | None = None,
        set_ttl: bool = False,
    ) -> ThreadRecord | None:
        """Change the title (when `set_title`, None clears it), merge metadata keys, and/or set
        the thread's TTL (when `set_ttl`, None means the default)."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(ThreadRecord))
            await cur.execute(
                "UPDATE lma_threads SET"
                " title = CASE WHEN %(set_title)s THEN %(title)s ELSE title END,"
                " metadata = metadata || %(metadata)s, updated_at = now(),"
                " ttl_seconds = CASE WHEN %(set_ttl)s THEN %(ttl)s ELSE ttl_seconds END"
                f" WHERE owner = %(owner)s AND thread_id = %(thread_id)s RETURNING {_COLUMNS}",
                {
                    "set_title": set_title,
                    "title": title,
                    "metadata": Jsonb(metadata or {}),
                    "set_ttl": set_ttl,
                    "ttl": ttl_seconds,
                    "owner": owner,
                    "thread_id": thread_id,
                },
            )
            return await cur.fetchone()

    async def copy(self, owner: str, thread_id: str, new_thread_id: str) -> ThreadRecord | None:
        """A new thread with everything of this one (transcript on every branch, completed
        runs, checkpoints), in one transaction; None if there is no such thread or it runs a
        turn right now. The copy's runs get new ids (its transcript rows follow them)."""
        new_key = uuid.uuid4()
        params = {"owner": owner, "thread_id": thread_id, "new_id": new_thread_id, "new_key": new_key}
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT thread_key FROM lma_threads WHERE owner = %(owner)s AND thread_id = %(thread_id)s"
                f" AND {lease_free()} FOR SHARE",
                params,
            )
            row = await cur.fetchone()
            if row is None:
                return None
            params["key"] = row[0]
            params["key_text"] = str(row[0])
            params["new_text"] = str(new_key)
            inserted = conn.cursor(row_factory=class_row(ThreadRecord))
            await inserted.execute(
                "INSERT INTO lma_threads (owner, thread_id, thread_key, title, metadata, message_count,"
                "  turn_count, head_checkpoint_id, ttl_seconds, branch, branch_count, graph_id,"
                "  interrupts, interrupted_at)"
                " SELECT owner, %(new_id)s, %(new_key)s, title, metadata, message_count, turn_count,"
                "  head_checkpoint_id, ttl_seconds, branch, branch_count, graph_id, interrupts,"
                "  interrupted_at"
                " FROM lma_threads WHERE thread_key = %(key)s"
                f" ON CONFLICT (owner, thread_id) DO NOTHING RETURNING {_COLUMNS}",
                params,
            )
            record = await inserted.fetchone()
            if record is None:
                return None  # the new id is taken (a collision of random ids: the caller retries)
            # One statement: the new run ids are drawn once and used by both inserts.
            await conn.execute(
                "WITH ids AS MATERIALIZED ("
                "  SELECT run_id AS old_id, gen_random_uuid() AS new_id FROM lma_runs"
                "  WHERE thread_key = %(key)s AND status = 'success'"
                "), runs AS ("
                "  INSERT INTO lma_runs (run_id, thread_key, status, parent_checkpoint_id, checkpoint_id,"
                "    message_count, error_code, started_at, finished_at, branch, assistant_id, metadata,"
                "    multitask_strategy, created_at, updated_at, start_seq)"
                "  SELECT ids.new_id, %(new_key)s, r.status, r.parent_checkpoint_id, r.checkpoint_id,"
                "    r.message_count, r.error_code, r.started_at, r.finished_at, r.branch, r.assistant_id,"
                "    r.metadata, r.multitask_strategy, r.created_at, r.updated_at, r.start_seq"
                "  FROM lma_runs r JOIN ids ON ids.old_id = r.run_id"
                ") INSERT INTO lma_messages (thread_key, branch, seq, message_id, run_id, role, content,"
                "  name, tool_calls, tool_call_id, created_at)"
                " SELECT %(new_key)s, x.branch, x.seq, x.message_id, coalesce(ids.new_id, x.run_id), x.role,"
                "  x.content, x.name, x.tool_calls, x.tool_call_id, x.created_at"
                " FROM lma_messages x LEFT JOIN ids ON ids.old_id = x.run_id"
                " WHERE x.thread_key = %(key)s",
                params,
            )
            for table, columns in CHECKPOINT_COPY_COLUMNS.items():
                await conn.execute(
                    f"INSERT INTO {table} (thread_id, {columns})"
                    f" SELECT %(new_text)s, {columns} FROM {table} WHERE thread_id = %(key_text)s",
                    params,
                )
            return record

    async def delete(self, owner: str, thread_id: str) -> bool:
        """Remove the thread with its runs, transcript, checkpoints, writes and blobs, atomically."""
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "DELETE FROM lma_threads WHERE owner = %s AND thread_id = %s RETURNING thread_key",
                (owner, thread_id),
            )
            row = await cur.fetchone()
            if row is None:
                return False
            await purge_checkpoints(conn, [str(row[0])])
            return True

    @staticmethod
    async def _select(conn: AsyncConnection[Any], owner: str, thread_id: str) -> ThreadRecord | None:
        cur = conn.cursor(row_factory=class_row(ThreadRecord))
        await cur.execute(
            f"SELECT {_COLUMNS} FROM lma_threads WHERE owner = %s AND thread_id = %s",
            (owner, thread_id),
        )
        return await cur.fetchone()

    @staticmethod
    async def _insert(
        conn: AsyncConnection[Any],
        owner: str,
        thread_id: str,
        *,
        title: str | None,
        metadata: dict[str, Any],
        ttl_seconds: int | None = None,
    ) -> ThreadRecord | None:
        cur = conn.cursor(row_factory=class_row(ThreadRecord))
        await cur.execute(
            "INSERT INTO lma_threads (owner, thread_id, thread_key, title, metadata, ttl_seconds)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (owner, thread_id) DO NOTHING"
            f" RETURNING {_COLUMNS}",
            (owner, thread_id, uuid.uuid4(), title, Jsonb(metadata), ttl_seconds),
        )
        return await cur.fetchone()

"""Runs: the run rows (the Agent Protocol's Run), the queue of pending runs, cancellation, and
the reaper of runs whose process died.

Statuses: `pending` (queued behind another run of its thread), `running`, then one of
`success`, `error`, `timeout`, `interrupted` (cancelled). A run is finished when `finished_at`
is set: then its event log is closed. A cancelled run is `interrupted` at once, but finished
only when its executor has stopped (or is known dead), so "cancel and wait" means stopped.

Liveness: the executing process renews the thread's lease and the run's `heartbeat_at`
together (`app.memory.execution`); a run whose heartbeat is older than the lease period is dead,
whatever the reason (SIGKILL, OOM, a lost node), and the reaper finishes it as `worker_lost`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from app.memory.pool import Pool
from app.memory.run_events import CHANNEL, CLOSE_LOG_SQL
from app.memory.threads import ThreadRecord

ACTIVE = ("pending", "running")
# A fork from before the thread's first turn: a new branch that starts empty.
FROM_START = "~start"


@dataclass(frozen=True)
class RunRecord:
    run_id: uuid.UUID
    thread_key: uuid.UUID
    thread_id: str
    assistant_id: str | None
    status: str
    metadata: dict[str, Any]
    multitask_strategy: str
    idempotency_key: str | None
    request_hash: str | None
    input: dict[str, Any] | None
    parent_checkpoint_id: str | None
    checkpoint_id: str | None
    branch: int
    start_seq: int | None
    message_count: int | None
    error_code: str | None
    error_message: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    interrupts: list[dict[str, Any]] | None = None  # what the turn paused on (it succeeded)


@dataclass(frozen=True)
class TurnStart:
    """Where a turn starts: a checkpoint, and the transcript branch and position it ends."""

    checkpoint_id: str | None
    branch: int
    seq: int
    fork: bool = False


@dataclass(frozen=True)
class RunQuery:
    """A page of a thread's runs: newest first, optionally of some statuses; `before` is the
    (created_at, run_id) of the last run seen (a cursor), `offset` skips that many."""

    statuses: Sequence[str] | None = None
    limit: int = 10
    offset: int = 0
    before: tuple[datetime, uuid.UUID] | None = None


@dataclass(frozen=True)
class NewRun:
    """What a run row is created with (by a claim or by enqueueing)."""

    run_id: uuid.UUID
    assistant_id: str
    graph: str  # the served graph's name; a thread's first run binds the thread to it
    metadata: dict[str, Any]
    multitask_strategy: str
    idempotency_key: str | None
    request_hash: str
    input: dict[str, Any]
    checkpoint_id: str | None
    after_seconds: float | None = None  # a scheduled run: it starts no earlier than this

    def params(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "assistant": self.assistant_id,
            "graph": self.graph,
            "run_metadata": Jsonb(self.metadata),
            "strategy": self.multitask_strategy,
            "key": self.idempotency_key,
            "hash": self.request_hash,
            "input": Jsonb(self.input),
            "from_checkpoint": self.checkpoint_id,
            "after": self.after_seconds,
        }


RUN_COLUMNS = (
    "r.run_id, r.thread_key, t.thread_id, r.assistant_id, r.status, r.metadata, r.multitask_strategy,"
    " r.idempotency_key, r.request_hash, r.input, r.parent_checkpoint_id, r.checkpoint_id, r.branch,"
    " r.start_seq, r.message_count, r.error_code, r.error_message, r.created_at, r.updated_at,"
    " r.started_at, r.finished_at, r.interrupts"
)
_FROM = " FROM lma_runs r JOIN lma_threads t ON t.thread_key = r.thread_key"

# The statement that marks dead runs finished: it frees their leases; the caller closes their logs.
_REAP = (
    "WITH dead AS ("
    "  SELECT r.run_id, r.thread_key FROM lma_runs r"
    "  WHERE r.finished_at IS NULL AND r.status <> 'pending'"
    "    AND (r.heartbeat_at IS NULL"
    "      OR r.heartbeat_at < clock_timestamp() - make_interval(secs => %(lease)s))"
    "    AND (%(thread)s::uuid IS NULL OR r.thread_key = %(thread)s)"
    "  ORDER BY r.heartbeat_at NULLS FIRST LIMIT 100 FOR UPDATE SKIP LOCKED"
    "), finished AS ("
    "  UPDATE lma_runs r SET finished_at = now(), updated_at = now(), idempotency_key = NULL,"
    "    status = CASE WHEN r.status = 'running' THEN 'error' ELSE r.status END,"
    "    error_code = CASE WHEN r.status = 'running' THEN 'worker_lost' ELSE r.error_code END,"
    "    error_message = CASE WHEN r.status = 'running' THEN %(message)s ELSE r.error_message END"
    "  FROM dead WHERE r.run_id = dead.run_id RETURNING r.run_id"
    "), freed AS ("
    "  UPDATE lma_threads t SET lease_run_id = NULL, lease_expires_at = NULL"
    "  FROM dead WHERE t.thread_key = dead.thread_key AND t.lease_run_id = dead.run_id"
    "  RETURNING t.thread_key"
    ") SELECT dead.run_id, dead.thread_key FROM dead"
)
WORKER_LOST = "The process running this turn stopped (crash, kill or lost node); nothing was saved."


async def drop_partial_checkpoints(
    conn: AsyncConnection[Any], thread_key: uuid.UUID, run_id: uuid.UUID
) -> None:
    """Whatever a run that did not complete wrote to the checkpointer's tables."""
    await conn.execute(
        "DELETE FROM checkpoint_writes w USING checkpoints c"
        " WHERE c.thread_id = %s AND c.metadata->>'run_id' = %s"
        " AND w.thread_id = c.thread_id AND w.checkpoint_id = c.checkpoint_id",
        (str(thread_key), str(run_id)),
    )
    await conn.execute(
        "DELETE FROM checkpoints WHERE thread_id = %s AND metadata->>'run_id' = %s",
        (str(thread_key), str(run_id)),
    )


async def close_logs(conn: AsyncConnection[Any], run_ids: Sequence[uuid.UUID]) -> None:
    """Write the terminal event of runs no executor will finish, and wake their joiners."""
    if not run_ids:
        return
    ids = list(run_ids)
    await conn.execute(CLOSE_LOG_SQL, {"closing": ids})
    await conn.execute(
        "SELECT pg_notify(%s, 'e ' || id::text || ' 0') FROM unnest(%s::uuid[]) AS id", (CHANNEL, ids)
    )


class RunStore:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def watch(self, run_id: uuid.UUID) -> None:
        """Ask for notifications of the run's events (a joiner follows its log). An update of
        the run row, which every statement writing its events locks: one that writes after it
        sees the mark and notifies, one that locked the row first commits first, so a read
        after this finds its events. A finished run's log is whole: it needs no mark."""
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE lma_runs SET watched = true"
                " WHERE run_id = %s AND NOT watched AND finished_at IS NULL",
                (run_id,),
            )

    # -- reading ---------------------------------------------------------------------------

    async def get(self, owner: str, thread_id: str, run_id: uuid.UUID) -> RunRecord | None:
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(RunRecord))
            await cur.execute(
                f"SELECT {RUN_COLUMNS}{_FROM} WHERE r.run_id = %s AND t.owner = %s AND t.thread_id = %s",
                (run_id, owner, thread_id),
            )
            return await cur.fetchone()

    async def by_id(self, run_id: uuid.UUID) -> RunRecord | None:
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(RunRecord))
            await cur.execute(f"SELECT {RUN_COLUMNS}{_FROM} WHERE r.run_id = %s", (run_id,))
            return await cur.fetchone()

    async def find_by_key(self, thread_key: uuid.UUID, idempotency_key: str) -> RunRecord | None:
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(RunRecord))
            await cur.execute(
                f"SELECT {RUN_COLUMNS}{_FROM} WHERE r.thread_key = %s AND r.idempotency_key = %s",
                (thread_key, idempotency_key),
            )
            return await cur.fetchone()

    async def page(
        self, owner: str, thread_id: str, query: RunQuery
    ) -> tuple[list[RunRecord], tuple[datetime, uuid.UUID] | None]:
        """The page, and the cursor of the next one (None at the end)."""
        statuses, limit, before = query.statuses, query.limit, query.before
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(RunRecord))
            await cur.execute(
                f"SELECT {RUN_COLUMNS}{_FROM} WHERE t.owner = %(owner)s AND t.thread_id = %(thread)s"
                "   AND (%(statuses)s::text[] IS NULL OR r.status = ANY(%(statuses)s))"
                "   AND (%(at)s::timestamptz IS NULL OR (r.created_at, r.run_id) < (%(at)s, %(id)s))"
                " ORDER BY r.created_at DESC, r.run_id DESC LIMIT %(limit)s OFFSET %(offset)s",
                {
                    "owner": owner,
                    "thread": thread_id,
                    "statuses": list(statuses) if statuses else None,
                    "at": before[0] if before else None,
                    "id": before[1] if before else None,
                    "limit": limit + 1,
                    "offset": query.offset,
                },
            )
            rows = await cur.fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, ((rows[-1].created_at, rows[-1].run_id) if more and rows else None)

    async def active_ids(self, owner: str, thread_id: str) -> list[uuid.UUID]:
        """The pending and running runs of a thread, oldest first."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT r.run_id{_FROM} WHERE t.owner = %s AND t.thread_id = %s AND r.status = ANY(%s)"
                " ORDER BY r.created_at",
                (owner, thread_id, list(ACTIVE)),
            )
            return [row[0] for row in await cur.fetchall()]  # type: ignore[misc]

    async def start_of(self, thread: ThreadRecord, checkpoint_id: str | None) -> TurnStart:
        """Where a turn starting from `checkpoint_id` (None: the head) sits in the transcript."""
        if checkpoint_id is None or checkpoint_id == thread.head_checkpoint_id:
            return TurnStart(
                checkpoint_id=thread.head_checkpoint_id, branch=thread.branch, seq=thread.message_count
            )
        if checkpoint_id == FROM_START:
            return TurnStart(checkpoint_id=None, branch=thread.branch, seq=0, fork=True)
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT branch, message_count FROM lma_runs"
                " WHERE thread_key = %s AND checkpoint_id = %s AND status = 'success'",
                (thread.thread_key, checkpoint_id),
            )
            row = await cur.fetchone()
        if row is None:
            raise LookupError(checkpoint_id)
        branch, count = row
        assert isinstance(branch, int) and isinstance(count, int)
        return TurnStart(checkpoint_id=checkpoint_id, branch=branch, seq=count, fork=True)

    # -- the queue -------------------------------------------------------------------------

    async def enqueue(self, owner: str, thread_id: str, run: NewRun) -> uuid.UUID | None:
        """Add a pending run to an existing thread. None: the thread does not exist, or the
        idempotency key was already used on it (the caller looks that run up)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO lma_runs (run_id, thread_key, idempotency_key, request_hash, status,"
                "  assistant_id, metadata, multitask_strategy, input, not_before)"
                " SELECT %(run_id)s, t.thread_key, %(key)s, %(hash)s, 'pending', %(assistant)s,"
                "  %(run_metadata)s, %(strategy)s, %(input)s,"
                "  clock_timestamp() + make_interval(secs => %(after)s::float8)"
                " FROM lma_threads t WHERE t.owner = %(owner)s AND t.thread_id = %(thread_id)s"
                " ON CONFLICT (thread_key, idempotency_key) DO NOTHING RETURNING run_id",
                {**run.params(), "owner": owner, "thread_id": thread_id},
            )
            row = await cur.fetchone()
        return row[0] if row is not None else None  # type: ignore[return-value]

    # -- cancelling and reaping --------------------------------------------------------------

    async def cancel(self, owner: str, run_ids: Sequence[uuid.UUID], *, message: str) -> list[uuid.UUID]:
        """Cancel these runs if still active: `interrupted` at once, their threads' leases freed.

        A pending run is finished here (no executor has it); a running one is finished by its
        executor when it has stopped (it is told by `c <run_id>`), or by the reaper if it died.
        Only `owner`'s runs are touched. Returns the runs that were cancelled.
        """
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "WITH target AS ("
                "  SELECT run_id, thread_key, status AS was FROM lma_runs"
                "  WHERE run_id = ANY(%(ids)s) AND status = ANY(%(active)s)"
                "    AND thread_key IN (SELECT thread_key FROM lma_threads WHERE owner = %(owner)s)"
                "  FOR UPDATE"
                "), cancelled AS ("
                "  UPDATE lma_runs r SET status = 'interrupted', error_code = 'cancelled',"
                "    error_message = %(message)s, idempotency_key = NULL, updated_at = now(),"
                "    finished_at = CASE WHEN target.was = 'pending' THEN now() END"
                "  FROM target WHERE r.run_id = target.run_id RETURNING r.run_id"
                "), freed AS ("
                "  UPDATE lma_threads t SET lease_run_id = NULL, lease_expires_at = NULL"
                "  FROM target WHERE t.thread_key = target.thread_key AND t.lease_run_id = target.run_id"
                "  RETURNING t.thread_key"
                ") SELECT run_id, was FROM target",
                {"ids": list(run_ids), "active": list(ACTIVE), "message": message, "owner": owner},
            )
            rows = await cur.fetchall()
            pending = [r[0] for r in rows if r[1] == "pending"]
            running = [r[0] for r in rows if r[1] == "running"]
            await close_logs(conn, pending)  # type: ignore[arg-type]
            if running:
                await conn.execute(
                    "SELECT pg_notify(%s, 'c ' || id::text) FROM unnest(%s::uuid[]) AS id",
                    (CHANNEL, running),
                )
            if rows:
                await conn.execute("SELECT pg_notify(%s, 'q')", (CHANNEL,))
        return [r[0] for r in rows]  # type: ignore[misc]

    async def delete(self, run_ids: Sequence[uuid.UUID]) -> None:
        """Remove finished runs with their events (the `rollback` strategy)."""
        async with self._pool.connection() as conn:
            await conn.execute(
                "DELETE FROM lma_runs WHERE run_id = ANY(%s) AND finished_at IS NOT NULL", (list(run_ids),)
            )

    async def reap(self, *, lease_seconds: float, thread_key: uuid.UUID | None = None) -> list[uuid.UUID]:
        """Finish runs whose executor is gone: `error`/`worker_lost` (a cancelled one stays
        `interrupted`), free their idempotency keys and leases, drop what they wrote, close
        their logs, and wake the queue. Safe on every replica at once (SKIP LOCKED)."""
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                _REAP, {"lease": lease_seconds, "thread": thread_key, "message": WORKER_LOST}
            )
            dead = [(row[0], row[1]) for row in await cur.fetchall()]
            if not dead:
                return []
            for run_id, key in dead:
                await drop_partial_checkpoints(conn, key, run_id)  # type: ignore[arg-type]
            await close_logs(conn, [run_id for run_id, _ in dead])  # type: ignore[misc]
            await conn.execute("SELECT pg_notify(%s, 'q')", (CHANNEL,))
        return [run_id for run_id, _ in dead]  # type: ignore[misc]

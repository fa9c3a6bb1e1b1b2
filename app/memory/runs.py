"""Runs: the per-thread lease that allows one turn at a time, idempotency keys, and the commit
that makes a finished turn visible.

The lease is a row lock in spirit only: `lease_run_id`/`lease_expires_at` on the thread row,
taken and released by single UPDATE statements. No connection is held while the model thinks;
the running process renews the lease periodically, and a process that dies simply stops renewing,
so its lease expires and the thread is free again. Because the lease lives in PostgreSQL it holds
across processes and replicas.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from app.memory.checkpointer import StagedCheckpoints
from app.memory.pool import Pool
from app.memory.threads import _COLUMNS as THREAD_COLUMNS
from app.memory.threads import ThreadRecord, purge_checkpoints
from app.memory.transcript import StoredMessage


@dataclass(frozen=True)
class RunRecord:
    run_id: uuid.UUID
    thread_key: uuid.UUID
    idempotency_key: str | None
    request_hash: str | None
    status: str
    checkpoint_id: str | None
    message_count: int | None
    response: dict[str, Any] | None
    started_at: datetime


@dataclass(frozen=True)
class TurnStart:
    """Where a turn starts: a checkpoint, and the transcript branch and position it ends."""

    checkpoint_id: str | None
    branch: int
    seq: int
    fork: bool = False


@dataclass(frozen=True)
class Claim:
    """Outcome of trying to start a run on a thread."""

    thread: ThreadRecord | None  # set when the lease was taken (and the run row written)
    existing_run: RunRecord | None = None  # set when the idempotency key was already used
    busy_until: datetime | None = None  # set when another run holds the lease


_MESSAGE_COLUMNS = (
    "thread_key, branch, seq, message_id, run_id, role, content, name, tool_calls, tool_call_id"
)

_RUN_COLUMNS = (
    "run_id, thread_key, idempotency_key, request_hash, status, checkpoint_id, message_count,"
    " response, started_at"
)


def _columns(prefix: str, rows: Sequence[tuple[Any, ...]], width: int) -> dict[str, list[Any]]:
    """Row tuples turned into one array parameter per column (`prefix0`...), for `unnest`."""
    columns = list(zip(*rows, strict=True)) or [()] * width
    return {f"{prefix}{i}": list(columns[i]) for i in range(width)}


class RunStore:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def find_by_key(self, thread_key: uuid.UUID, idempotency_key: str) -> RunRecord | None:
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(RunRecord))
            await cur.execute(
                f"SELECT {_RUN_COLUMNS} FROM lma_runs WHERE thread_key = %s AND idempotency_key = %s",
                (thread_key, idempotency_key),
            )
            return await cur.fetchone()

    async def claim(
        self,
        *,
        owner: str,
        thread_id: str,
        run_id: uuid.UUID,
        lease_seconds: float,
        idempotency_key: str | None,
        request_hash: str,
        from_checkpoint_id: str | None,
    ) -> Claim:
        """Take the thread's lease and record the run, in one statement, if the thread is free.

        The run row and the lease are written together, so a claimed run always has a row, and
        a second request with the same idempotency key can never start a second run.
        """
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(ThreadRecord))
            await cur.execute(
                "WITH claimed AS ("
                "  UPDATE lma_threads SET lease_run_id = %(run_id)s,"
                "    lease_expires_at = clock_timestamp() + make_interval(secs => %(lease)s)"
                "  WHERE owner = %(owner)s AND thread_id = %(thread_id)s"
                "    AND (lease_run_id IS NULL OR lease_expires_at < clock_timestamp())"
                "    AND (%(key)s::text IS NULL OR NOT EXISTS (SELECT 1 FROM lma_runs r"
                "      WHERE r.thread_key = lma_threads.thread_key AND r.idempotency_key = %(key)s))"
                f"  RETURNING {THREAD_COLUMNS}"
                "), run AS ("
                "  INSERT INTO lma_runs (run_id, thread_key, idempotency_key, request_hash, status,"
                "    parent_checkpoint_id)"
                "  SELECT %(run_id)s, thread_key, %(key)s, %(hash)s, 'running',"
                "    coalesce(%(from_checkpoint)s, head_checkpoint_id)"
                "  FROM claimed"
                ")"
                f" SELECT {THREAD_COLUMNS} FROM claimed",
                {
                    "run_id": run_id,
                    "lease": lease_seconds,
                    "owner": owner,
                    "thread_id": thread_id,
                    "key": idempotency_key,
                    "hash": request_hash,
                    "from_checkpoint": from_checkpoint_id,
                },
            )
            thread = await cur.fetchone()
            if thread is not None:
                return Claim(thread=thread)
            # Not claimed: say why (key already used, or another run holds the lease).
            state = await conn.execute(
                "SELECT t.thread_key, t.lease_expires_at, r.run_id IS NOT NULL"
                " FROM lma_threads t LEFT JOIN lma_runs r"
                "   ON r.thread_key = t.thread_key AND r.idempotency_key = %s"
                " WHERE t.owner = %s AND t.thread_id = %s",
                (idempotency_key, owner, thread_id),
            )
            row = await state.fetchone()
        if row is None:
            return Claim(thread=None)
        thread_key, lease_expires_at, key_used = row
        if key_used and idempotency_key is not None:
            assert isinstance(thread_key, uuid.UUID)
            return Claim(thread=None, existing_run=await self.find_by_key(thread_key, idempotency_key))
        assert lease_expires_at is None or isinstance(lease_expires_at, datetime)
        return Claim(thread=None, busy_until=lease_expires_at)

    async def renew(self, thread_key: uuid.UUID, run_id: uuid.UUID, lease_seconds: float) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE lma_threads SET lease_expires_at = clock_timestamp() + make_interval(secs => %s)"
                " WHERE thread_key = %s AND lease_run_id = %s",
                (lease_seconds, thread_key, run_id),
            )
            return cur.rowcount == 1

    async def fail(self, thread_key: uuid.UUID, run_id: uuid.UUID, error_code: str) -> None:
        """Record a failed run, free its idempotency key and the lease, drop its partial checkpoint.

        The thread's head is untouched: the next turn starts from the last completed checkpoint.
        """
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(
                "UPDATE lma_runs SET status = 'failed', error_code = %s, idempotency_key = NULL,"
                " finished_at = now() WHERE run_id = %s",
                (error_code, run_id),
            )
            await conn.execute(
                "UPDATE lma_threads SET lease_run_id = NULL, lease_expires_at = NULL"
                " WHERE thread_key = %s AND lease_run_id = %s",
                (thread_key, run_id),
            )
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
            # A thread deleted while this turn ran: whatever the turn wrote meanwhile goes too,
            # so nothing of it can come back.
            cur = await conn.execute("SELECT 1 FROM lma_threads WHERE thread_key = %s", (thread_key,))
            if await cur.fetchone() is None:
                await purge_checkpoints(conn, [str(thread_key)])

    async def complete(
        self,
        *,
        thread_key: uuid.UUID,
        run_id: uuid.UUID,
        checkpoint_id: str,
        start: TurnStart,
        messages: Sequence[StoredMessage],
        response: dict[str, Any] | None,
        staged: StagedCheckpoints,
    ) -> ThreadRecord | None:
        """Make the turn visible, atomically: transcript, run row, thread head and counters, lease.

        A fork opens a new branch (a copy of the shared prefix) and moves the head onto it.
        `response` is what a retry with the run's idempotency key gets back (None: no key);
        `staged` the run's checkpoint rows, written here with the rest.
        Returns None (and writes nothing) if this run no longer holds the thread's lease or the
        thread was deleted meanwhile.
        """
        total = start.seq + len(messages)
        # One statement (atomic, one round trip): move the head and release the lease; on a
        # fork open the new branch with a copy of the shared prefix; append the turn's rows;
        # write its checkpoint; complete the run row. If the lease is gone or the thread was
        # deleted, `t` is empty and nothing else is written.
        params = {
            "checkpoint": checkpoint_id,
            "total": total,
            "fork": start.fork,
            "source": start.branch,
            "start": start.seq,
            "key": thread_key,
            "run": run_id,
            "response": Jsonb(response) if response is not None else None,
            "ids": [m.message_id for m in messages],
            "roles": [m.role for m in messages],
            "contents": [m.content for m in messages],
            "names": [m.name for m in messages],
            "calls": [Jsonb(m.tool_calls) if m.tool_calls is not None else None for m in messages],
            "call_ids": [m.tool_call_id for m in messages],
            **_columns("b", staged.blobs, 6),
            **_columns("c", staged.checkpoints, 6),
        }
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(ThreadRecord))
            await cur.execute(
                "WITH t AS ("
                "  UPDATE lma_threads SET head_checkpoint_id = %(checkpoint)s, message_count = %(total)s,"
                "    turn_count = turn_count + 1, last_activity_at = now(), updated_at = now(),"
                "    lease_run_id = NULL, lease_expires_at = NULL,"
                "    branch = CASE WHEN %(fork)s THEN branch_count ELSE branch END,"
                "    branch_count = branch_count + CASE WHEN %(fork)s THEN 1 ELSE 0 END"
                f"  WHERE thread_key = %(key)s AND lease_run_id = %(run)s RETURNING {THREAD_COLUMNS}"
                "), copied AS ("
                f"  INSERT INTO lma_messages ({_MESSAGE_COLUMNS}, created_at)"
                "  SELECT m.thread_key, t.branch, m.seq, m.message_id, m.run_id, m.role, m.content, m.name,"
                "    m.tool_calls, m.tool_call_id, m.created_at"
                "  FROM t JOIN lma_messages m ON m.thread_key = t.thread_key"
                "  WHERE %(fork)s AND m.branch = %(source)s AND m.seq < %(start)s"
                "), added AS ("
                f"  INSERT INTO lma_messages ({_MESSAGE_COLUMNS})"
                "  SELECT t.thread_key, t.branch, %(start)s + u.n - 1, u.message_id, %(run)s, u.role,"
                "    u.content, u.name, u.tool_calls, u.tool_call_id"
                "  FROM t, unnest(%(ids)s::text[], %(roles)s::text[], %(contents)s::text[],"
                "    %(names)s::text[], %(calls)s::jsonb[], %(call_ids)s::text[])"
                "    WITH ORDINALITY AS u(message_id, role, content, name, tool_calls, tool_call_id, n)"
                "), blobs AS ("
                "  INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)"
                "  SELECT b.* FROM t, unnest(%(b0)s::text[], %(b1)s::text[], %(b2)s::text[], %(b3)s::text[],"
                "    %(b4)s::text[], %(b5)s::bytea[]) AS b"
                "  ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING"
                "), saved AS ("
                "  INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,"
                "    checkpoint, metadata)"
                "  SELECT c.* FROM t, unnest(%(c0)s::text[], %(c1)s::text[], %(c2)s::text[], %(c3)s::text[],"
                "    %(c4)s::jsonb[], %(c5)s::jsonb[]) AS c"
                "  ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id)"
                "  DO UPDATE SET checkpoint = excluded.checkpoint, metadata = excluded.metadata"
                "), run AS ("
                "  UPDATE lma_runs SET status = 'completed', checkpoint_id = %(checkpoint)s,"
                "    message_count = %(total)s, branch = t.branch, response = %(response)s,"
                "    finished_at = now()"
                "  FROM t WHERE lma_runs.run_id = %(run)s"
                f") SELECT {THREAD_COLUMNS} FROM t",
                params,
            )
            return await cur.fetchone()

    async def start_of(self, thread: ThreadRecord, checkpoint_id: str | None) -> TurnStart:
        """Where a turn starting from `checkpoint_id` (None: the head) sits in the transcript."""
        if checkpoint_id is None or checkpoint_id == thread.head_checkpoint_id:
            return TurnStart(
                checkpoint_id=thread.head_checkpoint_id, branch=thread.branch, seq=thread.message_count
            )
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT branch, message_count FROM lma_runs"
                " WHERE thread_key = %s AND checkpoint_id = %s AND status = 'completed'",
                (thread.thread_key, checkpoint_id),
            )
            row = await cur.fetchone()
        if row is None:
            raise LookupError(checkpoint_id)
        branch, count = row
        assert isinstance(branch, int) and isinstance(count, int)
        return TurnStart(checkpoint_id=checkpoint_id, branch=branch, seq=count, fork=True)

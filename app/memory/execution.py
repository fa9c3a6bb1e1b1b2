"""Executing a run: the per-thread lease that allows one turn at a time, its renewal, and the
statements that finish a run (the commit that makes a turn visible, or the failure record).

The lease is `lease_run_id`/`lease_expires_at` on the thread row, taken and released by single
statements. No connection is held while the model thinks; the executing process renews the
lease (and the run's heartbeat) periodically, and a process that dies simply stops renewing, so
its lease expires and the reaper (`app.memory.runs`) finishes the run. Because the lease lives
in PostgreSQL it holds across processes and replicas.
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
from app.memory.run_events import CHANNEL, StoredEvent, event_rows, insert_events_cte, notify_events_sql
from app.memory.runs import NewRun, TurnStart, drop_partial_checkpoints
from app.memory.threads import _COLUMNS as THREAD_COLUMNS
from app.memory.threads import ThreadRecord, lease_free, purge_checkpoints
from app.memory.transcript import StoredMessage


@dataclass(frozen=True)
class Claim:
    """Outcome of trying to start a run on a thread at once."""

    thread: ThreadRecord | None  # set when the lease was taken (and the run row written)
    key_used: bool = False  # the idempotency key already names a run of this thread
    busy_until: datetime | None = None  # another run holds the lease (or runs are queued)
    exists: bool = True  # False: no such thread yet
    holder_started_at: datetime | None = None  # when the run holding the lease started
    bound_to: str | None = None  # set when the thread runs on another graph


_MESSAGE_COLUMNS = (
    "thread_key, branch, seq, message_id, run_id, role, content, name, tool_calls, tool_call_id"
)
_T_COLUMNS = ", ".join(f"t.{c.strip()}" for c in THREAD_COLUMNS.split(","))
# Wake the queue dispatchers when the thread a run just left has runs waiting.
_WAKE_QUEUE = (
    f"(SELECT pg_notify('{CHANNEL}', 'q') WHERE EXISTS (SELECT 1 FROM lma_runs p"
    "   WHERE p.thread_key = %(key)s AND p.status = 'pending'))"
)


def _columns(prefix: str, rows: Sequence[tuple[Any, ...]], width: int) -> dict[str, list[Any]]:
    """Row tuples turned into one array parameter per column (`prefix0`...), for `unnest`."""
    columns = list(zip(*rows, strict=True)) or [()] * width
    return {f"{prefix}{i}": list(columns[i]) for i in range(width)}


class ExecutionStore:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def claim(self, owner: str, thread_id: str, run: NewRun, *, lease_seconds: float) -> Claim:
        """Take the thread's lease and record the run as running, in one statement, if the
        thread is free and no runs are queued on it. The run row and the lease are written
        together, so a claimed run always has a row, and a second request with the same
        idempotency key can never start a second run."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(ThreadRecord))
            await cur.execute(
                "WITH claimed AS ("
                "  UPDATE lma_threads SET lease_run_id = %(run_id)s,"
                "    lease_expires_at = clock_timestamp() + make_interval(secs => %(lease)s),"
                "    graph_id = coalesce(graph_id, %(graph)s)"
                "  WHERE owner = %(owner)s AND thread_id = %(thread_id)s"
                "    AND coalesce(graph_id, %(graph)s) = %(graph)s"
                f"    AND {lease_free()}"
                "    AND NOT EXISTS (SELECT 1 FROM lma_runs p"
                "      WHERE p.thread_key = lma_threads.thread_key AND p.status = 'pending')"
                "    AND (%(key)s::text IS NULL OR NOT EXISTS (SELECT 1 FROM lma_runs r"
                "      WHERE r.thread_key = lma_threads.thread_key AND r.idempotency_key = %(key)s))"
                f"  RETURNING {THREAD_COLUMNS}"
                "), run AS ("
                "  INSERT INTO lma_runs (run_id, thread_key, idempotency_key, request_hash, status,"
                "    parent_checkpoint_id, assistant_id, metadata, multitask_strategy, started_at,"
                "    heartbeat_at)"
                "  SELECT %(run_id)s, thread_key, %(key)s, %(hash)s, 'running',"
                "    coalesce(%(from_checkpoint)s, head_checkpoint_id), %(assistant)s, %(run_metadata)s,"
                "    %(strategy)s, now(), now()"
                "  FROM claimed"
                ")"
                f" SELECT {THREAD_COLUMNS} FROM claimed",
                {**run.params(), "lease": lease_seconds, "owner": owner, "thread_id": thread_id},
            )
            thread = await cur.fetchone()
            if thread is not None:
                return Claim(thread=thread)
            # Not claimed: say why (key already used, another run holds the lease, runs queued).
            state = await conn.execute(
                "SELECT t.lease_expires_at, r.run_id IS NOT NULL,"
                "  EXISTS (SELECT 1 FROM lma_runs p"
                "    WHERE p.thread_key = t.thread_key AND p.status = 'pending'),"
                "  (SELECT h.started_at FROM lma_runs h WHERE h.run_id = t.lease_run_id), t.graph_id"
                " FROM lma_threads t LEFT JOIN lma_runs r"
                "   ON r.thread_key = t.thread_key AND r.idempotency_key = %s"
                " WHERE t.owner = %s AND t.thread_id = %s",
                (run.idempotency_key, owner, thread_id),
            )
            row = await state.fetchone()
        if row is None:
            return Claim(thread=None, exists=False)
        lease_expires_at, key_used, queued, holder_started_at, graph_id = row
        if key_used and run.idempotency_key is not None:
            return Claim(thread=None, key_used=True)
        if graph_id is not None and graph_id != run.graph:
            assert isinstance(graph_id, str)
            return Claim(thread=None, bound_to=graph_id)
        assert lease_expires_at is None or isinstance(lease_expires_at, datetime)
        assert holder_started_at is None or isinstance(holder_started_at, datetime)
        return Claim(
            thread=None,
            busy_until=lease_expires_at if not queued else None,
            holder_started_at=holder_started_at,
        )

    async def claim_next(
        self, *, lease_seconds: float, limit: int, thread_key: uuid.UUID | None = None
    ) -> list[tuple[uuid.UUID, ThreadRecord]]:
        """Start queued runs: for each free thread the oldest pending run (creation order),
        taking the thread's lease. Any process may call this at once (SKIP LOCKED)."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(ThreadRecord))
            await cur.execute(
                "WITH next AS ("
                "  SELECT r.run_id, r.thread_key, r.input->>'graph' AS graph FROM lma_runs r"
                "  JOIN lma_threads t ON t.thread_key = r.thread_key"
                "  WHERE r.status = 'pending' AND (%(thread)s::uuid IS NULL OR r.thread_key = %(thread)s)"
                "    AND (r.not_before IS NULL OR r.not_before <= clock_timestamp())"
                f"    AND {lease_free('t')}"
                "    AND NOT EXISTS (SELECT 1 FROM lma_runs o WHERE o.thread_key = r.thread_key"
                "      AND o.status = 'pending' AND (o.created_at, o.run_id) < (r.created_at, r.run_id))"
                "  ORDER BY r.created_at LIMIT %(limit)s FOR UPDATE OF r, t SKIP LOCKED"
                "), leased AS ("
                "  UPDATE lma_threads t SET lease_run_id = next.run_id,"
                "    lease_expires_at = clock_timestamp() + make_interval(secs => %(lease)s),"
                "    graph_id = coalesce(t.graph_id, next.graph)"
                f"  FROM next WHERE t.thread_key = next.thread_key RETURNING {_T_COLUMNS}"
                "), started AS ("
                "  UPDATE lma_runs r SET status = 'running', started_at = now(), heartbeat_at = now(),"
                "    updated_at = now(),"
                "    parent_checkpoint_id = coalesce(r.input->>'checkpoint_id', leased.head_checkpoint_id)"
                "  FROM leased WHERE r.run_id = leased.lease_run_id RETURNING r.run_id"
                f") SELECT {THREAD_COLUMNS} FROM leased",
                {"thread": thread_key, "limit": limit, "lease": lease_seconds},
            )
            threads = await cur.fetchall()
        return [(t.lease_run_id, t) for t in threads if t.lease_run_id is not None]

    async def renew(self, thread_key: uuid.UUID, run_id: uuid.UUID, lease_seconds: float) -> bool:
        """Extend the lease and mark the executor alive. False: the lease is gone (the run was
        cancelled or taken over); the heartbeat is recorded anyway while the executor stops."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "WITH lease AS ("
                "  UPDATE lma_threads"
                "  SET lease_expires_at = clock_timestamp() + make_interval(secs => %(lease)s)"
                "  WHERE thread_key = %(key)s AND lease_run_id = %(run)s RETURNING 1"
                "), beat AS ("
                "  UPDATE lma_runs SET heartbeat_at = now() WHERE run_id = %(run)s AND finished_at IS NULL"
                ") SELECT count(*) FROM lease",
                {"lease": lease_seconds, "key": thread_key, "run": run_id},
            )
            row = await cur.fetchone()
        return bool(row and row[0])

    async def release(self, thread_key: uuid.UUID, run_id: uuid.UUID) -> None:
        """Undo a claim whose run turned out not to be allowed (it never started): the run row
        goes and the lease is freed, as if the request had never come."""
        async with self._pool.connection() as conn:
            await conn.execute(
                "WITH gone AS (DELETE FROM lma_runs WHERE run_id = %(run)s AND status = 'running'),"
                " freed AS (UPDATE lma_threads SET lease_run_id = NULL, lease_expires_at = NULL"
                "   WHERE thread_key = %(key)s AND lease_run_id = %(run)s RETURNING 1)"
                f" SELECT count(*) FROM freed, LATERAL (SELECT {_WAKE_QUEUE}) AS woken",
                {"run": run_id, "key": thread_key},
            )

    async def fail(
        self,
        thread_key: uuid.UUID,
        run_id: uuid.UUID,
        *,
        status: str,
        code: str,
        message: str,
        events: Sequence[StoredEvent],
    ) -> None:
        """Finish a run that did not complete: its status (a cancelled run stays `interrupted`),
        its last events, its idempotency key and the lease freed, its partial checkpoint dropped.

        The thread's head is untouched: the next turn starts from the last completed checkpoint.
        """
        params = {
            "run": run_id,
            "key": thread_key,
            "status": status,
            "code": code,
            "message": message,
            **event_rows(events),
        }
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "WITH r AS ("
                "  UPDATE lma_runs SET finished_at = now(), updated_at = now(), idempotency_key = NULL,"
                "    status = CASE WHEN status = 'running' THEN %(status)s ELSE status END,"
                "    error_code = CASE WHEN status = 'running' THEN %(code)s ELSE error_code END,"
                "    error_message = CASE WHEN status = 'running' THEN %(message)s ELSE error_message END"
                "  WHERE run_id = %(run)s AND status <> 'success' RETURNING run_id, watched"
                "), freed AS ("
                "  UPDATE lma_threads SET lease_run_id = NULL, lease_expires_at = NULL"
                "  WHERE thread_key = %(key)s AND lease_run_id = %(run)s RETURNING 1"
                f"), added AS ({insert_events_cte('r')})"
                f" SELECT count(*) FROM r, LATERAL (SELECT {notify_events_sql('r.watched')},"
                f" {_WAKE_QUEUE}) AS woken",
                params,
            )
            row = await cur.fetchone()
            if not row or not row[0]:
                return  # it completed after all (or is gone): nothing of it is partial
            await drop_partial_checkpoints(conn, thread_key, run_id)
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
        staged: StagedCheckpoints,
        events: Sequence[StoredEvent],
        interrupts: list[dict[str, Any]] | None = None,
    ) -> ThreadRecord | None:
        """Make the turn visible, atomically: transcript, run row, thread head and counters,
        lease, checkpoint, and the run's last events (closing its log). A turn that paused on
        `interrupts` leaves the thread waiting on them (with its checkpoint's pending writes);
        any other turn clears them.

        A fork opens a new branch (a copy of the shared prefix) and moves the head onto it.
        Returns None (and writes nothing) if this run no longer holds the thread's lease (it
        was cancelled or taken over) or the thread was deleted meanwhile.
        """
        total = start.seq + len(messages)
        params = {
            "checkpoint": checkpoint_id,
            "total": total,
            "fork": start.fork,
            "source": start.branch,
            "start": start.seq,
            "key": thread_key,
            "run": run_id,
            "ids": [m.message_id for m in messages],
            "roles": [m.role for m in messages],
            "contents": [m.content for m in messages],
            "names": [m.name for m in messages],
            "calls": [Jsonb(m.tool_calls) if m.tool_calls is not None else None for m in messages],
            "call_ids": [m.tool_call_id for m in messages],
            **_columns("b", staged.blobs, 6),
            **_columns("c", staged.checkpoints, 6),
            **event_rows(events),
            "interrupts": Jsonb(interrupts) if interrupts else None,
        }
        # Only a paused turn has pending writes: the statement every other turn runs stays as is.
        writes = ""
        if staged.writes:
            params.update(_columns("w", staged.writes, 9))
            writes = (
                "), writes AS ("
                "  INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id,"
                "    task_path, idx, channel, type, blob)"
                "  SELECT w.* FROM t, unnest(%(w0)s::text[], %(w1)s::text[], %(w2)s::text[],"
                "    %(w3)s::text[], %(w4)s::text[], %(w5)s::int[], %(w6)s::text[], %(w7)s::text[],"
                "    %(w8)s::bytea[]) AS w"
                "  ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)"
                "  DO UPDATE SET channel = excluded.channel, type = excluded.type, blob = excluded.blob"
            )
        # One statement (atomic, one round trip). If the lease is gone or the thread was
        # deleted, `t` is empty and nothing else is written.
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(ThreadRecord))
            await cur.execute(
                "WITH t AS ("
                "  UPDATE lma_threads SET head_checkpoint_id = %(checkpoint)s, message_count = %(total)s,"
                "    turn_count = turn_count + 1, last_activity_at = now(), updated_at = now(),"
                "    lease_run_id = NULL, lease_expires_at = NULL, interrupts = %(interrupts)s::jsonb,"
                "    interrupted_at = CASE WHEN %(interrupts)s::jsonb IS NULL THEN NULL ELSE now() END,"
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
                f"{writes}"
                "), run AS ("
                "  UPDATE lma_runs SET status = 'success', checkpoint_id = %(checkpoint)s,"
                "    interrupts = %(interrupts)s::jsonb,"
                "    message_count = %(total)s, start_seq = %(start)s, branch = t.branch,"
                "    finished_at = now(), updated_at = now()"
                "  FROM t WHERE lma_runs.run_id = %(run)s RETURNING lma_runs.watched"
                f"), events AS ({insert_events_cte('t')})"
                f" SELECT {_T_COLUMNS} FROM t,"
                f"  LATERAL (SELECT {notify_events_sql('EXISTS (SELECT 1 FROM run WHERE run.watched)')},"
                f"  {_WAKE_QUEUE}) AS woken",
                params,
            )
            record = await cur.fetchone()
        # Later turns' checkpoints may now store their lists as deltas over these rows.
        staged.committed = record is not None
        return record

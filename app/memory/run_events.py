"""The run event log: every event of a run, in order, append-only.

A row is a batch of consecutive events (`seq`..`last_seq`, as a JSON array of `[kind, data]`),
so a token stream costs one row per batch, not per token, and a turn answered as JSON stores
its whole log in one row. A run's events are written by the process executing it, and a run's
last events by the statement that finishes it (`app.memory.execution`), so a finished run always
has its whole log. Joiners on any replica read by `seq` and are woken by `LISTEN/NOTIFY` on
`CHANNEL`: every write of a watched run notifies `e <run_id> <last seq>` in its own
transaction, so a joiner that subscribes, marks the run watched (`RunStore.watch`) and then
reads misses nothing. Runs nobody follows from the log (most: their client is on the process
that runs them) send no notification: PostgreSQL serialises the commits of transactions that
notify, which halved the turns per second of 16 threads. Events are kept for
RUN_EVENTS_TTL_SECONDS after the run finished.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from app.memory.pool import Pool

TERMINAL_KINDS = ("done", "error")

# One channel for everything about runs: `e <run_id> <seq>` events stored, `c <run_id>` cancel
# requested, `q` a queued run may be startable.
CHANNEL = "lma_runs"


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    kind: str
    data: dict[str, Any]
    data_json: str | None = None  # `data` as JSON text, when the writer has it already


def _as_is(text: str) -> str:
    return text


def _body(events: Sequence[StoredEvent]) -> Jsonb:
    """The batch's `[[kind, data], ...]` as JSON, from each event's own text where it has one."""
    if any(e.data_json is None for e in events):
        return Jsonb([[e.kind, e.data] for e in events])
    return Jsonb("[" + ",".join(f'["{e.kind}",{e.data_json}]' for e in events) + "]", dumps=_as_is)


def event_rows(events: Sequence[StoredEvent]) -> dict[str, Any]:
    """A batch as the parameters of `insert_events_cte` (no row when `events` is empty)."""
    return {
        "ev_first": events[0].seq if events else None,
        "ev_last": events[-1].seq if events else None,
        "ev_terminal": any(e.kind in TERMINAL_KINDS for e in events),
        "ev_body": _body(events),
    }


def insert_events_cte(guard: str) -> str:
    """A CTE storing the batch of `event_rows` for run %(run)s, when `guard` (a CTE) has a row."""
    return (
        "INSERT INTO lma_run_events (run_id, seq, last_seq, terminal, events)"
        f"  SELECT %(run)s, %(ev_first)s, %(ev_last)s, %(ev_terminal)s, %(ev_body)s FROM {guard}"
        "  WHERE %(ev_first)s::int IS NOT NULL"
        "  ON CONFLICT (run_id, seq) DO NOTHING"
    )


def notify_events_sql(watched: str) -> str:
    """A select-list expression notifying joiners that run %(run)s has events up to the batch's
    last, when the SQL condition `watched` (the run row's `watched`, as the statement that
    writes the batch locked it) holds. Values travel as parameters: a statement's text never
    changes, so it stays prepared."""
    return (
        f"(SELECT pg_notify('{CHANNEL}', 'e ' || %(run)s::text || ' ' ||"
        f" coalesce(%(ev_last)s::int, 0)::text) WHERE {watched})"
    )


# The terminal event a process writes for a run whose executor is gone (cancelled while pending,
# or its worker lost): after whatever the log holds, unless the log is already closed.
CLOSE_LOG_SQL = (
    "INSERT INTO lma_run_events (run_id, seq, last_seq, terminal, events)"
    " SELECT r.run_id, n.seq, n.seq, true,"
    "   jsonb_build_array(jsonb_build_array('error',"
    "     jsonb_build_object('code', r.error_code, 'message', r.error_message)))"
    " FROM lma_runs r,"
    "   LATERAL (SELECT coalesce(max(e.last_seq), 0) + 1 AS seq FROM lma_run_events e"
    "     WHERE e.run_id = r.run_id) AS n"
    " WHERE r.run_id = ANY(%(closing)s)"
    "   AND NOT EXISTS (SELECT 1 FROM lma_run_events e WHERE e.run_id = r.run_id AND e.terminal)"
    " ON CONFLICT (run_id, seq) DO NOTHING"
)


class RunEventLog:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def append_many(self, batches: Sequence[tuple[uuid.UUID, Sequence[StoredEvent]]]) -> None:
        """Store a batch of events of each of several running runs and wake their joiners, in one
        statement (one round trip, one commit). The run rows are locked (FOR SHARE), so a
        joiner's `RunStore.watch` either comes first (and is seen) or waits for this commit."""
        batches = [(run_id, events) for run_id, events in batches if events]
        if not batches:
            return
        rows = [(run_id, event_rows(events)) for run_id, events in batches]
        async with self._pool.connection() as conn:
            await conn.execute(
                "WITH b AS (SELECT * FROM unnest(%(runs)s::uuid[], %(firsts)s::int[], %(lasts)s::int[],"
                "   %(terminals)s::bool[], %(bodies)s::jsonb[]) AS b(run_id, seq, last_seq, terminal, events)"
                # A run deleted meanwhile (its thread was) is left out, not failing the others.
                "), live AS (SELECT b.*, r.watched FROM b JOIN lma_runs r ON r.run_id = b.run_id"
                "   FOR SHARE OF r"
                "), added AS ("
                "  INSERT INTO lma_run_events (run_id, seq, last_seq, terminal, events)"
                "  SELECT run_id, seq, last_seq, terminal, events FROM live"
                "  ON CONFLICT (run_id, seq) DO NOTHING"
                f") SELECT pg_notify('{CHANNEL}', 'e ' || run_id::text || ' ' || last_seq::text)"
                "  FROM live WHERE watched",
                {
                    "runs": [run_id for run_id, _ in rows],
                    "firsts": [r["ev_first"] for _, r in rows],
                    "lasts": [r["ev_last"] for _, r in rows],
                    "terminals": [r["ev_terminal"] for _, r in rows],
                    "bodies": [r["ev_body"] for _, r in rows],
                },
            )

    async def read(self, run_id: uuid.UUID, *, after: int, batches: int = 100) -> list[StoredEvent]:
        """The stored events after `after`, in order (up to `batches` rows of them)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT seq, events FROM lma_run_events WHERE run_id = %s AND last_seq > %s"
                " ORDER BY seq LIMIT %s",
                (run_id, after, batches),
            )
            rows = await cur.fetchall()
        events: list[StoredEvent] = []
        for first, batch in rows:
            assert isinstance(first, int) and isinstance(batch, list)
            for offset, (kind, data) in enumerate(batch):
                if first + offset > after:
                    events.append(StoredEvent(seq=first + offset, kind=str(kind), data=data))
        return events

    async def closed(self, run_id: uuid.UUID) -> bool:
        """Whether the run's log holds its terminal event."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT 1 FROM lma_run_events WHERE run_id = %s AND terminal LIMIT 1", (run_id,)
            )
            return await cur.fetchone() is not None

    async def prune(self, *, older_than_seconds: int, batch: int) -> int:
        """Delete the events of runs that finished more than `older_than_seconds` ago."""
        total = 0
        while True:
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "DELETE FROM lma_run_events WHERE run_id IN ("
                    "  SELECT r.run_id FROM lma_runs r"
                    "  WHERE r.finished_at < now() - make_interval(secs => %s)"
                    "    AND EXISTS (SELECT 1 FROM lma_run_events e WHERE e.run_id = r.run_id)"
                    "  LIMIT %s)",
                    (older_than_seconds, batch),
                )
                deleted = cur.rowcount
            total += max(deleted, 0)
            if deleted <= 0:
                return total

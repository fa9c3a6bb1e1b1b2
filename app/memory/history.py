"""A thread's checkpoints as a history: read from the checkpoint table's own columns and
metadata, never by decoding checkpoint blobs, so a page costs the page.

Each completed turn writes exactly one checkpoint (the graph runs with durability="exit"), so
a checkpoint is a turn boundary; its message count comes from the run that produced it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from psycopg.rows import class_row

from app.memory.pool import Pool


@dataclass(frozen=True)
class CheckpointRecord:
    checkpoint_id: str
    parent_checkpoint_id: str | None
    created_at: datetime | None
    step: int | None
    source: str | None
    run_id: str | None
    message_count: int | None
    branch: int | None = None
    start_seq: int | None = None  # where the turn that made it begins in the transcript
    regenerates: str | None = None  # the turn whose question its turn asked again


_SELECT = (
    "SELECT c.checkpoint_id, c.parent_checkpoint_id,"
    " (c.checkpoint->>'ts')::timestamptz AS created_at,"
    " (c.metadata->>'step')::int AS step, c.metadata->>'source' AS source,"
    " c.metadata->>'run_id' AS run_id, r.message_count, r.branch, r.start_seq,"
    " c.metadata->>'lma_regenerates' AS regenerates"
    " FROM checkpoints c LEFT JOIN lma_runs r"
    "   ON r.thread_key = %(key)s AND r.checkpoint_id = c.checkpoint_id"
    " WHERE c.thread_id = %(key_text)s AND c.checkpoint_ns = ''"
)


class CheckpointHistory:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def page(
        self, thread_key: uuid.UUID, *, limit: int, before: str | None
    ) -> tuple[list[CheckpointRecord], str | None]:
        """Newest first; the cursor is the last checkpoint id of the page (uuid6: time-ordered)."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(CheckpointRecord))
            await cur.execute(
                _SELECT + "   AND (%(before)s::text IS NULL OR c.checkpoint_id < %(before)s)"
                " ORDER BY c.checkpoint_id DESC LIMIT %(limit)s",
                {"key": thread_key, "key_text": str(thread_key), "before": before, "limit": limit + 1},
            )
            rows = await cur.fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (rows[-1].checkpoint_id if more and rows else None)

    async def get(self, thread_key: uuid.UUID, checkpoint_id: str) -> CheckpointRecord | None:
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(CheckpointRecord))
            await cur.execute(
                _SELECT + "   AND c.checkpoint_id = %(checkpoint_id)s",
                {"key": thread_key, "key_text": str(thread_key), "checkpoint_id": checkpoint_id},
            )
            return await cur.fetchone()

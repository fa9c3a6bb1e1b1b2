"""Feedback on a turn: a thumbs up or down (and an optional comment) that a thread's owner gives
one completed turn, identified by its run id. One row per (thread, run): giving feedback again
replaces it. This module owns `lma_feedback`; it reads the transcript only to check that the run
is a completed turn of the thread (a turn's messages carry its run id, and only completed turns
have messages). Rows go with their thread (`ON DELETE CASCADE`), so deleting a thread or
retention leaves none behind.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

from app.memory.pool import Pool


class Rating(IntEnum):
    DOWN = -1
    UP = 1


@dataclass(frozen=True)
class FeedbackRecord:
    run_id: uuid.UUID
    rating: int
    comment: str | None
    updated_at: datetime


_UPSERT = (
    "INSERT INTO lma_feedback (thread_key, run_id, rating, comment)"
    " SELECT %(thread_key)s, %(run_id)s, %(rating)s, %(comment)s"
    " WHERE EXISTS (SELECT 1 FROM lma_messages WHERE thread_key = %(thread_key)s AND run_id = %(run_id)s)"
    " ON CONFLICT (thread_key, run_id) DO UPDATE"
    " SET rating = EXCLUDED.rating, comment = EXCLUDED.comment, updated_at = now()"
    " RETURNING run_id, rating, comment, updated_at"
)


class FeedbackStore:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def give(
        self, thread_key: uuid.UUID, run_id: uuid.UUID, *, rating: Rating, comment: str | None
    ) -> FeedbackRecord | None:
        """Record (or replace) the feedback on a turn; None when the run is no completed turn of
        the thread."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(FeedbackRecord))
            await cur.execute(
                _UPSERT,
                {"thread_key": thread_key, "run_id": run_id, "rating": int(rating), "comment": comment},
            )
            return await cur.fetchone()

    async def of_thread(self, thread_key: uuid.UUID) -> list[FeedbackRecord]:
        """Every turn's feedback in a thread (the chat page shows the thumbs it gave)."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(FeedbackRecord))
            await cur.execute(
                "SELECT run_id, rating, comment, updated_at FROM lma_feedback"
                " WHERE thread_key = %s ORDER BY updated_at",
                (thread_key,),
            )
            return await cur.fetchall()


async def feedback_totals(conn: AsyncConnection[Any]) -> dict[str, int]:
    """Turns rated up and down, service-wide (for the analytics)."""
    cur = await conn.execute(
        "SELECT count(*) FILTER (WHERE rating > 0), count(*) FILTER (WHERE rating < 0) FROM lma_feedback"
    )
    row = await cur.fetchone()
    up, down = (row[0], row[1]) if row else (0, 0)
    return {"feedback_up": int(up), "feedback_down": int(down)}

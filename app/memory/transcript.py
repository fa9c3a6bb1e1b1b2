"""The transcript: the messages of a thread's current branch, one row each, append-only.

The checkpoint holds the whole state; this table is its projection for reading. A page of the
transcript then costs the page, not the thread (reading a long thread's latest checkpoint means
decoding every message it ever had). It is written in the same transaction that moves the
thread's head (see `RunStore.complete`), so it never shows a turn that did not complete.
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


@dataclass(frozen=True)
class StoredMessage:
    seq: int
    message_id: str
    run_id: uuid.UUID | None
    role: str
    content: str
    name: str | None
    tool_calls: list[dict[str, Any]] | None
    tool_call_id: str | None
    created_at: datetime | None = None


async def append_messages(
    conn: AsyncConnection[Any], thread_key: uuid.UUID, start_seq: int, messages: Sequence[StoredMessage]
) -> None:
    if not messages:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO lma_messages (thread_key, seq, message_id, run_id, role, content, name,"
            " tool_calls, tool_call_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    thread_key,
                    start_seq + i,
                    m.message_id,
                    m.run_id,
                    m.role,
                    m.content,
                    m.name,
                    Jsonb(m.tool_calls) if m.tool_calls is not None else None,
                    m.tool_call_id,
                )
                for i, m in enumerate(messages)
            ],
        )


class Transcript:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def page(
        self, thread_key: uuid.UUID, *, limit: int, before_seq: int | None
    ) -> tuple[list[StoredMessage], int | None]:
        """Up to `limit` messages before `before_seq` (or the latest), oldest first, and the
        cursor (a seq) for the page before this one, or None at the start of the thread."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(StoredMessage))
            await cur.execute(
                "SELECT seq, message_id, run_id, role, content, name, tool_calls, tool_call_id,"
                " created_at FROM lma_messages WHERE thread_key = %s AND seq < %s"
                " ORDER BY seq DESC LIMIT %s",
                (thread_key, before_seq if before_seq is not None else 2**31 - 1, limit + 1),
            )
            rows = await cur.fetchall()
        more = len(rows) > limit
        rows = list(reversed(rows[:limit]))
        return rows, (rows[0].seq if more and rows else None)

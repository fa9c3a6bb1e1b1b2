"""The transcript: every message of a thread, one row each, append-only. This is the thread's
memory; a checkpoint holds the graph state of one turn.

Rows are keyed by (thread, branch, seq). A thread starts on branch 0 and each turn appends to
its head's branch. A fork (a turn started from an earlier checkpoint) opens a new branch whose
first rows are a copy of the shared prefix, so every branch is a plain range of rows: the
conversation at any checkpoint is `branch = b AND seq < n`, a page of it is an index range scan,
and reading costs the page, not the thread. The rows are written in the same transaction that
moves the thread's head (the single commit statement in `RunStore.complete`), so the
transcript never shows a turn that did not complete.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import class_row

from app.memory.pool import Pool

_SELECT = (
    "SELECT seq, message_id, run_id, role, content, name, tool_calls, tool_call_id, created_at"
    " FROM lma_messages"
)


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


class Transcript:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def page(
        self, thread_key: uuid.UUID, *, branch: int, limit: int, before_seq: int | None
    ) -> tuple[list[StoredMessage], int | None]:
        """Up to `limit` messages before `before_seq` (or the latest), oldest first, and the
        cursor (a seq) for the page before this one, or None at the start of the thread."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(StoredMessage))
            await cur.execute(
                _SELECT + " WHERE thread_key = %s AND branch = %s AND seq < %s ORDER BY seq DESC LIMIT %s",
                (thread_key, branch, before_seq if before_seq is not None else 2**31 - 1, limit + 1),
            )
            rows = await cur.fetchall()
        more = len(rows) > limit
        rows = list(reversed(rows[:limit]))
        return rows, (rows[0].seq if more and rows else None)

    async def upto(
        self, thread_key: uuid.UUID, *, branch: int, end_seq: int, start_seq: int = 0
    ) -> list[StoredMessage]:
        """The conversation of a branch from `start_seq` to before `end_seq` (from 0: the state
        at a checkpoint; from a run's first row: that turn's messages)."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(StoredMessage))
            await cur.execute(
                _SELECT + " WHERE thread_key = %s AND branch = %s AND seq >= %s AND seq < %s ORDER BY seq",
                (thread_key, branch, start_seq, end_seq),
            )
            return await cur.fetchall()

    async def at_head(self, owner: str, thread_id: str) -> list[StoredMessage]:
        """The conversation at a thread's head, by the thread's id: one round trip."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(StoredMessage))
            await cur.execute(
                "SELECT m.seq, m.message_id, m.run_id, m.role, m.content, m.name, m.tool_calls,"
                "  m.tool_call_id, m.created_at"
                " FROM lma_threads t JOIN lma_messages m ON m.thread_key = t.thread_key"
                "  AND m.branch = t.branch AND m.seq < t.message_count"
                " WHERE t.owner = %s AND t.thread_id = %s ORDER BY m.seq",
                (owner, thread_id),
            )
            return await cur.fetchall()

    async def ranges(self, wanted: list[tuple[uuid.UUID, int, int]]) -> list[list[StoredMessage]]:
        """Several conversations in one round trip: for each (thread_key, branch, end_seq) the
        rows of that branch before `end_seq`, in the order asked."""
        if not wanted:
            return []
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT w.n, m.seq, m.message_id, m.run_id, m.role, m.content, m.name, m.tool_calls,"
                "  m.tool_call_id, m.created_at"
                " FROM unnest(%s::uuid[], %s::int[], %s::int[]) WITH ORDINALITY AS w(k, b, e, n)"
                " JOIN lma_messages m ON m.thread_key = w.k AND m.branch = w.b AND m.seq < w.e"
                " ORDER BY w.n, m.seq",
                ([w[0] for w in wanted], [w[1] for w in wanted], [w[2] for w in wanted]),
            )
            rows = await cur.fetchall()
        found: list[list[StoredMessage]] = [[] for _ in wanted]
        for n, *fields in rows:
            assert isinstance(n, int)
            found[n - 1].append(StoredMessage(*fields))  # type: ignore[arg-type]
        return found

    async def window(
        self, thread_key: uuid.UUID, *, branch: int, end_seq: int, limit: int
    ) -> list[StoredMessage]:
        """The last messages before `end_seq` that a turn's model sees, oldest first.

        At most `limit`, starting at a user message so a tool call is never separated from
        the message that asked for it and no tool result lacks its call.
        """
        rows, _ = await self.page(thread_key, branch=branch, limit=limit, before_seq=end_seq)
        if rows and rows[0].seq > 0:
            first_user = next((i for i, m in enumerate(rows) if m.role == "user"), len(rows))
            rows = rows[first_user:]
        return rows

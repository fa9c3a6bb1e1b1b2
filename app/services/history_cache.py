"""The history window a turn's model sees, cached per process.

Loading a window means reading up to HISTORY_MESSAGES transcript rows and building message
objects from them, which grows with the window. But transcript rows never change once written
(a fork copies to a new branch), so a window is fully identified by (thread, branch, end
position): after a turn we keep the window the next turn will need, and a cache hit can never be
stale, whatever other processes do. A miss (another replica served the last turn, a fork, a
restart) reads the transcript.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from langchain_core.messages import BaseMessage, HumanMessage

from app.agent.messages import stored_to_langchain
from app.lru import Lru
from app.memory.transcript import Transcript
from app.settings import DEFAULT_CACHE_BYTES

Key = tuple[uuid.UUID, int, int]


def trim_window(messages: Sequence[BaseMessage], limit: int) -> list[BaseMessage]:
    """The last `limit` messages, starting at a user message when anything was cut, so a tool
    call is never shown without the request before it or a tool result without its call."""
    if len(messages) <= limit:
        return list(messages)
    tail = list(messages[len(messages) - limit :]) if limit else []
    first_user = next((i for i, m in enumerate(tail) if isinstance(m, HumanMessage)), len(tail))
    return tail[first_user:]


class HistoryCache:
    def __init__(
        self,
        transcript: Transcript,
        *,
        limit: int,
        capacity: int = 2048,
        max_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        """`max_bytes`: CACHE_MAX_BYTES; windows of long messages weigh megabytes each."""
        self._transcript = transcript
        self._limit = limit
        self._entries: Lru[Key, list[BaseMessage]] = Lru(capacity, max_bytes=max_bytes)

    async def window(self, thread_key: uuid.UUID, *, branch: int, end_seq: int) -> list[BaseMessage]:
        cached = self._entries.get((thread_key, branch, end_seq))
        if cached is not None:
            return list(cached)
        rows = await self._transcript.window(thread_key, branch=branch, end_seq=end_seq, limit=self._limit)
        return [stored_to_langchain(m) for m in rows]

    def remember(
        self,
        thread_key: uuid.UUID,
        *,
        branch: int,
        end_seq: int,
        before: Sequence[BaseMessage],
        turn: Sequence[BaseMessage],
    ) -> None:
        """Keep the window that ends after `turn` (which followed the window `before`)."""
        self._entries.put((thread_key, branch, end_seq), trim_window([*before, *turn], self._limit))

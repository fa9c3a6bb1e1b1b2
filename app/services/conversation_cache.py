"""Whole conversations, each message already encoded for a transport, cached per process by
where they end.

The Agent Protocol answers (`runs.wait`) and streams (`runs.stream`, `values`) a thread's whole
conversation on every turn: read from the transcript and encoded message by message, that grows
with the thread. Transcript rows never change once written (a fork copies them to a new branch),
so the conversation that ends at (thread, branch, position) is always the same: kept after a
turn, the next turn of the thread encodes only its own messages, whatever other processes do.
A miss (another replica served the last turn, a fork, a restart) reads the transcript.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Sequence

from app.lru import Lru
from app.memory.transcript import StoredMessage
from app.services.threads import ThreadService

# (thread_key, branch, end): the conversation is that branch's rows before `end`.
End = tuple[uuid.UUID, int, int]
_STR_OVERHEAD = sys.getsizeof("")


def _weight(items: tuple[str, ...]) -> int:
    return sys.getsizeof(items) + sum(_STR_OVERHEAD + len(s) for s in items)


class EncodedConversations:
    def __init__(self, threads: ThreadService, *, capacity: int = 2048, max_bytes: int) -> None:
        self._threads = threads
        self._entries: Lru[End, tuple[str, ...]] = Lru(capacity, max_bytes=max_bytes, weigh=_weight)

    async def upto(self, end: End, encode: Callable[[StoredMessage], str]) -> tuple[str, ...]:
        """The conversation ending at `end`, each message encoded by `encode` (kept)."""
        items = self._entries.get(end) if end[2] else ()
        if items is None:
            items = tuple(encode(m) for m in await self._threads.conversation_until(end))
            self._entries.put(end, items)
        return items

    def extend(
        self, before: End, end: End, turn: Sequence[StoredMessage], encode: Callable[[StoredMessage], str]
    ) -> tuple[str, ...] | None:
        """The conversation ending at `end`: the one ending at `before` (kept) and then `turn`, a
        run's messages (a fork's run starts on another branch than it ends on). None when the
        one before is not kept."""
        earlier = self._entries.get(before) if before[2] else ()
        if earlier is None or end[2] != before[2] + len(turn):
            return None
        items = earlier + tuple(encode(m) for m in turn)
        self._entries.discard(before)  # the thread moved on: one entry per thread
        self._entries.put(end, items)
        return items

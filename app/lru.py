"""A bounded least-recently-used map, for the per-process caches of immutable rows.

Bounded by entries and by bytes: an entry count alone lets a cache of long threads grow to
gigabytes (2,048 windows of 200 long messages each), so each entry is weighed when it is put
(`approximate_bytes`) and the least recently used go until both bounds hold. An entry heavier
than the whole byte budget is not kept at all.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from langchain_core.messages import BaseMessage

K = TypeVar("K")
V = TypeVar("V")

# What a message object costs beyond its text (the pydantic model, its dicts and ids): tracemalloc
# shows about 850 bytes for a user message and 1,500 for an answer with a tool call (langchain-core 1.x).
_MESSAGE_OVERHEAD = 1200


def approximate_bytes(value: Any) -> int:
    """Memory held by `value`, estimated by walking it: text and bytes by length, messages by
    content and tool-call arguments plus a fixed overhead, containers by their items. Cheap
    (no serialization) and within a small factor of what tracemalloc reports."""
    total = 0
    seen: set[int] = set()
    pending = [value]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, str | bytes | bytearray):
            total += sys.getsizeof(item)
        elif isinstance(item, BaseMessage):
            total += _MESSAGE_OVERHEAD
            pending.append(item.content)
            pending.extend(getattr(item, "tool_calls", None) or [])
        elif isinstance(item, Mapping):
            total += sys.getsizeof(item)
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += sys.getsizeof(item)
            pending.extend(item)
        else:
            total += sys.getsizeof(item)
            pending.extend(getattr(item, "__dict__", {}).values())
    return total


class Lru(Generic[K, V]):
    def __init__(
        self,
        capacity: int,
        *,
        max_bytes: int | None = None,
        weigh: Callable[[V], int] = approximate_bytes,
    ) -> None:
        if capacity < 0 or (max_bytes is not None and max_bytes < 0):
            raise ValueError("capacity and max_bytes must be zero or more")
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._weigh = weigh
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """The estimated size of what is kept (0 when there is no byte bound)."""
        return self._bytes

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V) -> None:
        self.discard(key)
        size = self._weigh(value) if self._max_bytes is not None else 0
        if self._max_bytes is not None and size > self._max_bytes:
            return  # would evict everything else and still not fit
        self._entries[key] = (value, size)
        self._bytes += size
        while len(self._entries) > self._capacity or (
            self._max_bytes is not None and self._bytes > self._max_bytes
        ):
            _, (_, evicted) = self._entries.popitem(last=False)
            self._bytes -= evicted

    def discard(self, key: K) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[1]

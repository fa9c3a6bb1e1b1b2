"""Linear storage for list channels: a new version of a list stored as what was appended to the
version before it, in the checkpointer's own blob table.

The stock saver stores a channel's whole value again at every new version, so a `messages` list
costs O(n^2) bytes over a thread's life. Here, when a list's new value starts with the whole
value of the version it replaces (what `add_messages` or `operator.add` does when they only
append), its `checkpoint_blobs` row holds only the appended items, and its `type` column says
so and names the version it extends: `lma-delta:<base version>:<serializer type>`. Everything
else is stored as the stock saver stores it: a value that is not an append of the previous one
(a `RemoveMessage`, a rewrite, an `Overwrite`), the first version of a list, values of other
types, and every K-th version of a chain (a snapshot), so rebuilding a value reads at most K rows.

The rows keep the stock primary key (thread, namespace, channel, version), so deleting, copying
and measuring a thread's blobs work on them unchanged. Reading a delta walks back along its
`type` pointers to the nearest snapshot (one recursive query, `SELECT_CHAINS_SQL`).

This module is the encoding and the walk; `app/memory/delta_saver.py` decides when to use them.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.memory.langgraph_internals import stock_select_with_blobs

DELTA_PREFIX = "lma-delta:"

# The blobs of one (thread, namespace) reachable from the given (channel, version) pairs by
# following delta pointers: each chain down to its snapshot (at most K rows per chain). Each step
# is a lookup by the whole primary key (`LIMIT 1` keeps the planner from scanning the thread's
# rows with a filter, which it picks when its statistics think the thread is small).
SELECT_CHAINS_SQL = """
WITH RECURSIVE chain AS (
    SELECT b.channel, b.version, b.type, b.blob
    FROM unnest(%(channels)s::text[], %(versions)s::text[]) AS s(channel, version)
    CROSS JOIN LATERAL (
        SELECT channel, version, type, blob FROM checkpoint_blobs
        WHERE thread_id = %(thread_id)s AND checkpoint_ns = %(checkpoint_ns)s
          AND channel = s.channel AND version = s.version
        LIMIT 1
    ) AS b
  UNION ALL
    SELECT b.channel, b.version, b.type, b.blob
    FROM chain c
    CROSS JOIN LATERAL (
        SELECT channel, version, type, blob FROM checkpoint_blobs
        WHERE thread_id = %(thread_id)s AND checkpoint_ns = %(checkpoint_ns)s
          AND channel = c.channel AND version = split_part(c.type, ':', 2)
        LIMIT 1
    ) AS b
    WHERE c.type LIKE 'lma-delta:%%'
)
SELECT channel, version, type, blob FROM chain
"""

# The stock saver's `SELECT_SQL` (same columns, same rows) with each blob found by its whole
# primary key: the stock query joins a checkpoint's versions to all of its thread's blobs, which
# the planner does by scanning them for every checkpoint read, so a read cost the thread's length.
SELECT_CHECKPOINTS_SQL = stock_select_with_blobs(
    """
        select array_agg(array[bl.channel::bytea, bl.type::bytea, bl.blob])
        from jsonb_each_text(checkpoint -> 'channel_versions') as v
        cross join lateral (
            select b.channel, b.type, b.blob from checkpoint_blobs b
            where b.thread_id = checkpoints.thread_id
                and b.checkpoint_ns = checkpoints.checkpoint_ns
                and b.channel = v.key
                and b.version = v.value
            limit 1
        ) as bl
    """
)

# A delta blob written over a snapshot of the same row, when a prune would drop its base.
MATERIALIZE_BLOB_SQL = """
UPDATE checkpoint_blobs SET type = %s, blob = %s
WHERE thread_id = %s AND checkpoint_ns = %s AND channel = %s AND version = %s
"""

# The delta blobs the newest checkpoint of each namespace of a thread refers to (what a
# `keep_latest` prune keeps), with that checkpoint.
SELECT_HEAD_DELTAS_SQL = """
SELECT h.checkpoint_ns, h.checkpoint_id, b.channel, b.version
FROM (
    SELECT DISTINCT ON (checkpoint_ns) checkpoint_ns, checkpoint_id, checkpoint
    FROM checkpoints WHERE thread_id = %(thread_id)s
    ORDER BY checkpoint_ns DESC, checkpoint_id DESC
) AS h
CROSS JOIN LATERAL jsonb_each_text(h.checkpoint -> 'channel_versions') AS v
JOIN checkpoint_blobs b
  ON b.thread_id = %(thread_id)s AND b.checkpoint_ns = h.checkpoint_ns
 AND b.channel = v.key AND b.version = v.value
WHERE b.type LIKE 'lma-delta:%%'
"""

BlobKey = tuple[str, str, str, str]  # thread_id, checkpoint_ns, channel, version
Decode = Callable[[tuple[str, bytes]], Any]


def delta_type(base_version: str, serialized_type: str) -> str:
    return f"{DELTA_PREFIX}{base_version}:{serialized_type}"


def parse_delta_type(blob_type: str) -> tuple[str, str] | None:
    """(base version, serializer type) of a delta blob's `type`; None for any other blob."""
    if not blob_type.startswith(DELTA_PREFIX):
        return None
    base, _, serialized = blob_type[len(DELTA_PREFIX) :].partition(":")
    return base, serialized


def can_extend(version: object) -> bool:
    """A version a delta may name as its base (its `type` column keeps it before a colon)."""
    return isinstance(version, str) and ":" not in version


class Commit(Protocol):
    """Rows staged for a turn's commit (`StagedCheckpoints`): written once `committed`."""

    committed: bool


# Memory a decoded value takes per byte of its msgpack blob: tracemalloc shows 5.6 for a
# conversation of user messages, answers and tool calls (langchain-core 1.x), `approximate_bytes`
# 5.1. Weighing a kept list by its blob's length costs nothing; walking 1,200 messages to weigh
# them took 4 ms, a fifth of a cold read of a 500-turn thread.
MEMORY_PER_BLOB_BYTE = 6


def blob_weight(blob: bytes | None) -> int:
    """The memory a value decoded from `blob` is estimated to take."""
    return MEMORY_PER_BLOB_BYTE * len(blob or b"")


@dataclass(frozen=True)
class KnownList:
    """A list channel's value at one version, as stored (or as it will be once `stage` commits).

    `items` is a tuple: a caller may grow the list it was handed in place, and a base must stay
    what the database holds. `size` estimates the memory of all its items and `added` of those
    it holds first (a delta's appended ones; all of a snapshot's), each weighed by the length of
    the blob that stores them (`blob_weight`), so nothing walks a long conversation to weigh it."""

    items: tuple[Any, ...]
    depth: int  # deltas since the last snapshot along its chain (0: stored whole)
    size: int
    added: int
    stage: Commit | None = None  # the turn commit that will write it (None: in the database)

    @classmethod
    def whole(cls, items: Sequence[Any], blob: bytes | None, stage: Commit | None = None) -> KnownList:
        size = blob_weight(blob)
        return cls(tuple(items), 0, size, size, stage)

    def extended(self, tail: Sequence[Any], blob: bytes | None, stage: Commit | None = None) -> KnownList:
        added = blob_weight(blob)
        return KnownList(self.items + tuple(tail), self.depth + 1, self.size + added, added, stage)

    def usable_by(self, stage: Commit | None) -> bool:
        """Whether a row written with `stage` may extend it: it is in the database, or it is
        written by the same commit (a failed commit writes neither)."""
        return self.stage is None or self.stage is stage or self.stage.committed


def weigh_known(value: KnownList) -> int:
    """The memory a kept list adds: its pointers and the items it holds first."""
    return 64 + 8 * len(value.items) + value.added


def appended(base: Sequence[Any], value: list[Any]) -> list[Any] | None:
    """What `value` appends to `base`, or None when `value` does not start with `base`.

    Items compare by identity first (a reducer that appends keeps the items it had), then by
    type and equality (a value read back from the database holds new but equal objects)."""
    n = len(base)
    if n == 0 or len(value) < n:
        return None
    if all(map(operator.is_, base, value)):  # the common case, at C speed (a turn does this
        return value[n:]  # for each list it writes, over the whole conversation)
    for old, new in zip(base, value, strict=False):
        if old is not new and not (type(old) is type(new) and old == new):
            return None
    return value[n:]


def is_list_value(value: object) -> bool:
    """Values that may be stored as deltas: plain lists (not subclasses, not a `_DeltaSnapshot`)."""
    return type(value) is list


@dataclass
class ChainRows:
    """Stored blob rows by key, and the kept values a read found along their chains (held here
    for the read, so the cache evicting them meanwhile cannot break it)."""

    rows: dict[BlobKey, tuple[str, bytes | None]] = field(default_factory=dict)
    pinned: dict[BlobKey, KnownList] = field(default_factory=dict)

    def missing_bases(
        self, starts: Iterable[BlobKey], known: Callable[[BlobKey], KnownList | None]
    ) -> set[BlobKey]:
        """The first key along each start's chain that is neither kept nor among the rows."""
        missing: set[BlobKey] = set()
        for key in starts:
            while (found := self.pinned.get(key) or known(key)) is None:
                row = self.rows.get(key)
                if row is None:
                    missing.add(key)
                    break
                parsed = parse_delta_type(row[0])
                if parsed is None:
                    break
                key = (key[0], key[1], key[2], parsed[0])
            else:
                self.pinned[key] = found
        return missing

    def rebuild(
        self,
        key: BlobKey,
        *,
        known: Callable[[BlobKey], KnownList | None],
        keep: Callable[[BlobKey, KnownList], None],
        decode: Decode,
    ) -> KnownList:
        """The value at `key`: walk down to a kept value or a snapshot, then apply the deltas
        back up, keeping each version rebuilt on the way."""
        path: list[tuple[BlobKey, tuple[str, bytes]]] = []
        while (found := self.pinned.get(key) or known(key)) is None:
            row = self.rows.get(key)
            if row is None:
                raise LookupError(
                    f"checkpoint blob {key[2]!r} version {key[3]!r} of thread {key[0]!r} is missing:"
                    " a delta names it as its base (was the thread pruned by another tool?)"
                )
            blob_type, blob = row
            parsed = parse_delta_type(blob_type)
            if parsed is None:
                found = KnownList.whole(decode((blob_type, blob or b"")), blob)
                keep(key, found)
                break
            path.append((key, (parsed[1], blob or b"")))
            key = (key[0], key[1], key[2], parsed[0])
        for delta_key, serialized in reversed(path):
            found = found.extended(decode(serialized), serialized[1])
            keep(delta_key, found)
        return found


def stored_rows(
    thread_id: str, checkpoint_ns: str, rows: Iterable[Mapping[str, Any]]
) -> dict[BlobKey, tuple[str, bytes | None]]:
    """`SELECT_CHAINS_SQL` rows by key (a row two chains share comes once)."""
    return {
        (thread_id, checkpoint_ns, str(r["channel"]), str(r["version"])): (str(r["type"]), r["blob"])
        for r in rows
    }

"""The LangGraph checkpointer, without the stock saver's process-wide lock, and with the head
checkpoint of a thread served from memory.

`AsyncPostgresSaver` wraps every query in one instance-wide `asyncio.Lock` (langgraph issue
#7259). The lock protects a single shared connection; over a pool every call borrows its own
connection, so the lock only serialises unrelated threads: a process with one shared saver runs
one checkpoint query at a time whatever the pool size. This subclass keeps the stock SQL, schema
and serialisation and only drops the lock when it is given a pool.

Every turn starts by loading the checkpoint it continues from, and LangGraph loads it twice when
it is named by id (once more as "the latest", to see whether the thread moved past it). Both are
answered here without a query when this process wrote that checkpoint: a checkpoint row never
changes once written (a new turn writes a new row), and under `durability="exit"` a completed
turn's checkpoint has no pending writes, so the copy kept at `aput` is what the database would
return. "The latest" is the thread's head as the registry records it, passed in the run config
under `HEAD_KEY`: the newest row could be a partial checkpoint of a crashed turn, which is not
part of the conversation.

A turn's checkpoint is not written on its own either. With a `StagedCheckpoints` under
`STAGE_KEY` in the run config, `aput` serialises the rows exactly as the stock saver would and
hands them to the turn's commit, which writes them in the same statement that moves the thread's
head (`RunStore.complete`): one round trip and one transaction fewer per turn, and a turn that
fails or crashes leaves no checkpoint behind at all.

Storage stays linear in a thread's length for any graph (`app/memory/blob_deltas.py`): a list
channel's new version that only appends to the version its parent checkpoint holds is stored as
the appended items, with a full snapshot when it is not an append and every `snapshot_every`
versions. Reads rebuild the exact value; rows the stock saver wrote read as they always did.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from app.lru import Lru, approximate_bytes
from app.memory.blob_deltas import (
    MATERIALIZE_BLOB_SQL,
    SELECT_CHAINS_SQL,
    SELECT_CHECKPOINTS_SQL,
    SELECT_HEAD_DELTAS_SQL,
    BlobKey,
    ChainRows,
    KnownList,
    appended,
    can_extend,
    delta_type,
    is_list_value,
    parse_delta_type,
    stored_rows,
    weigh_known,
)
from app.memory.langgraph_internals import TASKS, DeltaSnapshot
from app.observability.metrics import Metrics, timed_checkpoint_write
from app.settings import DEFAULT_CACHE_BYTES, DEFAULT_SNAPSHOT_EVERY

# Run-config key naming the checkpoint the thread's registry records as its head (None: the
# thread has no completed turn). With it, "the latest checkpoint" means that one.
HEAD_KEY = "__lma_head"
# In a checkpoint's metadata: the turn whose question its turn asked again (a regenerate).
REGENERATES_KEY = "lma_regenerates"


def regenerated(turn: str | None) -> dict[str, str]:
    """Checkpoint metadata of a turn that asks `turn`'s question again (none otherwise)."""
    return {REGENERATES_KEY: turn} if turn else {}


# Run-config key of the `StagedCheckpoints` that receives the run's checkpoints.
STAGE_KEY = "__lma_stage"

_Key = tuple[str, str, str]  # thread_id, checkpoint_ns, checkpoint_id


def _key(configurable: dict[str, Any], checkpoint_id: str) -> _Key:
    return (str(configurable["thread_id"]), configurable.get("checkpoint_ns", ""), checkpoint_id)


BlobRow = tuple[str, str, str, str, str, bytes | None]  # thread, ns, channel, version, type, blob
CheckpointRow = tuple[str, str, str, str | None, Jsonb, Jsonb]  # thread, ns, id, parent, body, metadata


@dataclass
class StagedCheckpoints:
    """The checkpoint rows a run put, in the stock saver's layout, for its commit to write."""

    blobs: list[BlobRow] = field(default_factory=list)
    checkpoints: list[CheckpointRow] = field(default_factory=list)
    # Set by the commit that wrote them: later checkpoints may then store deltas over them.
    committed: bool = False

    @property
    def last_id(self) -> str | None:
        return self.checkpoints[-1][2] if self.checkpoints else None


def _copy(checkpoint: Checkpoint) -> Checkpoint:
    """A copy the loop can advance in place (it updates versions and values), same keys."""
    copy = checkpoint.copy()
    copy["channel_values"] = checkpoint["channel_values"].copy()
    copy["channel_versions"] = checkpoint["channel_versions"].copy()
    copy["versions_seen"] = {node: seen.copy() for node, seen in checkpoint["versions_seen"].items()}
    return copy


_DIGITS = 12  # of a new thread's version numbers: 10^12 versions
_INLINE_WRITES = 16


def _noise() -> str:
    """What tells apart the same version number made on two branches."""
    return f"{random.getrandbits(32):08x}"


class PooledPostgresSaver(AsyncPostgresSaver):
    SELECT_SQL = SELECT_CHECKPOINTS_SQL

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        *,
        metrics: Metrics | None = None,
        cache_size: int = 2048,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        snapshot_every: int = DEFAULT_SNAPSHOT_EVERY,
    ) -> None:
        if not isinstance(pool, AsyncConnectionPool):
            raise TypeError("PooledPostgresSaver needs an AsyncConnectionPool")
        if snapshot_every < 1:
            raise ValueError("snapshot_every must be 1 (every version whole) or more")
        super().__init__(pool)
        self._pool: AsyncConnectionPool[Any] = pool
        self._metrics = metrics
        self._snapshot_every = snapshot_every
        # Bounded by bytes too (CACHE_MAX_BYTES): a checkpoint holds its turn's messages.
        self._written: Lru[_Key, CheckpointTuple] = Lru(cache_size, max_bytes=cache_bytes)
        # List values by version, as stored: the bases of deltas, and what reads rebuild from.
        self._lists: Lru[BlobKey, KnownList] = Lru(cache_size * 8, max_bytes=cache_bytes, weigh=weigh_known)
        # The channel versions of recent checkpoints: a new checkpoint's delta extends its parent's.
        self._versions: Lru[_Key, ChannelVersions] = Lru(cache_size * 4)

    def get_next_version(self, current: str | None, channel: None) -> str:
        """As the stock saver numbers versions, but a new thread's are 21 characters, not 51
        (12 digits, not 32, and 8 random hex digits, not a float): every checkpoint row repeats
        its channels' versions, so this is a third of a row. A thread begun with the stock
        format keeps its width, so versions still compare as their numbers do."""
        if current is None:
            return f"{1:0{_DIGITS}}.{_noise()}"
        if not isinstance(current, str):  # an integer version: numbered as the stock saver does
            return super().get_next_version(current, channel)
        number = current.split(".")[0]
        return f"{int(number) + 1:0{len(number)}}.{_noise()}"

    @property
    def cache_bytes(self) -> int:
        """The estimated size of the checkpoints kept in memory (at most CACHE_MAX_BYTES)."""
        return self._written.bytes

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        configurable = config["configurable"]
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id is None and HEAD_KEY in configurable:
            checkpoint_id = configurable[HEAD_KEY]
            if checkpoint_id is None:
                return None
            config = {**config, "configurable": {**configurable, "checkpoint_id": checkpoint_id}}
        saved = self._written.get(_key(configurable, checkpoint_id)) if checkpoint_id is not None else None
        if saved is not None:
            # A copy: the loop advances the checkpoint's versions in place.
            return saved._replace(checkpoint=_copy(saved.checkpoint), metadata=saved.metadata.copy())
        checkpoint_ns = configurable.get("checkpoint_ns", "")
        if checkpoint_id:
            where = "WHERE thread_id = %s AND checkpoint_ns = %s AND checkpoint_id = %s"
            args: tuple[Any, ...] = (configurable["thread_id"], checkpoint_ns, checkpoint_id)
        else:
            where = "WHERE thread_id = %s AND checkpoint_ns = %s ORDER BY checkpoint_id DESC LIMIT 1"
            args = (configurable["thread_id"], checkpoint_ns)
        found = await self._read(where, args)
        return found[0] if found else None

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        where, args = self._search_where(config, filter, before)
        where += " ORDER BY checkpoint_id DESC"
        if limit is not None:
            where += " LIMIT %s"
            args.append(int(limit))
        for found in await self._read(where, args):
            yield found

    async def _read(self, where: str, args: Sequence[Any]) -> list[CheckpointTuple]:
        """The checkpoints `where` selects, as the stock saver reads them, with list values
        stored as deltas rebuilt: the page's rows first, then every chain they need that is not
        kept in memory, in one more query (never two connections at once)."""
        async with self._cursor() as cur:
            await cur.execute(self.SELECT_SQL + where, args, binary=True)
            rows = await cur.fetchall()
            # As the stock saver does: a checkpoint older than format 4 gets its pending sends.
            if old := [r for r in rows if r["checkpoint"]["v"] < 4 and r["parent_checkpoint_id"]]:
                await cur.execute(
                    self.SELECT_PENDING_SENDS_SQL,
                    (rows[0]["thread_id"], [r["parent_checkpoint_id"] for r in old]),
                )
                by_parent: dict[str, list[DictRow]] = defaultdict(list)
                for row in old:
                    by_parent[row["parent_checkpoint_id"]].append(row)
                for sends in await cur.fetchall():
                    for row in by_parent[sends["checkpoint_id"]]:
                        if row["channel_values"] is None:
                            row["channel_values"] = []
                        self._migrate_pending_sends(sends["sends"], row["checkpoint"], row["channel_values"])
        chains = ChainRows()
        starts: list[BlobKey] = []
        for row in rows:
            versions = row["checkpoint"]["channel_versions"]
            for raw_channel, raw_type, blob in row["channel_values"] or []:
                channel, blob_type = raw_channel.decode(), raw_type.decode()
                if parse_delta_type(blob_type) is not None:
                    key = (row["thread_id"], row["checkpoint_ns"], channel, str(versions[channel]))
                    chains.rows[key] = (blob_type, blob)
                    starts.append(key)
        await self._fetch_chains(chains, chains.missing_bases(starts, self._lists.get))
        return [await self._tuple(row, chains) for row in rows]

    async def _fetch_chains(self, chains: ChainRows, missing: set[BlobKey]) -> None:
        by_thread: dict[tuple[str, str], list[BlobKey]] = defaultdict(list)
        for key in missing:
            by_thread[key[:2]].append(key)
        for (thread_id, checkpoint_ns), keys in by_thread.items():
            async with self._cursor() as cur:
                await cur.execute(
                    SELECT_CHAINS_SQL,
                    {
                        "thread_id": thread_id,
                        "checkpoint_ns": checkpoint_ns,
                        "channels": [k[2] for k in keys],
                        "versions": [k[3] for k in keys],
                    },
                    binary=True,
                )
                chains.rows.update(stored_rows(thread_id, checkpoint_ns, await cur.fetchall()))

    async def _tuple(self, row: DictRow, chains: ChainRows) -> CheckpointTuple:
        thread_id, checkpoint_ns = row["thread_id"], row["checkpoint_ns"]
        checkpoint = row["checkpoint"]
        versions = checkpoint["channel_versions"]
        values = dict(checkpoint.get("channel_values") or {})
        for raw_channel, raw_type, blob in row["channel_values"] or []:
            channel, blob_type = raw_channel.decode(), raw_type.decode()
            key = (thread_id, checkpoint_ns, channel, str(versions[channel]))
            if parse_delta_type(blob_type) is not None:
                known = chains.rebuild(
                    key, known=self._lists.get, keep=self._lists.put, decode=self.serde.loads_typed
                )
                values[channel] = list(known.items)
            elif (kept := self._lists.get(key)) is not None:
                values[channel] = list(kept.items)  # this version was decoded or written here
            elif blob_type != "empty":
                values[channel] = self.serde.loads_typed((blob_type, blob))
                if is_list_value(values[channel]) and channel != TASKS:
                    self._lists.put(key, KnownList.whole(values[channel]))
        self._versions.put((thread_id, checkpoint_ns, row["checkpoint_id"]), dict(versions))
        at: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}
        parent_id = row["parent_checkpoint_id"]
        return CheckpointTuple(
            {"configurable": {**at, "checkpoint_id": row["checkpoint_id"]}},
            cast(Checkpoint, {**checkpoint, "channel_values": values}),
            row["metadata"],
            {"configurable": {**at, "checkpoint_id": parent_id}} if parent_id else None,
            await self._writes(row["pending_writes"]),
        )

    async def _writes(self, rows: list[tuple[bytes, ...]] | None) -> list[tuple[str, str, Any]]:
        """A checkpoint's pending writes, decoded off the event loop only when there are many
        (a thread hop costs more than decoding a step's few writes)."""
        if rows is None or len(rows) <= _INLINE_WRITES:
            return self._load_writes(rows)  # type: ignore[arg-type]
        return await asyncio.to_thread(self._load_writes, rows)  # type: ignore[arg-type]

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        stored_metadata = get_serializable_checkpoint_metadata(config, metadata)
        stage = config["configurable"].get(STAGE_KEY)
        staged = stage if isinstance(stage, StagedCheckpoints) else None
        blobs, row, lists = self._rows(config, checkpoint, stored_metadata, new_versions, staged)
        if staged is not None:
            staged.blobs.extend(blobs)
            staged.checkpoints.append(row)
        else:
            with timed_checkpoint_write(self._metrics):
                async with self._cursor(pipeline=True) as cur:
                    if blobs:
                        await cur.executemany(self.UPSERT_CHECKPOINT_BLOBS_SQL, blobs)
                    await cur.execute(self.UPSERT_CHECKPOINTS_SQL, row)
        # Only what is written (or staged with its commit) may be a later delta's base.
        for key, known in lists.items():
            self._lists.put(key, known)
        configurable = config["configurable"]
        written: dict[str, Any] = {
            "thread_id": configurable["thread_id"],
            "checkpoint_ns": configurable.get("checkpoint_ns", ""),
            "checkpoint_id": checkpoint["id"],
        }
        next_config: RunnableConfig = {"configurable": written}
        parent_id = configurable.get("checkpoint_id")
        parent: RunnableConfig | None = (
            {"configurable": {**written, "checkpoint_id": parent_id}} if parent_id else None
        )
        self._written.put(
            _key(written, written["checkpoint_id"]),
            CheckpointTuple(next_config, _copy(checkpoint), stored_metadata, parent, []),
            size=self._weight(written, checkpoint, stored_metadata),
        )
        self._versions.put(_key(written, checkpoint["id"]), dict(checkpoint["channel_versions"]))
        return next_config

    def _weight(self, at: dict[str, Any], checkpoint: Checkpoint, metadata: CheckpointMetadata) -> int:
        """What keeping a checkpoint costs, its lists weighed as kept by version (each item
        weighed once, when it was appended) rather than by walking them again."""
        other = dict(checkpoint["channel_values"])
        total = 0
        for channel, value in checkpoint["channel_values"].items():
            version = checkpoint["channel_versions"].get(channel)
            known = self._lists.get((str(at["thread_id"]), at["checkpoint_ns"], channel, str(version)))
            if known is not None and is_list_value(value) and len(value) == len(known.items):
                total += 64 + 8 * len(value) + known.size
                del other[channel]
        rest = approximate_bytes({**checkpoint, "channel_values": other})
        return total + rest + approximate_bytes(metadata)

    def _rows(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        stored_metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
        stage: StagedCheckpoints | None,
    ) -> tuple[list[BlobRow], CheckpointRow, dict[BlobKey, KnownList]]:
        """The rows of one checkpoint in the stock layout (primitives inline in the checkpoint,
        other values as blobs of their new versions), list values that extend their parent's
        stored as deltas; and the list values to keep once the rows are written."""
        configurable = config["configurable"]
        thread_id, checkpoint_ns = str(configurable["thread_id"]), configurable.get("checkpoint_ns", "")
        inline = dict(checkpoint["channel_values"])
        blobs: dict[str, Any] = {}
        for channel, value in checkpoint["channel_values"].items():
            if isinstance(value, DeltaSnapshot):
                blobs[channel] = inline.pop(channel)
                inline[channel] = True  # the stock marker: the value is in the blob
            elif not (value is None or isinstance(value, str | int | float | bool)):
                blobs[channel] = inline.pop(channel)
        parent_id = configurable.get("checkpoint_id")
        parent = self._versions.get((thread_id, checkpoint_ns, parent_id)) if parent_id else None
        rows: list[BlobRow] = []
        lists: dict[BlobKey, KnownList] = {}
        for channel, version in new_versions.items():
            if channel not in blobs:
                continue
            key = (thread_id, checkpoint_ns, channel, str(version))
            value = blobs[channel]
            base = parent.get(channel) if parent else None
            if is_list_value(value) and channel != TASKS:
                blob_type, blob, lists[key] = self._list_blob(key, value, base, stage)
            else:
                blob_type, blob = self.serde.dumps_typed(value)
            rows.append((thread_id, checkpoint_ns, channel, str(version), blob_type, blob))
        return (
            rows,
            (
                thread_id,
                checkpoint_ns,
                checkpoint["id"],
                parent_id,
                Jsonb({**checkpoint, "channel_values": inline}),
                Jsonb(stored_metadata),
            ),
            lists,
        )

    def _list_blob(
        self, key: BlobKey, value: list[Any], base_version: object, stage: StagedCheckpoints | None
    ) -> tuple[str, bytes, KnownList]:
        """A list value's blob: the items it appends to its parent's version when it only
        appends and the chain is shorter than `snapshot_every`, else the whole value."""
        base = self._lists.get((*key[:3], str(base_version))) if can_extend(base_version) else None
        if base is not None and base.usable_by(stage) and base.depth + 1 < self._snapshot_every:
            tail = appended(base.items, value)
            if tail is not None:
                serialized_type, blob = self.serde.dumps_typed(tail)
                return delta_type(str(base_version), serialized_type), blob, base.extended(tail, stage)
        blob_type, blob = self.serde.dumps_typed(value)
        return blob_type, blob, KnownList.whole(value, stage)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """As the stock saver prunes, but a kept checkpoint's deltas are first written whole:
        the older versions they extend are about to go."""
        if strategy == "keep_latest":
            for thread_id in thread_ids:
                await self._materialize_heads(thread_id)
        await super().aprune(thread_ids, strategy=strategy)

    async def _materialize_heads(self, thread_id: str) -> None:
        async with self._cursor() as cur:
            await cur.execute(SELECT_HEAD_DELTAS_SQL, {"thread_id": thread_id})
            deltas = await cur.fetchall()
        for head in {(d["checkpoint_ns"], d["checkpoint_id"]) for d in deltas}:
            found = await self.aget_tuple(
                {"configurable": {"thread_id": thread_id, "checkpoint_ns": head[0], "checkpoint_id": head[1]}}
            )
            assert found is not None
            values = found.checkpoint["channel_values"]
            async with self._cursor(pipeline=True) as cur:
                for d in deltas:
                    if (d["checkpoint_ns"], d["checkpoint_id"]) == head:
                        blob_type, blob = self.serde.dumps_typed(values[d["channel"]])
                        await cur.execute(
                            MATERIALIZE_BLOB_SQL,
                            (blob_type, blob, thread_id, head[0], d["channel"], d["version"]),
                        )
                        key = (thread_id, head[0], d["channel"], d["version"])
                        self._lists.put(key, KnownList.whole(values[d["channel"]]))

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        # The checkpoint now has pending writes the kept copy lacks: read it from the table.
        configurable = config["configurable"]
        self._written.discard(_key(configurable, configurable["checkpoint_id"]))
        if isinstance(configurable.get(STAGE_KEY), StagedCheckpoints):
            # Pending writes only serve to resume a failed run; a staged run that fails is
            # dropped whole, and its checkpoints were never written.
            return
        await super().aput_writes(config, writes, task_id, task_path)

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        async with self._pool.connection() as conn:
            if pipeline and self.supports_pipeline:
                # One round trip for the blob upserts and the checkpoint row.
                async with conn.pipeline(), conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
            elif pipeline:
                async with (
                    conn.transaction(),
                    conn.cursor(binary=True, row_factory=dict_row) as cur,
                ):
                    yield cur
            else:
                async with conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur

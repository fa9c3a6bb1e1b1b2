"""A checkpoint saver that stores a list channel's new version as what it appends to the
previous one: linear storage for any graph, transparent to it.

`DeltaPostgresSaver` is `AsyncPostgresSaver` (same tables, same rows, same serialisation) but for
list values: when a list's new version starts with the whole value of the version its parent
checkpoint holds, its blob holds only the appended items (`app/memory/blob_deltas.py` has the
encoding and the walk back to the nearest snapshot). Reads rebuild the exact value, from memory
when this process wrote or read that version, else from the table; rows the stock saver wrote read
as they always did. `app/memory/checkpointer.py` builds the service's saver on it.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
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
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from app.lru import Lru
from app.memory.blob_deltas import (
    MATERIALIZE_BLOB_SQL,
    SELECT_CHAINS_SQL,
    SELECT_CHECKPOINTS_SQL,
    SELECT_HEAD_DELTAS_SQL,
    BlobKey,
    ChainRows,
    Commit,
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
from app.memory.message_decoding import ListDecoder
from app.settings import DEFAULT_CACHE_BYTES, DEFAULT_SNAPSHOT_EVERY

BlobRow = tuple[str, str, str, str, str, bytes | None]  # thread, ns, channel, version, type, blob
CheckpointRow = tuple[str, str, str, str | None, Jsonb, Jsonb]  # thread, ns, id, parent, body, metadata
CheckpointKey = tuple[str, str, str]  # thread_id, checkpoint_ns, checkpoint_id

_DIGITS = 12  # of a new thread's version numbers: 10^12 versions
_INLINE_WRITES = 16


def _noise() -> str:
    """What tells apart the same version number made on two branches."""
    return f"{random.getrandbits(32):08x}"


class DeltaPostgresSaver(AsyncPostgresSaver):
    SELECT_SQL = SELECT_CHECKPOINTS_SQL

    def __init__(
        self,
        conn: AsyncConnectionPool[Any],
        *,
        cache_size: int = 2048,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        snapshot_every: int = DEFAULT_SNAPSHOT_EVERY,
    ) -> None:
        if snapshot_every < 1:
            raise ValueError("snapshot_every must be 1 (every version whole) or more")
        super().__init__(conn)
        self._snapshot_every = snapshot_every
        self._decoder = ListDecoder(self.serde)
        # List values by version, as stored: the bases of deltas, and what reads rebuild from.
        self._lists: Lru[BlobKey, KnownList] = Lru(cache_size * 8, max_bytes=cache_bytes, weigh=weigh_known)
        # The channel versions of recent checkpoints: a new checkpoint's delta extends its parent's.
        self._versions: Lru[CheckpointKey, ChannelVersions] = Lru(cache_size * 4)

    def _decode(self, typed: tuple[str, bytes]) -> Any:
        """A stored blob's value (conversations are most of a cold read: `ListDecoder`). The
        decoder follows `self.serde`: compiling a graph may hand it a clone of this saver with
        the state's types added to the serializer's allowlist (`with_allowlist`)."""
        if self._decoder.serde is not self.serde:
            self._decoder = ListDecoder(self.serde)
        return self._decoder(typed)

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

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        configurable = config["configurable"]
        checkpoint_id = get_checkpoint_id(config)
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
                known = chains.rebuild(key, known=self._lists.get, keep=self._lists.put, decode=self._decode)
                values[channel] = list(known.items)
            elif (kept := self._lists.get(key)) is not None:
                values[channel] = list(kept.items)  # this version was decoded or written here
            elif blob_type != "empty":
                values[channel] = self._decode((blob_type, blob))
                if is_list_value(values[channel]) and channel != TASKS:
                    self._lists.put(key, KnownList.whole(values[channel], blob))
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
        blobs, row, lists = self._rows(config, checkpoint, stored_metadata, new_versions, None)
        async with self._cursor(pipeline=True) as cur:
            if blobs:
                await cur.executemany(self.UPSERT_CHECKPOINT_BLOBS_SQL, blobs)
            await cur.execute(self.UPSERT_CHECKPOINTS_SQL, row)
        return self._remember(config, checkpoint, lists)

    def _remember(
        self, config: RunnableConfig, checkpoint: Checkpoint, lists: dict[BlobKey, KnownList]
    ) -> RunnableConfig:
        """Keep what a checkpoint's rows hold, once they are written (or staged with their
        commit): only those may be a later delta's base. Returns the checkpoint's config."""
        for key, known in lists.items():
            self._lists.put(key, known)
        configurable = config["configurable"]
        at = (str(configurable["thread_id"]), configurable.get("checkpoint_ns", ""), checkpoint["id"])
        self._versions.put(at, dict(checkpoint["channel_versions"]))
        return {
            "configurable": {
                "thread_id": configurable["thread_id"],
                "checkpoint_ns": at[1],
                "checkpoint_id": checkpoint["id"],
            }
        }

    def _rows(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        stored_metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
        stage: Commit | None,
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
        self, key: BlobKey, value: list[Any], base_version: object, stage: Commit | None
    ) -> tuple[str, bytes, KnownList]:
        """A list value's blob: the items it appends to its parent's version when it only
        appends and the chain is shorter than `snapshot_every`, else the whole value."""
        base = self._lists.get((*key[:3], str(base_version))) if can_extend(base_version) else None
        if base is not None and base.usable_by(stage) and base.depth + 1 < self._snapshot_every:
            tail = appended(base.items, value)
            if tail is not None:
                serialized_type, blob = self.serde.dumps_typed(tail)
                return delta_type(str(base_version), serialized_type), blob, base.extended(tail, blob, stage)
        blob_type, blob = self.serde.dumps_typed(value)
        return blob_type, blob, KnownList.whole(value, blob, stage)

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
                        self._lists.put(key, KnownList.whole(values[d["channel"]], blob))

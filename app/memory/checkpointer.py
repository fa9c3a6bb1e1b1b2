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

Storage stays linear in a thread's length for any graph: this saver builds on
`DeltaPostgresSaver` (`app/memory/delta_saver.py`), which stores a list channel's new version as
what it appends to the version its parent checkpoint holds, staged rows included.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.types import Interrupt
from psycopg import AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from app.lru import Lru, approximate_bytes
from app.memory.blob_deltas import is_list_value
from app.memory.delta_saver import BlobRow, CheckpointKey, CheckpointRow, DeltaPostgresSaver
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


# The channel of a task's interrupt among a checkpoint's pending writes (LangGraph's own name,
# which it no longer exports).
INTERRUPT = "__interrupt__"

# Run-config key of the `StagedCheckpoints` that receives the run's checkpoints.
STAGE_KEY = "__lma_stage"


def _key(configurable: dict[str, Any], checkpoint_id: str) -> CheckpointKey:
    return (str(configurable["thread_id"]), configurable.get("checkpoint_ns", ""), checkpoint_id)


# thread, ns, checkpoint, task, task path, idx, channel, type, blob
WriteRow = tuple[str, str, str, str, str, int, str, str, bytes]


@dataclass(frozen=True)
class Paused:
    """An interrupt a run paused on, and the task (node) that raised it."""

    interrupt: Interrupt
    task_id: str
    node: str


def _node_of(task_path: str) -> str:
    # A node's own task is "~__pregel_pull, <node>"; others (sends) keep their path.
    return task_path.rsplit(", ", 1)[-1] if task_path.startswith("~__pregel_pull") else task_path


@dataclass
class StagedCheckpoints:
    """The checkpoint rows a run put, in the stock saver's layout, for its commit to write."""

    blobs: list[BlobRow] = field(default_factory=list)
    checkpoints: list[CheckpointRow] = field(default_factory=list)
    # Pending writes of the last checkpoint: a run that paused on an interrupt saves them (the
    # interrupt itself, and what the step's other tasks wrote) so that resuming continues it.
    writes: list[WriteRow] = field(default_factory=list)
    # The interrupts the run paused on (the values of its `__interrupt__` writes).
    interrupts: list[Paused] = field(default_factory=list)
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


class PooledPostgresSaver(DeltaPostgresSaver):
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
        super().__init__(pool, cache_size=cache_size, cache_bytes=cache_bytes, snapshot_every=snapshot_every)
        self._pool: AsyncConnectionPool[Any] = pool
        self._metrics = metrics
        # Bounded by bytes too (CACHE_MAX_BYTES): a checkpoint holds its turn's messages.
        self._written: Lru[CheckpointKey, CheckpointTuple] = Lru(cache_size, max_bytes=cache_bytes)

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
        return await super().aget_tuple(config)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        stored_metadata = get_serializable_checkpoint_metadata(config, metadata)
        stage = config["configurable"].get(STAGE_KEY)
        if isinstance(stage, StagedCheckpoints):
            blobs, row, lists = self._rows(config, checkpoint, stored_metadata, new_versions, stage)
            stage.blobs.extend(blobs)
            stage.checkpoints.append(row)
            next_config = self._remember(config, checkpoint, lists)
        else:
            with timed_checkpoint_write(self._metrics):
                next_config = await super().aput(config, checkpoint, metadata, new_versions)
        written = next_config["configurable"]
        parent_id = config["configurable"].get("checkpoint_id")
        parent: RunnableConfig | None = (
            {"configurable": {**written, "checkpoint_id": parent_id}} if parent_id else None
        )
        self._written.put(
            _key(written, written["checkpoint_id"]),
            CheckpointTuple(next_config, _copy(checkpoint), stored_metadata, parent, []),
            size=self._weight(written, checkpoint, stored_metadata),
        )
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
        stage = configurable.get(STAGE_KEY)
        if isinstance(stage, StagedCheckpoints):
            # Kept for the commit: a run that fails is dropped whole (its checkpoints were never
            # written either); one that paused on an interrupt saves them with its checkpoint.
            checkpoint_id = configurable["checkpoint_id"]
            if stage.writes and stage.writes[0][2] != checkpoint_id:
                stage.writes, stage.interrupts = [], []  # an earlier checkpoint's: superseded
            stage.writes.extend(
                self._dump_writes(
                    str(configurable["thread_id"]),
                    configurable.get("checkpoint_ns", ""),
                    checkpoint_id,
                    task_id,
                    task_path,
                    writes,
                )
            )
            for channel, value in writes:
                if channel == INTERRUPT:
                    stage.interrupts.extend(
                        Paused(v, task_id, _node_of(task_path)) for v in value if isinstance(v, Interrupt)
                    )
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

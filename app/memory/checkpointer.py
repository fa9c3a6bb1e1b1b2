"""The LangGraph checkpointer, without the stock saver's process-wide lock.

`AsyncPostgresSaver` wraps every query in one instance-wide `asyncio.Lock` (langgraph issue
#7259). The lock protects a single shared connection; over a pool every call borrows its own
connection, so the lock only serialises unrelated threads: a process with one shared saver runs
one checkpoint query at a time whatever the pool size. This subclass keeps the stock SQL, schema
and serialisation and only drops the lock when it is given a pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from app.observability.metrics import Metrics


class PooledPostgresSaver(AsyncPostgresSaver):
    def __init__(self, pool: AsyncConnectionPool[Any], *, metrics: Metrics | None = None) -> None:
        if not isinstance(pool, AsyncConnectionPool):
            raise TypeError("PooledPostgresSaver needs an AsyncConnectionPool")
        super().__init__(pool)
        self._pool: AsyncConnectionPool[Any] = pool
        self._metrics = metrics

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        if self._metrics is None:
            return await super().aput(config, checkpoint, metadata, new_versions)
        with self._metrics.time_checkpoint_write():
            return await super().aput(config, checkpoint, metadata, new_versions)

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

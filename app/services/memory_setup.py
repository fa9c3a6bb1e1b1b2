"""Opening long-term memory at start: the embedder, the vector index check, the store, and what
the agent gets from it (tools, recall, the store its nodes see)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from langchain_core.tools import BaseTool
from langgraph.store.base import BaseStore

from app.agent.embeddings import EndpointEmbeddings, build_embeddings, embedding_dims
from app.agent.memory_tools import MemoryRecall, build_memory_tools, run_owner
from app.memory.longterm import LongTermStore
from app.memory.longterm_schema import ensure_vector_index
from app.memory.pool import Pool
from app.observability.metrics import Metrics
from app.settings import MemorySettings


@dataclass(frozen=True)
class LongTermMemory:
    store: LongTermStore
    graph_store: BaseStore  # scoped to the owner of the run being executed
    tools: list[BaseTool]
    recall: MemoryRecall
    embeddings: Any

    async def close(self) -> None:
        await self.store.close()
        if isinstance(self.embeddings, EndpointEmbeddings):
            await self.embeddings.aclose()


async def open_long_term_memory(
    settings: MemorySettings,
    pool: Pool,
    *,
    migrate: bool,
    workspace: Any | None = None,
    metrics: Metrics | None = None,
) -> LongTermMemory | None:
    """Everything long-term memory needs, or None when LONG_TERM_MEMORY=false. Raises
    `LongTermMemoryUnavailable` (with what to do) when the database cannot hold it."""
    if not settings.enabled:
        return None
    embeddings = await build_embeddings(settings, workspace=workspace)
    try:
        dims = embedding_dims(settings)
        if embeddings is not None:
            await ensure_vector_index(pool, dims=dims, create=migrate)
        ttl = settings.default_ttl_seconds
        store = LongTermStore(
            pool, embeddings=embeddings, dims=dims, default_ttl_minutes=None if ttl is None else ttl / 60
        )
    except BaseException:
        if isinstance(embeddings, EndpointEmbeddings):
            with contextlib.suppress(Exception):
                await embeddings.aclose()
        raise
    graph_store = store.scoped(run_owner)
    counter = metrics.memory_recalls if metrics is not None else None
    recall = MemoryRecall(
        graph_store,
        limit=settings.recall_limit if embeddings is not None else 0,
        min_similarity=settings.recall_min_similarity,
        outcome=(lambda outcome: counter.labels(outcome=outcome).inc()) if counter is not None else None,
    )
    return LongTermMemory(
        store=store,
        graph_store=graph_store,
        tools=build_memory_tools(graph_store),
        recall=recall,
        embeddings=embeddings,
    )

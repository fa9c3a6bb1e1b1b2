"""Every resource the service uses, opened once per process and closed in reverse order.

`open_resources` is shared by the HTTP lifespan, the CLI and (later) the MLflow model, so all
of them run turns through the same pool, graph and services.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool

from app.agent.approval import tool_approval
from app.agent.graph import build_graph
from app.agent.graph_loader import graph_sources, load_graph
from app.agent.model_factory import prepare_model
from app.agent.offline_model import OfflineChatModel
from app.agent.prompt import render_system_prompt, system_prompt_template
from app.agent.sample_data import load_sample_data
from app.agent.tool_factory import build_tools
from app.agent.window import HistoryWindow
from app.memory.checkpointer import PooledPostgresSaver
from app.memory.execution import ExecutionStore
from app.memory.feedback import FeedbackStore
from app.memory.history import CheckpointHistory
from app.memory.notifications import RunNotifications
from app.memory.pool import Database, Pool, open_database, record_pool_stats
from app.memory.retention import Retention
from app.memory.run_events import RunEventLog
from app.memory.runs import RunStore
from app.memory.schema import check_schema, migrate
from app.memory.threads import ThreadRegistry
from app.memory.transcript import Transcript
from app.observability.graph_metrics import GraphMetrics
from app.observability.metrics import Metrics
from app.services.conversation_cache import EncodedConversations
from app.services.executor import Executor
from app.services.feedback import FeedbackService
from app.services.graphs import GraphCatalog
from app.services.history_cache import HistoryCache
from app.services.hosted_state import HostedState
from app.services.memories import MemoryService
from app.services.memory_setup import open_long_term_memory
from app.services.run_queue import RunQueue
from app.services.run_stream import LogFollower
from app.services.runs import RunService
from app.services.threads import ThreadService
from app.services.titles import Titler
from app.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resources:
    settings: Settings
    database: Database
    runs: RunService
    threads: ThreadService
    hosted_state: HostedState
    conversations: EncodedConversations
    feedback: FeedbackService
    retention: Retention
    metrics: Metrics
    checkpointer: PooledPostgresSaver
    memories: MemoryService


@asynccontextmanager
async def open_resources(
    settings: Settings,
    *,
    model: BaseChatModel | None = None,
    tools: Sequence[BaseTool] | None = None,
    workspace: Any | None = None,
    metrics: Metrics | None = None,
) -> AsyncIterator[Resources]:
    """Open everything; `model` and `tools` replace the ones settings would choose (embedding
    the agent with your own model or tools); `workspace` is the databricks-sdk WorkspaceClient to
    use instead of one built from the environment."""
    metrics = metrics or Metrics()
    async with open_database(
        settings.database, settings.lakebase, workspace=workspace, metrics=metrics
    ) as database:
        pool = database.pool
        saver = PooledPostgresSaver(
            pool,
            metrics=metrics,
            cache_bytes=settings.runs.cache_max_bytes,
            snapshot_every=settings.runs.snapshot_every,
        )
        if settings.database.migrate:
            await migrate(pool, saver, schema=settings.database.schema_name)
        else:
            await check_schema(pool)
        if settings.database.load_sample_data:
            await load_sample_data(pool)
        memory = await open_long_term_memory(
            settings.memory, pool, migrate=settings.database.migrate, workspace=workspace, metrics=metrics
        )
        if tools is None:
            tools = await build_tools(settings.tools, pool=pool, workspace=workspace)
        if memory is not None:
            tools = [*tools, *memory.tools]
        chat_model = model or await prepare_model(settings.model, workspace=workspace)
        graph = build_graph(
            model=chat_model,
            tools=list(tools),
            system_prompt=render_system_prompt(system_prompt_template(settings.model), tools),
            checkpointer=saver,
            history=HistoryWindow(settings.model.max_history_messages, settings.model.max_history_tokens),
            tool_timeout=settings.tools.timeout_seconds,
            observer=GraphMetrics(metrics, settings.model.provider),
            store=memory.graph_store if memory is not None else None,
            recall=memory.recall if memory is not None else None,
            approval=tool_approval(settings.tools.approval, tools),
        )
        registry = ThreadRegistry(pool)
        history = CheckpointHistory(pool)
        transcript = Transcript(pool)
        hosted = [
            load_graph(source, saver, store=memory.graph_store if memory is not None else None)
            for source in graph_sources(settings.graphs.config, settings.graphs.graphs)
        ]
        runs = build_run_service(
            settings,
            catalog=GraphCatalog(graph, hosted),
            pool=pool,
            registry=registry,
            history=history,
            transcript=transcript,
            metrics=metrics,
        )
        # The offline model writes no titles: the heuristic does, as it does when a model fails.
        titler = Titler(
            None if isinstance(chat_model, OfflineChatModel) else chat_model,
            timeout_seconds=settings.model.timeout_seconds,
        )
        threads = ThreadService(
            graph=graph, registry=registry, transcript=transcript, history=history, titler=titler
        )
        feedback = FeedbackService(registry=registry, store=FeedbackStore(pool))
        retention = Retention(
            pool,
            saver,
            default_ttl=settings.retention.thread_ttl_seconds,
            compact_idle=settings.retention.compact_idle_seconds,
            batch=settings.retention.sweep_batch,
            events_ttl=settings.runs.events_ttl_seconds,
            memories=memory.store if memory is not None else None,
        )
        runs.start()
        try:
            yield Resources(
                settings=settings,
                database=database,
                runs=runs,
                threads=threads,
                hosted_state=HostedState(runs.catalog),
                conversations=EncodedConversations(threads, max_bytes=settings.runs.cache_max_bytes),
                feedback=feedback,
                retention=retention,
                metrics=metrics,
                checkpointer=saver,
                memories=MemoryService(memory, settings.memory),
            )
        finally:
            await runs.drain()
            if memory is not None:
                await memory.close()


def build_run_service(
    settings: Settings,
    *,
    catalog: GraphCatalog,
    pool: Pool,
    registry: ThreadRegistry,
    history: CheckpointHistory,
    transcript: Transcript,
    metrics: Metrics,
) -> RunService:
    runs = RunStore(pool)
    store = ExecutionStore(pool)
    log = RunEventLog(pool)
    notifications = RunNotifications(pool)
    executor = Executor(
        catalog=catalog,
        store=store,
        runs=runs,
        log=log,
        history_cache=HistoryCache(
            transcript, limit=settings.runs.history_messages, max_bytes=settings.runs.cache_max_bytes
        ),
        settings=settings.runs,
        metrics=metrics,
        log_content=settings.server.log_content,
    )
    return RunService(
        registry=registry,
        runs=runs,
        store=store,
        executor=executor,
        queue=RunQueue(
            store=store,
            runs=runs,
            executor=executor,
            notifications=notifications,
            settings=settings.runs,
            metrics=metrics,
        ),
        follower=LogFollower(log=log, runs=runs, notifications=notifications),
        history=history,
        transcript=transcript,
        settings=settings.runs,
        metrics=metrics,
    )


async def _every(seconds: float, job: Callable[[], Awaitable[object]], name: str) -> None:
    """Run `job` every `seconds` until cancelled; a failing round is logged, not fatal."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except Exception:
            logger.warning("background job %s failed", name, exc_info=True)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Resources]]:
    settings: Settings = app.state.settings
    metrics: Metrics = app.state.metrics
    async with open_resources(settings, workspace=app.state.workspace, metrics=metrics) as resources:
        pool = resources.database.pool

        async def pool_stats() -> None:
            record_pool_stats(pool, metrics)

        background = [
            asyncio.create_task(
                _every(settings.retention.sweep_interval_seconds, resources.retention.sweep, "sweep")
            ),
            asyncio.create_task(_every(2.0, pool_stats, "pool-stats")),
        ]
        logger.info("service ready", extra={"database": resources.database.description})
        try:
            yield {"resources": resources}
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)

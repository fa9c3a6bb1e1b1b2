"""Every resource the service uses, opened once per process and closed in reverse order.

`open_resources` is shared by the HTTP lifespan, the CLI and (later) the MLflow model, so all
of them run turns through the same pool, graph and services.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool

from app.agent.graph import build_graph
from app.agent.model_factory import build_model
from app.agent.prompt import DEFAULT_SYSTEM_PROMPT, render_system_prompt
from app.agent.sample_data import load_sample_data
from app.agent.tools import build_local_tools
from app.memory.checkpointer import PooledPostgresSaver
from app.memory.history import CheckpointHistory
from app.memory.pool import Database, open_database
from app.memory.runs import RunStore
from app.memory.schema import check_schema, migrate
from app.memory.threads import ThreadRegistry
from app.memory.transcript import Transcript
from app.services.runs import RunService
from app.services.threads import ThreadService
from app.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resources:
    settings: Settings
    database: Database
    runs: RunService
    threads: ThreadService


@asynccontextmanager
async def open_resources(
    settings: Settings,
    *,
    model: BaseChatModel | None = None,
    tools: Sequence[BaseTool] | None = None,
    workspace: Any | None = None,
) -> AsyncIterator[Resources]:
    """Open everything; `model` and `tools` replace the ones settings would choose (embedding
    the agent with your own model or tools); `workspace` is the databricks-sdk WorkspaceClient to
    use instead of one built from the environment."""
    async with open_database(settings.database, settings.lakebase, workspace=workspace) as database:
        pool = database.pool
        saver = PooledPostgresSaver(pool)
        if settings.database.migrate:
            await migrate(pool, saver, schema=settings.database.schema_name)
        else:
            await check_schema(pool)
        if settings.database.load_sample_data:
            await load_sample_data(pool)
        tools = list(tools) if tools is not None else build_local_tools(pool)
        graph = build_graph(
            model=model or build_model(settings.model),
            tools=tools,
            system_prompt=render_system_prompt(DEFAULT_SYSTEM_PROMPT, tools),
            checkpointer=saver,
        )
        registry = ThreadRegistry(pool)
        history = CheckpointHistory(pool)
        runs = RunService(
            graph=graph,
            registry=registry,
            runs=RunStore(pool),
            history=history,
            settings=settings.runs,
        )
        threads = ThreadService(graph=graph, registry=registry, transcript=Transcript(pool), history=history)
        try:
            yield Resources(settings=settings, database=database, runs=runs, threads=threads)
        finally:
            await runs.drain()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Resources]]:
    settings: Settings = app.state.settings
    async with open_resources(settings, workspace=app.state.workspace) as resources:
        logger.info("service ready")
        yield {"resources": resources}

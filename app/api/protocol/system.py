"""The Agent Protocol's server and assistant routes: `/info`, `/ok`, and the served graphs as
assistants (the built-in cyber agent is `agent`; users' graphs by their configured names)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import OwnerDep, RunsDep
from app.services.graphs import AnyGraph, ServedGraph

router = APIRouter()
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)  # served assistants are configuration: a fixed time


def assistant_json(served: ServedGraph) -> dict[str, Any]:
    return {
        "assistant_id": served.assistant_id,
        "graph_id": served.name,
        "config": {},
        "context": {},
        "metadata": {"created_by": "system"},
        "version": 1,
        "name": served.name,
        "description": (
            "The built-in cyber-security analyst agent (threat and user lookups)." if served.builtin else None
        ),
        "created_at": _EPOCH.isoformat(),
        "updated_at": _EPOCH.isoformat(),
    }


class AssistantSearch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    graph_id: str | None = None
    name: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


@router.get("/info")
async def info() -> dict[str, Any]:
    """What this server is and supports (the SDKs read `flags`)."""
    return {
        "version": "0.1.0",
        "langgraph_py_version": None,
        "flags": {
            "assistants": True,
            "crons": False,
            "langsmith": False,
            "langsmith_tracing_replicas": False,
        },
        "metadata": {"server": "lakebase-memory-agent"},
    }


@router.get("/ok")
async def ok() -> dict[str, bool]:
    return {"ok": True}


@router.post("/assistants/search")
async def search_assistants(body: AssistantSearch, _: OwnerDep, runs: RunsDep) -> list[dict[str, Any]]:
    found = [
        assistant_json(g)
        for g in runs.catalog.all()
        if body.graph_id in (None, g.name)
        and body.name in (None, g.name)
        and all(assistant_json(g)["metadata"].get(k) == v for k, v in body.metadata.items())
    ]
    return found[body.offset : body.offset + body.limit]


async def _served(assistant_id: str, runs: RunsDep) -> ServedGraph:
    return runs.catalog.get(assistant_id)


ServedDep = Annotated[ServedGraph, Depends(_served)]


async def _drawable(served: ServedGraph) -> AnyGraph:
    # A factory's graph may depend on the run; an empty config draws its default shape.
    empty: RunnableConfig = {"configurable": {}}
    return await served.compiled(empty)


@router.get("/assistants/{assistant_id}")
async def get_assistant(served: ServedDep, _: OwnerDep) -> dict[str, Any]:
    return assistant_json(served)


@router.get("/assistants/{assistant_id}/graph")
async def get_graph(served: ServedDep, _: OwnerDep, xray: Annotated[bool, Query()] = False) -> dict[str, Any]:
    """The graph's nodes and edges (what Studio draws)."""
    drawn: dict[str, Any] = (await _drawable(served)).get_graph(xray=xray).to_json()
    return drawn


@router.get("/assistants/{assistant_id}/schemas")
async def get_schemas(served: ServedDep, _: OwnerDep) -> dict[str, Any]:
    graph = await _drawable(served)
    return {
        "graph_id": served.name,
        "input_schema": graph.get_input_jsonschema(),
        "output_schema": graph.get_output_jsonschema(),
        "state_schema": graph.get_output_jsonschema(),
        "config_schema": None,
        "context_schema": None,
    }

"""The Agent Protocol's server and assistant routes: `/info`, `/ok`, and the served graphs as
assistants (the built-in cyber agent is `agent`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import OwnerDep, RunsDep
from app.api.protocol.shapes import graph_of
from app.services.run_model import BUILTIN_ASSISTANT_ID, BUILTIN_GRAPH

router = APIRouter()
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)  # the built-in assistant's fixed creation time


def assistant_json() -> dict[str, Any]:
    return {
        "assistant_id": BUILTIN_ASSISTANT_ID,
        "graph_id": BUILTIN_GRAPH,
        "config": {},
        "context": {},
        "metadata": {"created_by": "system"},
        "version": 1,
        "name": BUILTIN_GRAPH,
        "description": "The built-in cyber-security analyst agent (threat and user lookups).",
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
async def search_assistants(body: AssistantSearch, _: OwnerDep) -> list[dict[str, Any]]:
    found = assistant_json()
    matches = (
        body.graph_id in (None, found["graph_id"])
        and body.name in (None, found["name"])
        and all(found["metadata"].get(k) == v for k, v in body.metadata.items())
    )
    return [found][body.offset : body.offset + body.limit] if matches else []


async def _assistant(assistant_id: str) -> str:
    return graph_of(assistant_id)


AssistantDep = Annotated[str, Depends(_assistant)]


@router.get("/assistants/{assistant_id}")
async def get_assistant(_graph: AssistantDep, _: OwnerDep) -> dict[str, Any]:
    return assistant_json()


@router.get("/assistants/{assistant_id}/graph")
async def get_graph(_graph: AssistantDep, _: OwnerDep, runs: RunsDep, request: Request) -> dict[str, Any]:
    """The graph's nodes and edges (what Studio draws)."""
    drawn: dict[str, Any] = runs.graph.get_graph(
        xray=request.query_params.get("xray") in ("1", "true")
    ).to_json()
    return drawn


@router.get("/assistants/{assistant_id}/schemas")
async def get_schemas(_graph: AssistantDep, _: OwnerDep, runs: RunsDep) -> dict[str, Any]:
    graph = runs.graph
    return {
        "graph_id": BUILTIN_GRAPH,
        "input_schema": graph.get_input_jsonschema(),
        "output_schema": graph.get_output_jsonschema(),
        "state_schema": graph.get_input_jsonschema(),
        "config_schema": None,
        "context_schema": None,
    }

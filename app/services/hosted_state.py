"""The state of threads that run users' graphs: read from their checkpoints through the graph
itself (a hosted graph keeps its whole state there, any keys it has), as JSON."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel

from app.memory.checkpointer import HEAD_KEY
from app.memory.threads import ThreadRecord
from app.services.graphs import GraphCatalog, ServedGraph


def jsonable(value: Any) -> Any:
    """A state value as the protocol shows it: messages as LangChain message dicts."""
    if isinstance(value, BaseMessage):
        return value.model_dump()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


class HostedState:
    def __init__(self, catalog: GraphCatalog) -> None:
        self._catalog = catalog

    def graph_of(self, thread: ThreadRecord) -> ServedGraph | None:
        """The user's graph the thread runs on; None for the built-in agent, no run yet, or a
        graph no longer served (its thread is then shown by its transcript)."""
        if thread.graph_id is None:
            return None
        served = self._catalog.find(thread.graph_id)
        return None if served is None or served.builtin else served

    async def values(self, thread: ThreadRecord, checkpoint_id: str | None = None) -> dict[str, Any] | None:
        """The thread's state at its head (or a checkpoint); None when it is not a hosted graph's."""
        served = self.graph_of(thread)
        if served is None:
            return None
        configurable: dict[str, Any] = {
            "thread_id": str(thread.thread_key),
            HEAD_KEY: thread.head_checkpoint_id,
        }
        if checkpoint_id is not None:
            configurable["checkpoint_id"] = checkpoint_id
        config: RunnableConfig = {"configurable": configurable}
        graph = await served.compiled(config)
        snapshot = await graph.aget_state(config)
        values = jsonable(snapshot.values)
        return values if isinstance(values, dict) else {"value": values}

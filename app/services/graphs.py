"""The graphs this service runs, each an assistant: the built-in agent and users' own graphs
(`app.agent.graph_loader`). Threads are bound to the graph of their first run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.pregel import Pregel

from app.agent.graph_loader import HostedGraph
from app.errors import AssistantNotFound
from app.services.run_model import BUILTIN_GRAPH, assistant_id_of

AnyGraph = Pregel[Any, Any, Any, Any]


@dataclass(frozen=True)
class ServedGraph:
    name: str
    assistant_id: str
    builtin: bool  # the built-in agent: its memory is the transcript, its state one turn
    hosted: HostedGraph | None = None
    static: AnyGraph | None = None  # the compiled graph, when it does not depend on the run

    async def compiled(self, config: RunnableConfig) -> AnyGraph:
        if self.static is not None:
            return self.static
        assert self.hosted is not None
        return await self.hosted.graph(config)


class GraphCatalog:
    def __init__(self, builtin: AnyGraph, hosted: Sequence[HostedGraph] = ()) -> None:
        first = ServedGraph(
            name=BUILTIN_GRAPH, assistant_id=assistant_id_of(BUILTIN_GRAPH), builtin=True, static=builtin
        )
        self._graphs = [first] + [
            ServedGraph(
                name=h.name,
                assistant_id=assistant_id_of(h.name),
                builtin=False,
                hosted=h,
                static=h.static,
            )
            for h in hosted
        ]
        self._by_key = {g.name: g for g in self._graphs} | {g.assistant_id: g for g in self._graphs}

    @property
    def default(self) -> ServedGraph:
        return self._graphs[0]

    def all(self) -> list[ServedGraph]:
        return list(self._graphs)

    def find(self, assistant: str) -> ServedGraph | None:
        return self._by_key.get(assistant)

    def get(self, assistant: str) -> ServedGraph:
        """The graph an assistant id or a graph name names."""
        found = self._by_key.get(assistant)
        if found is None:
            raise AssistantNotFound(assistant, [g.name for g in self._graphs])
        return found

"""Users' own graphs: named in a `langgraph.json`-compatible config (`LANGGRAPH_CONFIG`) or in
`GRAPHS=name=path.py:attr,...`, each served as an assistant beside the built-in agent.

What `attr` may be, as LangGraph's own server accepts: a compiled graph, a `StateGraph` builder,
or a factory (sync or async) taking no argument or the run's config and returning either. The
service gives every graph its own checkpointer (and so its pool), so every guarantee of a run
(one per thread, idempotency, durable events, cancel) holds for it.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore

GraphFactory = Callable[..., Any]


class GraphLoadError(RuntimeError):
    """A configured graph that cannot be served: the message names the file and the cause."""


@dataclass(frozen=True)
class GraphSource:
    name: str
    path: Path
    attr: str


def _source(name: str, spec: str, base: Path) -> GraphSource:
    path_text, sep, attr = spec.rpartition(":")
    if not sep or not path_text or not attr.isidentifier():
        raise GraphLoadError(f"graph {name!r}: {spec!r} is not 'path/to/file.py:attribute'")
    if not name.replace("-", "_").isidentifier():
        raise GraphLoadError(f"graph name {name!r}: use letters, digits, '_' or '-'")
    path = Path(path_text)
    return GraphSource(name=name, path=(path if path.is_absolute() else base / path).resolve(), attr=attr)


def graph_sources(config_file: Path | None, graphs: str | None) -> list[GraphSource]:
    """The graphs the settings name: those of `config_file` (paths relative to its folder),
    then those of `graphs` (`name=path.py:attr,...`, paths relative to the working folder)."""
    found: list[GraphSource] = []
    if config_file is not None:
        try:
            config = json.loads(config_file.read_text())
        except (OSError, ValueError) as exc:
            raise GraphLoadError(f"LANGGRAPH_CONFIG={config_file}: {type(exc).__name__}: {exc}") from None
        entries = config.get("graphs") if isinstance(config, dict) else None
        if not isinstance(entries, dict) or not entries:
            raise GraphLoadError(f"LANGGRAPH_CONFIG={config_file}: no 'graphs' object naming path:attr")
        for name, spec in entries.items():
            if isinstance(spec, dict):  # {"path": ..., "description": ...}
                spec = spec.get("path")
            if not isinstance(spec, str):
                raise GraphLoadError(f"LANGGRAPH_CONFIG={config_file}: graph {name!r} has no path")
            found.append(_source(str(name), spec, config_file.parent))
    for item in (graphs or "").split(","):
        if item.strip():
            name, sep, spec = item.strip().partition("=")
            if not sep:
                raise GraphLoadError(f"GRAPHS entry {item.strip()!r} is not name=path.py:attr")
            found.append(_source(name.strip(), spec.strip(), Path.cwd()))
    names = [s.name for s in found]
    if len(set(names)) != len(names):
        raise GraphLoadError(f"graph names must be unique: {names}")
    return found


def _import(source: GraphSource) -> Any:
    if not source.path.is_file():
        raise GraphLoadError(f"graph {source.name!r}: {source.path} does not exist")
    spec = importlib.util.spec_from_file_location(f"lma_graph_{source.name.replace('-', '_')}", source.path)
    if spec is None or spec.loader is None:
        raise GraphLoadError(f"graph {source.name!r}: {source.path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    # Its own folder first on the path, as `langgraph dev` does, so its sibling imports work;
    # and registered, so type hints written as strings resolve (LangGraph reads them).
    sys.path.insert(0, str(source.path.parent))
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(spec.name, None)
        raise GraphLoadError(
            f"graph {source.name!r}: {source.path} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    if not hasattr(module, source.attr):
        raise GraphLoadError(f"graph {source.name!r}: {source.path} has no attribute {source.attr!r}")
    return getattr(module, source.attr)


@dataclass(frozen=True)
class HostedGraph:
    """A user's graph, ready to run with the service's checkpointer."""

    name: str
    static: Pregel[Any, Any, Any, Any] | None  # the graph, unless a factory makes one per run
    _factory: GraphFactory | None
    _checkpointer: BaseCheckpointSaver[Any]
    _store: BaseStore | None = None

    async def graph(self, config: RunnableConfig) -> Pregel[Any, Any, Any, Any]:
        """The graph for a run (a factory is called with the run's config)."""
        if self.static is not None:
            return self.static
        assert self._factory is not None
        takes_config = len(inspect.signature(self._factory).parameters) > 0
        made = self._factory(config) if takes_config else self._factory()
        if inspect.isawaitable(made):
            made = await made
        return _with_checkpointer(self.name, made, self._checkpointer, self._store)


def _with_checkpointer(
    name: str, obj: Any, checkpointer: BaseCheckpointSaver[Any], store: BaseStore | None = None
) -> Pregel[Any, Any, Any, Any]:
    """The graph on the service's checkpointer and, with long-term memory on, its store (as
    LangGraph's server injects its own: `get_store()` in a node is the run owner's store)."""
    if isinstance(obj, StateGraph):
        compiled: Pregel[Any, Any, Any, Any] = obj.compile(checkpointer=checkpointer, store=store)
        return compiled
    if isinstance(obj, Pregel):
        update: dict[str, Any] = {"checkpointer": checkpointer}
        if store is not None:
            update["store"] = store
        return obj.copy(update=update)
    raise GraphLoadError(
        f"graph {name!r}: got {type(obj).__name__}; expected a compiled graph, a StateGraph or a factory"
    )


def load_graph(
    source: GraphSource, checkpointer: BaseCheckpointSaver[Any], *, store: BaseStore | None = None
) -> HostedGraph:
    obj = _import(source)
    if isinstance(obj, StateGraph | Pregel):
        return HostedGraph(
            source.name, _with_checkpointer(source.name, obj, checkpointer, store), None, checkpointer, store
        )
    if callable(obj):
        return HostedGraph(source.name, None, obj, checkpointer, store)
    raise GraphLoadError(
        f"graph {source.name!r}: {source.path}:{source.attr} is a {type(obj).__name__}; expected a"
        " compiled graph, a StateGraph or a factory"
    )

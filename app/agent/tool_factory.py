"""The one place the agent's tools are chosen from settings.

Locally (the default) the project's own SQL tools over the shared pool (app/agent/tools.py). On
Databricks, Unity Catalog functions by name (UC_FUNCTIONS) replace them, and a Vector Search
retriever tool (VECTOR_SEARCH_INDEX) can be added to either. Both Databricks tools come from
databricks-langchain, the `databricks` extra, imported only when configured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from langchain_core.tools import BaseTool

from app.agent.databricks_model import EXTRA_HINT, has_databricks_langchain, workspace_client
from app.agent.model_errors import ModelConfigError
from app.agent.tools import build_local_tools
from app.memory.pool import Pool
from app.settings import ToolSettings


def check_tool_settings(settings: ToolSettings) -> None:
    """Fail early, naming the setting, when Databricks tools are asked for without the extra."""
    for setting, wanted in (
        ("UC_FUNCTIONS", settings.uc_functions),
        ("VECTOR_SEARCH_INDEX", settings.vector_search_index),
    ):
        if wanted and not has_databricks_langchain():
            raise ModelConfigError(f"{setting} needs the `databricks` extra: {EXTRA_HINT}")


async def build_tools(settings: ToolSettings, *, pool: Pool, workspace: Any | None = None) -> list[BaseTool]:
    """The tools `settings` describe. `workspace`: the databricks-sdk WorkspaceClient for the
    Databricks tools (default: one from the environment). Raises `ModelConfigError`."""
    check_tool_settings(settings)
    if not (settings.uc_functions or settings.vector_search_index):
        return build_local_tools(pool)
    # The Databricks clients are blocking (they describe functions and indexes over HTTP).
    workspace = await asyncio.to_thread(workspace_client, workspace)
    tools: list[BaseTool] = []
    if settings.uc_functions:
        tools.extend(await asyncio.to_thread(_uc_tools_from_workspace, settings.uc_functions, workspace))
    else:
        tools.extend(build_local_tools(pool))
    if settings.vector_search_index:
        tools.append(await asyncio.to_thread(vector_search_tool, settings, workspace))
    return tools


def _uc_tools_from_workspace(names: Sequence[str], workspace: Any) -> list[BaseTool]:
    from databricks_langchain import DatabricksFunctionClient

    # Serverless execution runs the functions' SQL through databricks-connect.
    return uc_function_tools(names, function_client=DatabricksFunctionClient(client=workspace))


def uc_function_tools(names: Sequence[str], *, function_client: Any) -> list[BaseTool]:
    """One tool per Unity Catalog function (`catalog.schema.fn` or `catalog.schema.*`), described
    by the catalog (its comment and parameters), through `UCFunctionToolkit`."""
    from databricks_langchain import UCFunctionToolkit

    try:
        toolkit = UCFunctionToolkit(function_names=list(names), client=function_client)
    except Exception as exc:  # the SDK's NotFound / PermissionDenied / connection errors
        raise ModelConfigError(
            f"UC_FUNCTIONS: the functions {', '.join(names)} could not be loaded"
            f" ({type(exc).__name__}: {' '.join(str(exc).split())[:300]})"
        ) from exc
    tools: list[BaseTool] = list(toolkit.tools)
    if not tools:
        raise ModelConfigError(f"UC_FUNCTIONS: no function matches {', '.join(names)}")
    return tools


def vector_search_tool(settings: ToolSettings, workspace: Any) -> BaseTool:
    """A retriever tool over a Databricks Vector Search index (VECTOR_SEARCH_INDEX)."""
    from databricks_langchain import VectorSearchRetrieverTool

    kwargs: dict[str, Any] = {
        "index_name": settings.vector_search_index,
        "num_results": settings.vector_search_num_results,
        "workspace_client": workspace,
    }
    if settings.vector_search_tool_name:
        kwargs["tool_name"] = settings.vector_search_tool_name
    if settings.vector_search_description:
        kwargs["tool_description"] = settings.vector_search_description
    try:
        tool: BaseTool = VectorSearchRetrieverTool(**kwargs)
    except Exception as exc:
        raise ModelConfigError(
            f"VECTOR_SEARCH_INDEX={settings.vector_search_index!r} could not be opened"
            f" ({type(exc).__name__}: {' '.join(str(exc).split())[:300]})"
        ) from exc
    return tool

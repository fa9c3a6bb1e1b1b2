"""The agent graph: a model node and a tool node in a loop, compiled once per process.

Per-request data (thread key, checkpoint to start from, run id) travels in the run config, so
one compiled graph serves every thread and every request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AnyMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition

AGENT_NODE = "agent"
TOOLS_NODE = "tools"


class AgentState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def _tool_error(exc: Exception) -> str:
    # The model reads this as the tool's result; the thread stays valid and the turn goes on.
    return f"tool failed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def build_graph(
    *,
    model: BaseChatModel,
    tools: Sequence[BaseTool],
    system_prompt: str,
    checkpointer: BaseCheckpointSaver[Any],
) -> CompiledStateGraph[AgentState, None, AgentState, AgentState]:
    bound = model.bind_tools(list(tools))
    system = SystemMessage(content=system_prompt)

    async def agent(state: AgentState, config: RunnableConfig) -> dict[str, list[AnyMessage]]:
        response = await bound.ainvoke([system, *state["messages"]], config)
        return {"messages": [response]}

    builder: StateGraph[AgentState, None, AgentState, AgentState] = StateGraph(AgentState)
    builder.add_node(AGENT_NODE, agent)
    builder.add_node(TOOLS_NODE, ToolNode(list(tools), handle_tool_errors=_tool_error))
    builder.add_edge(START, AGENT_NODE)
    builder.add_conditional_edges(AGENT_NODE, tools_condition, {"tools": TOOLS_NODE, END: END})
    builder.add_edge(TOOLS_NODE, AGENT_NODE)
    return builder.compile(checkpointer=checkpointer)

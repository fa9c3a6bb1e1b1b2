"""The agent graph: a model node and a tool node in a loop, compiled once per process.

Per-request data (thread key, checkpoint to start from, run id) travels in the run config, so
one compiled graph serves every thread and every request. The state keeps the whole thread; the
model is shown a repaired, bounded window of it (app/agent/window.py). A tool that fails or
runs out of time becomes a "<tool> failed: ..." result the model reads, a repeated call is not
run again, and a database outage ends the turn (app/agent/tool_calls.py); a model call that fails
raises `ModelCallError` with a message fit for the client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.store.base import BaseStore

# typing_extensions: pydantic builds the graph's JSON schemas (served to protocol clients)
# from it, and refuses typing.TypedDict before Python 3.12.
from typing_extensions import TypedDict

from app.agent.approval import ToolApproval, approval_node, awaiting_calls
from app.agent.memory_tools import MemoryRecall
from app.agent.model_errors import as_model_call_error
from app.agent.tool_calls import current_turn, steps_exhausted, stop_repeating, tool_runner
from app.agent.window import HistoryWindow

logger = logging.getLogger(__name__)

# Run-config key under which a turn passes the thread's earlier messages (its transcript window)
# to the model node; "__" keeps it out of checkpoint metadata and traces.
HISTORY_KEY = "__lma_history"

AGENT_NODE = "agent"
TOOLS_NODE = "tools"
APPROVE_NODE = "approve"


class AgentState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def _user_text(messages: Sequence[AnyMessage]) -> str:
    """The turn's latest user message, the query of its recall."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message.text
    return ""


class GraphObserver(Protocol):
    """Told about every model and tool call (metrics). Called inline, so it must be cheap; this
    costs far less than LangChain callbacks, which add a run manager to every step."""

    def model_call(self, seconds: float, usage: Mapping[str, Any] | None) -> None: ...

    def tool_call(self, tool: str, outcome: str, seconds: float) -> None: ...


def build_graph(
    *,
    model: BaseChatModel,
    tools: Sequence[BaseTool],
    system_prompt: str,
    checkpointer: BaseCheckpointSaver[Any],
    history: HistoryWindow | None = None,
    tool_timeout: float | None = None,
    observer: GraphObserver | None = None,
    store: BaseStore | None = None,
    recall: MemoryRecall | None = None,
    approval: ToolApproval | None = None,
) -> CompiledStateGraph[AgentState, None, AgentState, AgentState]:
    """`history`: what the model sees of a thread (default `HistoryWindow()`); `tool_timeout`:
    seconds a tool may take before its result is "<tool> failed" (None: no limit); `observer`:
    told about each model and tool call; `store`: the long-term store nodes and tools get (scoped
    to the run's owner); `recall`: memories offered to the model with the user's message;
    `approval`: the tools whose calls wait for a person's approval (app/agent/approval.py)."""
    bound = model.bind_tools(list(tools))
    # A round of tool calls is the model's step and the tools' (and the approval's, when asked).
    steps_per_round = 2 if approval is None else 3
    system = SystemMessage(content=system_prompt)
    window = history or HistoryWindow()

    async def agent(state: AgentState, config: RunnableConfig) -> dict[str, list[AnyMessage]]:
        started = time.perf_counter()
        try:
            earlier = (config.get("configurable") or {}).get(HISTORY_KEY, [])
            preamble: list[AnyMessage] = [system]
            if recall is not None:
                run = (config.get("metadata") or {}).get("run_id")
                memories = await recall.recall(_user_text(state["messages"]), run=run and str(run))
                if memories:
                    preamble.append(recall.message(memories))
            response = await bound.ainvoke([*preamble, *window.apply([*earlier, *state["messages"]])], config)
        except Exception as exc:
            if observer is not None:
                observer.model_call(time.perf_counter() - started, None)
            failure = as_model_call_error(exc)
            if failure is None:
                raise
            # The type and status only: provider messages can echo the request's content.
            logger.warning("model call failed: %s (status %s)", type(exc).__name__, failure.status)
            raise failure from exc
        if observer is not None:
            observer.model_call(time.perf_counter() - started, getattr(response, "usage_metadata", None))
        if isinstance(response, AIMessage):
            # A model that loops ends the turn with an answer (app/agent/tool_calls.py).
            turn = current_turn(state["messages"])
            response = (
                stop_repeating(turn, response)
                or steps_exhausted(
                    turn, response, limit=config.get("recursion_limit"), steps_per_round=steps_per_round
                )
                or response
            )
        return {"messages": [response]}

    builder: StateGraph[AgentState, None, AgentState, AgentState] = StateGraph(AgentState)
    builder.add_node(AGENT_NODE, agent)
    builder.add_node(
        TOOLS_NODE,
        # Failures are handled by the wrapper, which knows an outage from a tool's own failure.
        ToolNode(list(tools), handle_tool_errors=False, awrap_tool_call=tool_runner(tool_timeout, observer)),
    )
    builder.add_edge(START, AGENT_NODE)
    if approval is None:
        builder.add_conditional_edges(AGENT_NODE, tools_condition, {"tools": TOOLS_NODE, END: END})
    else:
        builder.add_node(
            APPROVE_NODE,
            approval_node(approval, tools, tools_node=TOOLS_NODE, agent_node=AGENT_NODE),
            destinations=(TOOLS_NODE, AGENT_NODE),
        )

        def route(state: AgentState) -> str:
            calls = awaiting_calls(state["messages"])
            if not calls:
                return END
            return APPROVE_NODE if any(approval.required(c["name"]) for c in calls) else TOOLS_NODE

        builder.add_conditional_edges(AGENT_NODE, route, [APPROVE_NODE, TOOLS_NODE, END])
    builder.add_edge(TOOLS_NODE, AGENT_NODE)
    return builder.compile(checkpointer=checkpointer, store=store)

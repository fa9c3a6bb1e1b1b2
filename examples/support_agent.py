"""An example of bringing your own graph: a small IT-support agent made with LangChain's
`create_agent` (LangGraph's `create_react_agent` before 1.0), with a state key of its own
(`tickets`, the tickets opened on the thread).

Serve it beside the built-in agent:

    GRAPHS=support=examples/support_agent.py:graph lakebase-memory-agent serve

or with a `langgraph.json` (`LANGGRAPH_CONFIG=examples/langgraph.json`). The service gives it its
own checkpointer: every turn is a durable run, one at a time per thread, across replicas.

The model: any OpenAI-compatible endpoint when OPENAI_BASE_URL and MODEL_NAME are set, else
`RuleModel` below, a deterministic offline stand-in (not an LLM) so the example runs anywhere:
"open a ticket: <summary>" calls the tool, anything else is answered with the ticket count.
"""

from __future__ import annotations

import operator
import os
import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from langchain.agents import AgentState, create_agent
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool, InjectedToolCallId, tool
from langgraph.types import Command


class SupportState(AgentState[Any]):
    """The agent's state: its messages, and the tickets opened on this thread."""

    tickets: Annotated[list[str], operator.add]


@tool
def open_ticket(summary: str, tool_call_id: Annotated[str, InjectedToolCallId]) -> Command:  # type: ignore[type-arg]
    """Open an IT support ticket with this summary; returns the ticket's id."""
    ticket = f"T-{uuid.uuid5(uuid.NAMESPACE_URL, summary).hex[:6].upper()}"
    message = ToolMessage(f"opened {ticket}: {summary}", tool_call_id=tool_call_id, name="open_ticket")
    return Command(update={"tickets": [ticket], "messages": [message]})


class RuleModel(BaseChatModel):
    """A deterministic stand-in for an LLM (rules, no model): calls `open_ticket` when asked to
    open one, and otherwise answers from the conversation."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:
        return self

    @property
    def _llm_type(self) -> str:
        return "rule-model"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            reply = AIMessage(content=f"Done: {last.content}.")
        else:
            text = str(last.content) if isinstance(last, HumanMessage) else ""
            asked = text.lower().partition("open a ticket:")[2].strip()
            if asked:
                call = {
                    "name": "open_ticket",
                    "args": {"summary": asked},
                    "id": f"call_{uuid.uuid4().hex[:8]}",
                }
                reply = AIMessage(content="", tool_calls=[call])
            else:
                opened = sum(1 for m in messages if isinstance(m, ToolMessage))
                reply = AIMessage(content=f"You have opened {opened} ticket(s) on this thread.")
        return ChatResult(generations=[ChatGeneration(message=reply)])


def _model() -> BaseChatModel:
    if os.environ.get("OPENAI_BASE_URL") and os.environ.get("MODEL_NAME"):
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(base_url=os.environ["OPENAI_BASE_URL"], model=os.environ["MODEL_NAME"])
    return RuleModel()


TOOLS: list[BaseTool] = [open_ticket]
graph = create_agent(_model(), TOOLS, state_schema=SupportState, name="support")

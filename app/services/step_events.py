"""A graph's stream, as run events: the messages each step made (tool calls, tool results,
complete messages, with the node that made them) and what nodes wrote to the stream."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langgraph.types import StreamMode

from app.agent.graph import AGENT_NODE, TOOLS_NODE
from app.agent.messages import text_of, to_stored
from app.services.events import MessageCompleted, ToolCallStarted, ToolResult, TurnEvent


def step_events(
    run_id: uuid.UUID, messages: Sequence[BaseMessage], node: str | None = None
) -> list[TurnEvent]:
    """Tool-call, tool-result and complete-message events for new messages of a step (of the
    node that made them; None: the built-in graph's names, by message type)."""
    events: list[TurnEvent] = []
    for message in messages:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                events.append(
                    ToolCallStarted(
                        message_id=message.id or "",
                        tool_call_id=call["id"] or "",
                        name=call["name"],
                        args=call["args"],
                    )
                )
            events.append(
                MessageCompleted(message=to_stored(message, seq=-1, run_id=run_id), node=node or AGENT_NODE)
            )
        elif isinstance(message, ToolMessage):
            events.append(
                ToolResult(
                    message_id=message.id or "",
                    tool_call_id=message.tool_call_id,
                    name=message.name or "",
                    content=text_of(message),
                    node=node or TOOLS_NODE,
                )
            )
    return events


# What a watched run streams: tokens, steps, what nodes write with `get_stream_writer()`.
LIVE_MODES: list[StreamMode] = ["messages", "updates", "custom", "checkpoints"]


def jsonable(value: Any) -> Any:
    """A graph's custom stream data as JSON (anything else as its text)."""
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)


def update_events(run_id: uuid.UUID, payload: dict[str, Any]) -> list[TurnEvent]:
    """The events of a graph "updates" chunk: each node's new messages."""
    events: list[TurnEvent] = []
    for node, update in payload.items():
        if isinstance(update, dict):
            messages = [m for m in update.get("messages", []) if isinstance(m, BaseMessage)]
            events.extend(step_events(run_id, messages, str(node)))
    return events

"""The only module that knows SSE framing and event names.

Events of a turn, in order (each frame has `id: <run_id>:<n>` and a JSON `data`):

| event         | data                                                          |
|---------------|---------------------------------------------------------------|
| `run_start`   | `{run_id, thread_id}`                                         |
| `token`       | `{message_id, delta}`: a piece of the assistant's answer      |
| `tool_call`   | `{message_id, tool_call_id, name, args}`                      |
| `tool_result` | `{message_id, tool_call_id, name, content}`                   |
| `message`     | a complete assistant message (same shape as in the JSON API)  |
| `error`       | `{code, message}`: the turn failed and nothing was saved      |
| `done`        | `{run_id, thread_id, checkpoint_id, new_messages}`            |

A stream ends after `done` or `error`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent

from app.services.events import (
    MessageCompleted,
    RunDone,
    RunFailed,
    RunStarted,
    TokenDelta,
    ToolCallStarted,
    ToolResult,
    TurnEvent,
)

EVENT_NAMES: dict[type[Any], str] = {
    RunStarted: "run_start",
    TokenDelta: "token",
    ToolCallStarted: "tool_call",
    ToolResult: "tool_result",
    MessageCompleted: "message",
    RunFailed: "error",
    RunDone: "done",
}


def sse_event_schema(data_description: str, events: list[str] | None = None) -> dict[str, Any]:
    """OpenAPI schema of one Server-Sent Event, as SSE-aware clients and validators read it."""
    event: dict[str, Any] = {"type": "string"}
    if events:
        event["enum"] = events
    return {
        "type": "object",
        "properties": {
            "data": {"type": "string", "description": data_description},
            "event": event,
            "id": {"type": "string"},
        },
        "required": ["data"],
    }


def event_payload(event: TurnEvent) -> dict[str, Any]:
    if isinstance(event, MessageCompleted):
        return event.message
    if isinstance(event, RunDone):
        result = event.result
        return {
            "run_id": result["run_id"],
            "thread_id": result["thread_id"],
            "checkpoint_id": result["checkpoint_id"],
            "new_messages": len(result["messages"]),
        }
    return asdict(event)


async def _frames(run_id: str, events: AsyncIterator[TurnEvent]) -> AsyncIterator[ServerSentEvent]:
    n = 0
    async for event in events:
        n += 1
        yield ServerSentEvent(
            data=json.dumps(event_payload(event), ensure_ascii=False),
            event=EVENT_NAMES[type(event)],
            id=f"{run_id}:{n}",
        )


def sse_response(
    run_id: str, events: AsyncIterator[TurnEvent], *, headers: dict[str, str], ping_seconds: int
) -> EventSourceResponse:
    # Disconnects only stop this generator; the turn itself runs on in its own task.
    return EventSourceResponse(_frames(run_id, events), headers=headers, ping=ping_seconds)


async def _responses_frames(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[ServerSentEvent]:
    async for event in events:
        yield ServerSentEvent(data=json.dumps(event, ensure_ascii=False))
    yield ServerSentEvent(data="[DONE]")


def responses_sse_response(
    events: AsyncIterator[dict[str, Any]], *, headers: dict[str, str], ping_seconds: int
) -> EventSourceResponse:
    """Responses stream events (`app.serving.responses`) framed as MLflow's agent server does:
    `data: <event JSON>` frames, no event names, then `data: [DONE]`."""
    return EventSourceResponse(_responses_frames(events), headers=headers, ping=ping_seconds)

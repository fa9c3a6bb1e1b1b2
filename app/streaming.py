"""The only module that knows SSE framing and event names.

Events of a run, in order (each frame has `id: <run_id>:<n>`, n counting from 1, and a JSON
`data`); the same ids on the first stream and on any later join, so `Last-Event-ID` resumes
after exactly that event:

| event         | data                                                          |
|---------------|---------------------------------------------------------------|
| `run_start`   | `{run_id, thread_id, input}`: input is the turn's new messages (ids as saved) |
| `token`       | `{message_id, delta, node}`: a piece of the assistant's answer |
| `tool_call`   | `{message_id, tool_call_id, name, args}`                      |
| `tool_result` | `{message_id, tool_call_id, name, content, node}`             |
| `message`     | a complete assistant message (as in the JSON API), plus `node` |
| `custom`      | what a hosted graph's node wrote with `get_stream_writer()`    |
| `error`       | `{code, message}`: the run failed or was cancelled (`cancelled`); nothing was saved |
| `done`        | `{run_id, thread_id, checkpoint_id, new_messages}`            |

A stream ends after `done` or `error`. Other dialects (the Agent Protocol's stream modes)
render their own `Frame`s and are framed here too.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent

from app.errors import InvalidInput
from app.services.events import KINDS, RunEvent, event_json

# The SSE event name of each event type is its stored kind.
EVENT_NAMES: dict[type[Any], str] = dict(KINDS)
_EVENT_ID = re.compile(r"^(?:(?P<run>[0-9a-fA-F-]{36}):)?(?P<seq>\d{1,9})$")


def last_event_id(value: str | None, run_id: str) -> int:
    """The event a resumed stream continues after (0: from the start). Accepts the ids this
    service sends (`<run_id>:<n>`) or a bare `<n>`; anything else, or another run's id, is 422."""
    if value is None or not value.strip():
        return 0
    match = _EVENT_ID.fullmatch(value.strip())
    if match is None or (match["run"] is not None and match["run"].lower() != run_id.lower()):
        raise InvalidInput(
            f"Last-Event-ID must be an event id of this run's stream ('{run_id}:<n>'), not {value[:80]!r}."
        )
    return int(match["seq"])


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


async def _frames(run_id: str, events: AsyncIterator[RunEvent]) -> AsyncIterator[ServerSentEvent]:
    async for item in events:
        yield ServerSentEvent(
            data=json.dumps(event_json(item.event), ensure_ascii=False),
            event=EVENT_NAMES[type(item.event)],
            id=f"{run_id}:{item.seq}",
        )


def sse_response(
    run_id: str, events: AsyncIterator[RunEvent], *, headers: dict[str, str], ping_seconds: int
) -> EventSourceResponse:
    # Disconnects only stop this generator; the run itself goes on in its own task.
    return EventSourceResponse(_frames(run_id, events), headers=headers, ping=ping_seconds)


@dataclass(frozen=True)
class Frame:
    """One SSE frame of another dialect (the Agent Protocol's stream modes): its event name,
    its JSON data, and its id when it ends a run event (where a resumed stream continues)."""

    event: str
    data: Any
    id: str | None = None


class RawJson(str):
    """Frame data already encoded (a stream that resends a growing list encodes each item once)."""

    __slots__ = ()


def encode(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


async def _protocol_frames(frames: AsyncIterator[Frame]) -> AsyncIterator[ServerSentEvent]:
    async for frame in frames:
        data = frame.data if isinstance(frame.data, RawJson) else encode(frame.data)
        yield ServerSentEvent(data=data, event=frame.event, id=frame.id)


def frames_response(
    frames: AsyncIterator[Frame], *, headers: dict[str, str], ping_seconds: int
) -> EventSourceResponse:
    return EventSourceResponse(_protocol_frames(frames), headers=headers, ping=ping_seconds)


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

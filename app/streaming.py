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
from app.services.events import KINDS, RunEvent

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


def sse_frame(event: str, data: str, event_id: str | None = None) -> str:
    """One SSE frame, as sse_starlette frames it (CRLF). `data` is JSON: it has no line breaks
    (JSON escapes them), so it is one `data:` line; names and ids are this service's own."""
    head = f"id: {event_id}\r\n" if event_id is not None else ""
    return f"{head}event: {event}\r\ndata: {data}\r\n\r\n"


async def _frames(run_id: str, batches: AsyncIterator[list[RunEvent]]) -> AsyncIterator[bytes]:
    # The events there at once go out in one write: a burst of tokens costs one send.
    async for batch in batches:
        yield "".join(
            sse_frame(EVENT_NAMES[type(item.event)], item.data_json, f"{run_id}:{item.seq}") for item in batch
        ).encode()


def sse_response(
    run_id: str, batches: AsyncIterator[list[RunEvent]], *, headers: dict[str, str], ping_seconds: int
) -> EventSourceResponse:
    """A run's events (as many at a time as are there) as this service's SSE stream."""
    # Disconnects only stop this generator; the run itself goes on in its own task.
    return EventSourceResponse(_frames(run_id, batches), headers=headers, ping=ping_seconds)


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


async def _protocol_frames(batches: AsyncIterator[list[Frame]]) -> AsyncIterator[bytes]:
    async for frames in batches:
        yield "".join(
            sse_frame(f.event, f.data if isinstance(f.data, RawJson) else encode(f.data), f.id)
            for f in frames
        ).encode()


def frames_response(
    batches: AsyncIterator[list[Frame]], *, headers: dict[str, str], ping_seconds: int
) -> EventSourceResponse:
    """Another dialect's frames, each list in one write."""
    return EventSourceResponse(_protocol_frames(batches), headers=headers, ping=ping_seconds)


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

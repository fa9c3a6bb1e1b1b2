"""What happens during a run, as typed events. Transport-neutral: `streaming.py` renders them as
SSE, the JSON routes wait for the result, the MLflow adapter maps them to Responses events, and
the run event log (`app.memory.run_events`) stores them as `(kind, JSON)` rows.

A run's events are numbered from 1 (`RunEvent.seq`); a run's stream ends with exactly one
terminal event (`RunDone` or `RunFailed`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from app.agent.messages import stored_to_json
from app.memory.run_events import TERMINAL_KINDS
from app.memory.transcript import StoredMessage


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    thread_id: str
    input: tuple[StoredMessage, ...] = ()  # the turn's new messages, with the ids they are saved under


@dataclass(frozen=True)
class TokenDelta:
    message_id: str
    delta: str
    node: str = "agent"  # the graph node whose model call streams it


@dataclass(frozen=True)
class ToolCallStarted:
    message_id: str
    tool_call_id: str
    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class ToolResult:
    message_id: str
    tool_call_id: str
    name: str
    content: str
    node: str = "tools"  # the graph node that ran the tool


@dataclass(frozen=True)
class MessageCompleted:
    message: StoredMessage
    node: str = "agent"  # the graph node that made it


@dataclass(frozen=True)
class CustomData:
    """What a graph's node wrote to the stream itself (`get_stream_writer()`), as JSON."""

    data: Any


@dataclass(frozen=True)
class Interrupted:
    """The turn paused for a person: the interrupts it waits on (`{"id", "value"}`; for a tool
    call awaiting approval the value lists the calls). Followed by `RunDone`: the run succeeded,
    the thread waits for a resume."""

    interrupts: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class RunFailed:
    code: str
    message: str


@dataclass(frozen=True)
class RunDone:
    run_id: str
    thread_id: str
    checkpoint_id: str
    new_messages: int


TurnEvent = (
    RunStarted
    | TokenDelta
    | ToolCallStarted
    | ToolResult
    | MessageCompleted
    | CustomData
    | Interrupted
    | RunFailed
    | RunDone
)


@dataclass(frozen=True)
class RunEvent:
    """One event of a run's log: its position (from 1) and what happened."""

    seq: int
    event: TurnEvent

    @property
    def terminal(self) -> bool:
        return isinstance(self.event, RunDone | RunFailed)

    @cached_property
    def data_json(self) -> str:
        """`event_json` of the event as JSON text, made once: a stream sends it and the log
        stores it (a run's tokens are its most numerous events)."""
        return json.dumps(event_json(self.event), ensure_ascii=False)


# The stored kind of each event (also its SSE event name, which `streaming.py` owns).
KINDS: dict[type[Any], str] = {
    RunStarted: "run_start",
    TokenDelta: "token",
    ToolCallStarted: "tool_call",
    ToolResult: "tool_result",
    MessageCompleted: "message",
    CustomData: "custom",
    Interrupted: "interrupt",
    RunFailed: "error",
    RunDone: "done",
}
_BY_KIND = {kind: cls for cls, kind in KINDS.items()}
# The log finds a run's end by these names.
assert (KINDS[RunDone], KINDS[RunFailed]) == TERMINAL_KINDS


def _message_from_json(body: dict[str, Any]) -> StoredMessage:
    run_id = body.get("run_id")
    return StoredMessage(
        seq=-1,
        message_id=str(body["id"]),
        run_id=uuid.UUID(run_id) if run_id else None,
        role=str(body["role"]),
        content=str(body["content"]),
        name=body.get("name"),
        tool_calls=body.get("tool_calls"),
        tool_call_id=body.get("tool_call_id"),
    )


def event_json(event: TurnEvent) -> dict[str, Any]:
    """The event's JSON payload (what the log stores and the SSE `data` carries)."""
    if isinstance(event, MessageCompleted):
        return {**stored_to_json(event.message), "node": event.node}
    if isinstance(event, RunStarted):
        return {
            "run_id": event.run_id,
            "thread_id": event.thread_id,
            "input": [stored_to_json(m) for m in event.input],
        }
    # Shallow (the event is frozen and its values are JSON already): `asdict` deep-copies,
    # which cost more than encoding a token.
    return dict(vars(event))


def event_kind(event: TurnEvent) -> str:
    return KINDS[type(event)]


def event_from_json(kind: str, data: dict[str, Any]) -> TurnEvent:
    """The inverse of (`event_kind`, `event_json`), for events read back from the log."""
    if kind == KINDS[MessageCompleted]:
        return MessageCompleted(message=_message_from_json(data), node=str(data.get("node", "agent")))
    if kind == KINDS[RunStarted]:
        return RunStarted(
            run_id=data["run_id"],
            thread_id=data["thread_id"],
            input=tuple(_message_from_json(m) for m in data.get("input", [])),
        )
    if kind == KINDS[Interrupted]:
        return Interrupted(interrupts=tuple(data.get("interrupts", [])))
    cls = _BY_KIND[kind]
    event: TurnEvent = cls(**data)
    return event

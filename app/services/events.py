"""What happens during a turn, as typed events. Transport-neutral: `streaming.py` renders them
as SSE, the JSON route ignores all but the result, the MLflow adapter maps them to its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    thread_id: str


@dataclass(frozen=True)
class TokenDelta:
    message_id: str
    delta: str


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


@dataclass(frozen=True)
class MessageCompleted:
    message: dict[str, Any]


@dataclass(frozen=True)
class RunFailed:
    code: str
    message: str


@dataclass(frozen=True)
class RunDone:
    result: dict[str, Any]


TurnEvent = RunStarted | TokenDelta | ToolCallStarted | ToolResult | MessageCompleted | RunFailed | RunDone

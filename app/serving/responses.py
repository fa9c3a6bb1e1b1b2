"""The Responses protocol (MLflow `ResponsesAgent`) over the runs service, for every transport.

One mapping, used by both the MLflow model (`app.serving.agent`) and `POST /invocations`
(`app.api.invocations`), so Model Serving and the App speak the same protocol. Plain pydantic and
dicts only: the HTTP service must not need MLflow to speak it. The item and event shapes are those
of `mlflow.types.responses` (`create_text_delta`, `create_function_call_item`, ...).

Requests. The thread is `custom_inputs.thread_id`, else `context.conversation_id`, else a new id;
it is always returned in `custom_outputs.thread_id`. Memory is server-side, so on a named thread
only the trailing user (and system) messages of `input` are the new turn: chat front ends that
resend the whole conversation do not duplicate it. A request without a thread starts a new one
and all its messages (user, assistant, system) become that thread's first turn. Tool items in
`input` (`function_call`, `function_call_output`, ...) are earlier turns' work and are skipped.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.errors import InvalidInput
from app.services.events import (
    MessageCompleted,
    RunDone,
    RunEvent,
    RunFailed,
    TokenDelta,
    ToolCallStarted,
    ToolResult,
)
from app.services.run_model import TurnResult
from app.services.storable import check_text
from app.services.turn_input import check_turn_messages
from app.settings import LimitSettings

# The same rule as the HTTP routes' thread ids (app/api/deps.py); serving/ must not import api/.
_THREAD_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_TEXT_PARTS = {"input_text", "output_text", "text"}


class ResponsesItem(BaseModel):
    """An input item: a message (`role`, `content`) or an earlier output item (`type`)."""

    model_config = ConfigDict(extra="allow")

    type: str = "message"
    role: str | None = None
    content: str | list[dict[str, Any]] | None = None


class ResponsesContext(BaseModel):
    model_config = ConfigDict(extra="allow")

    conversation_id: str | None = None
    user_id: str | None = None


class DatabricksOptions(BaseModel):
    """Options Databricks clients send with a request; `return_trace` asks for the trace id."""

    model_config = ConfigDict(extra="allow")

    return_trace: bool = False


class ResponsesRequest(BaseModel):
    """The body of a `ResponsesAgent` request (`mlflow.types.responses.ResponsesAgentRequest`).

    Fields of the Responses API this agent does not use (`tools`, `temperature`, ...) are accepted
    and ignored: the agent's tools and model are the service's own.
    """

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "input": [{"role": "user", "content": "Who committed the latest malware threat?"}],
                    "custom_inputs": {"thread_id": "t1"},
                },
                {
                    "input": [{"role": "user", "content": "What was their IP address?"}],
                    "context": {"conversation_id": "t1"},
                    "stream": True,
                },
            ]
        },
    )

    input: list[ResponsesItem] = Field(min_length=1)
    custom_inputs: dict[str, Any] | None = None
    context: ResponsesContext | None = None
    stream: bool | None = None
    databricks_options: DatabricksOptions | None = None


def parse_request(data: dict[str, Any]) -> ResponsesRequest:
    """A request body from a dict, or `InvalidInput` saying what is wrong with it."""
    try:
        return ResponsesRequest.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()[:5]
        ]
        raise InvalidInput("; ".join(problems)) from None


@dataclass(frozen=True)
class PlannedTurn:
    thread_id: str
    messages: list[tuple[str, str]]


def resolve_thread_id(request: ResponsesRequest) -> tuple[str, bool]:
    """The thread to run on, and whether the request named it (False: a new id was made)."""
    custom = request.custom_inputs or {}
    named = custom.get("thread_id")
    source = "custom_inputs.thread_id"
    if named is None and request.context is not None and request.context.conversation_id:
        named, source = request.context.conversation_id, "context.conversation_id"
    if named is None:
        return str(uuid.uuid4()), False
    if not isinstance(named, str) or not _THREAD_ID.fullmatch(named):
        raise InvalidInput(f"{source} must be 1-128 characters of letters, digits, '.', '_', ':' or '-'.")
    return named, True


def request_user(request: ResponsesRequest) -> str | None:
    """The caller the request names (`context.user_id`, else `custom_inputs.user`), unverified."""
    user = request.context.user_id if request.context is not None else None
    if not user:
        named = (request.custom_inputs or {}).get("user")
        user = named if isinstance(named, str) and named else None
    if user is not None:
        check_text(user, where="the request's user")  # it becomes the owner of stored rows
    return user


def _text(item: ResponsesItem, index: int) -> str:
    if isinstance(item.content, str):
        return item.content
    if item.content is None:
        raise InvalidInput(f"input[{index}]: a message needs `content`.")
    parts: list[str] = []
    for part in item.content:
        if part.get("type") not in _TEXT_PARTS or not isinstance(part.get("text"), str):
            raise InvalidInput(f"input[{index}]: only text content is supported.")
        parts.append(part["text"])
    return "".join(parts)


def _messages(request: ResponsesRequest) -> list[tuple[str, str]]:
    messages: list[tuple[str, str]] = []
    for index, item in enumerate(request.input):
        if item.type != "message":
            continue
        role = _ROLES.get(item.role or "")
        if role is None:
            raise InvalidInput(f"input[{index}]: role must be user, assistant, system or developer.")
        messages.append((role, _text(item, index)))
    return messages


def plan_turn(request: ResponsesRequest, limits: LimitSettings) -> PlannedTurn:
    """The thread and the new messages of this turn (see the module docstring), validated."""
    thread_id, named = resolve_thread_id(request)
    messages = _messages(request)
    if named:
        # The history before the last answer is already in the thread's memory.
        start = len(messages)
        while start > 0 and messages[start - 1][0] != "assistant":
            start -= 1
        messages = messages[start:]
    check_turn_messages(messages, limits)
    return PlannedTurn(thread_id=thread_id, messages=messages)


# -- output ----------------------------------------------------------------------------------


def text_item(text: str, item_id: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def function_call_item(call_id: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": call_id,
        "call_id": call_id,
        "name": name,
        "arguments": json.dumps(args, ensure_ascii=False),
    }


def function_call_output_item(call_id: str, output: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def output_items(result: TurnResult) -> list[dict[str, Any]]:
    """A completed turn's new messages as Responses output items (the inputs are not echoed)."""
    items: list[dict[str, Any]] = []
    for message in result.messages:
        if message.role == "assistant":
            for call in message.tool_calls or []:
                items.append(function_call_item(call["id"], call["name"], call["args"]))
            if message.content:
                items.append(text_item(message.content, message.message_id))
        elif message.role == "tool":
            items.append(function_call_output_item(message.tool_call_id or "", message.content))
    return items


def custom_outputs(
    thread_id: str, result: TurnResult | None = None, run_id: str | None = None
) -> dict[str, Any]:
    outputs: dict[str, Any] = {"thread_id": thread_id}
    if result is not None:
        outputs["run_id"] = result.run_id
        outputs["checkpoint_id"] = result.checkpoint_id
        if result.interrupts:
            # The turn paused for a decision (TOOL_APPROVAL): resume it through the service's API.
            outputs["interrupts"] = list(result.interrupts)
    elif run_id is not None:
        outputs["run_id"] = run_id
    return outputs


def response_body(result: TurnResult) -> dict[str, Any]:
    """A `ResponsesAgentResponse` for a completed turn."""
    return {
        "id": result.run_id,
        "object": "response",
        "status": "completed",
        "output": output_items(result),
        "custom_outputs": custom_outputs(result.thread_id, result),
    }


def _item_done(item: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
    return {"type": "response.output_item.done", "item": item, "custom_outputs": outputs}


async def stream_events(
    events: AsyncIterator[RunEvent],
    *,
    thread_id: str,
    run_id: str,
    result: Callable[[], Awaitable[TurnResult]],
) -> AsyncIterator[dict[str, Any]]:
    """A turn's events as `ResponsesAgentStreamEvent`s: text deltas, one `output_item.done` per
    function call, function result and answer, then `response.completed` (or `error`)."""
    outputs = custom_outputs(thread_id, run_id=run_id)
    async for item in events:
        event = item.event
        if isinstance(event, TokenDelta):
            yield {"type": "response.output_text.delta", "item_id": event.message_id, "delta": event.delta}
        elif isinstance(event, ToolCallStarted):
            yield _item_done(function_call_item(event.tool_call_id, event.name, event.args), outputs)
        elif isinstance(event, ToolResult):
            yield _item_done(function_call_output_item(event.tool_call_id, event.content), outputs)
        elif isinstance(event, MessageCompleted):
            # Only answer text becomes a message item: tool calls and results have their own events.
            message = event.message
            if message.role == "assistant" and message.content:
                yield _item_done(text_item(message.content, message.message_id), outputs)
        elif isinstance(event, RunFailed):
            yield {"type": "error", "code": event.code, "message": event.message}
        elif isinstance(event, RunDone):
            body = response_body(await result())
            yield {
                "type": "response.completed",
                "response": {k: v for k, v in body.items() if k != "custom_outputs"},
                "custom_outputs": body["custom_outputs"],
            }

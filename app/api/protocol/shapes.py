"""The Agent Protocol's shapes (`langgraph_sdk.schema`), made from the service's typed models,
and the protocol's run input read into a turn request."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.api.schemas import RunOut, servable_metadata
from app.errors import InvalidInput
from app.memory.history import CheckpointRecord
from app.memory.threads import ThreadRecord
from app.memory.transcript import StoredMessage
from app.services.run_model import BUILTIN_GRAPH, Resume, Run
from app.services.storable import clip_json
from app.settings import MultitaskStrategy
from app.streaming import encode

# The stream modes this service renders (the protocol's names).
STREAM_MODES = ("values", "updates", "messages-tuple", "messages", "custom")
_ROLES = {"user": "user", "human": "user", "assistant": "assistant", "ai": "assistant", "system": "system"}


_TYPES = {"user": "human", "assistant": "ai", "tool": "tool", "system": "system"}


def lc_message(message: StoredMessage) -> dict[str, Any]:
    """A transcript row as a LangChain message dict (what `model_dump()` of the message gives),
    as the protocol's `values.messages` hold; built directly, as a stream builds many."""
    kind = _TYPES.get(message.role, message.role)
    body: dict[str, Any] = {
        "content": message.content,
        "additional_kwargs": {},
        "response_metadata": {},
        "type": kind,
        "name": message.name,
        "id": message.message_id,
    }
    if kind == "ai":
        body["tool_calls"] = [
            {"name": c["name"], "args": c["args"], "id": c["id"], "type": "tool_call"}
            for c in message.tool_calls or []
        ]
        body["invalid_tool_calls"] = []
        body["usage_metadata"] = None
    elif kind == "tool":
        body.update(tool_call_id=message.tool_call_id or "", artifact=None, status="success")
    return body


def values_of(messages: list[StoredMessage]) -> dict[str, Any]:
    return {"messages": [lc_message(m) for m in messages]}


def encoded_message(message: StoredMessage) -> str:
    """`lc_message` as JSON: a conversation's messages are encoded once and then reused."""
    return encode(lc_message(message))


def encoded_values(messages: Sequence[str], extra: dict[str, Any] | None = None) -> str:
    """`values` (the built-in agent's state) as JSON, of messages `encoded_message` made, with
    `extra` keys beside them (`__interrupt__`)."""
    tail = "".join("," + encode(key) + ":" + encode(value) for key, value in (extra or {}).items())
    return '{"messages":[' + ",".join(messages) + "]" + tail + "}"


def paused_values(interrupts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What LangGraph's server adds to the values of a run that paused: its interrupts."""
    return {"__interrupt__": [interrupt_value(i) for i in interrupts]} if interrupts else {}


def checkpoint_ref(thread_id: str, checkpoint_id: str | None) -> dict[str, Any]:
    return {
        "thread_id": thread_id,
        "checkpoint_ns": "",
        "checkpoint_id": checkpoint_id,
        "checkpoint_map": None,
    }


def interrupt_value(recorded: dict[str, Any]) -> dict[str, Any]:
    """An interrupt as the protocol shows it (`Interrupt`: value and id)."""
    return {"value": recorded.get("value"), "id": recorded.get("id")}


def thread_json(record: ThreadRecord, values: dict[str, Any]) -> dict[str, Any]:
    interrupts: dict[str, list[dict[str, Any]]] = {}
    for recorded in record.interrupts or []:
        interrupts.setdefault(str(recorded.get("task_id", "")), []).append(interrupt_value(recorded))
    return {
        "thread_id": record.thread_id,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "metadata": clip_json(record.metadata),
        "status": record.status_at(datetime.now(UTC)),
        "values": values,
        "interrupts": interrupts,
    }


def with_interrupts(state: dict[str, Any], thread: ThreadRecord) -> dict[str, Any]:
    """A state as LangGraph shows a paused one, when it is the head of a waiting thread: the
    nodes to run next, their tasks with the interrupts they wait on, and those interrupts."""
    if not thread.interrupts or state["checkpoint"]["checkpoint_id"] != thread.head_checkpoint_id:
        return state
    tasks: dict[str, dict[str, Any]] = {}
    for recorded in thread.interrupts:
        task_id, node = str(recorded.get("task_id", "")), str(recorded.get("node", ""))
        task = tasks.setdefault(
            task_id,
            {
                "id": task_id,
                "name": node,
                "path": ["__pregel_pull", node],
                "error": None,
                "interrupts": [],
                "checkpoint": None,
                "state": None,
                "result": None,
            },
        )
        task["interrupts"].append(interrupt_value(recorded))
    return {
        **state,
        "next": list(dict.fromkeys(t["name"] for t in tasks.values())),
        "tasks": list(tasks.values()),
        "interrupts": [interrupt_value(r) for r in thread.interrupts],
    }


def state_json(thread_id: str, record: CheckpointRecord, values: dict[str, Any]) -> dict[str, Any]:
    return {
        "values": values,
        "next": [],
        "checkpoint": checkpoint_ref(thread_id, record.checkpoint_id),
        "metadata": {"step": record.step, "source": record.source, "run_id": record.run_id},
        "created_at": record.created_at.isoformat() if record.created_at else None,
        "parent_checkpoint": (
            checkpoint_ref(thread_id, record.parent_checkpoint_id) if record.parent_checkpoint_id else None
        ),
        "tasks": [],
        "interrupts": [],
    }


def empty_state(thread_id: str) -> dict[str, Any]:
    return {
        "values": {},
        "next": [],
        "checkpoint": checkpoint_ref(thread_id, None),
        "metadata": {},
        "created_at": None,
        "parent_checkpoint": None,
        "tasks": [],
        "interrupts": [],
    }


def run_json(run: Run) -> dict[str, Any]:
    body: dict[str, Any] = RunOut.of(run).model_dump(mode="json")
    return body


class RunCreate(BaseModel):
    """A run as the Agent Protocol creates it (`runs.create/stream/wait`). Unknown fields the
    SDK may send (webhook, feedback keys, ...) are accepted and ignored, as documented."""

    model_config = ConfigDict(extra="ignore")

    assistant_id: str = BUILTIN_GRAPH
    input: dict[str, Any] | None = None
    command: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    checkpoint: dict[str, Any] | None = None

    _check_metadata = field_validator("metadata")(servable_metadata)
    checkpoint_id: str | None = Field(default=None, max_length=64)
    stream_mode: str | list[str] = "values"
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    multitask_strategy: MultitaskStrategy | None = None
    if_not_exists: str = Field(default="reject", pattern="^(create|reject)$")
    on_disconnect: str = Field(default="continue", pattern="^(cancel|continue)$")
    after_seconds: float | None = Field(default=None, ge=0)
    interrupt_before: Any = None
    interrupt_after: Any = None

    def modes(self) -> list[str]:
        modes = [self.stream_mode] if isinstance(self.stream_mode, str) else list(self.stream_mode)
        for mode in modes:
            if mode not in STREAM_MODES:
                raise InvalidInput(
                    f"stream_mode {mode!r} is not supported here; use {', '.join(STREAM_MODES)}."
                )
        return modes or ["values"]

    def fork_from(self) -> str | None:
        configurable = (self.config or {}).get("configurable") or {}
        found = self.checkpoint_id or (self.checkpoint or {}).get("checkpoint_id")
        found = found or configurable.get("checkpoint_id")
        if found is not None and not isinstance(found, str):
            raise InvalidInput("checkpoint_id must be a string.")
        return found

    def resume(self) -> Resume | None:
        """The answer to the thread's pending interrupt (`command.resume`), if this run is one."""
        if self.command is None:
            return None
        others = sorted(k for k, v in self.command.items() if k != "resume" and v is not None)
        if others:
            raise InvalidInput(
                f"command.{others[0]} is not supported here; resume a paused run with command.resume."
            )
        if "resume" not in self.command:
            raise InvalidInput("`command` needs `resume`: the answer to the thread's pending interrupt.")
        if self.fork_from() is not None:
            raise InvalidInput("A resume continues the thread's paused turn: send it without a checkpoint.")
        return Resume(value=self.command["resume"])

    def messages(self) -> list[tuple[str, str]]:
        """The new messages of the turn, as (role, text)."""
        if self.interrupt_before or self.interrupt_after:
            raise InvalidInput("interrupt_before/interrupt_after are not supported by this server yet.")
        raw = (self.input or {}).get("messages")
        if isinstance(raw, dict | str):
            raw = [raw]
        if not isinstance(raw, list) or not raw:
            raise InvalidInput("`input.messages` must hold the turn's messages.")
        return [_message(item, index) for index, item in enumerate(raw)]


def _message(item: Any, index: int) -> tuple[str, str]:
    if isinstance(item, str):
        return "user", item
    if not isinstance(item, dict):
        raise InvalidInput(f"input.messages[{index}] must be a message object.")
    role = _ROLES.get(str(item.get("role") or item.get("type") or "user"))
    if role is None:
        raise InvalidInput(f"input.messages[{index}]: only user, assistant and system messages can be sent.")
    content = item.get("content")
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            else:
                raise InvalidInput(f"input.messages[{index}]: only text content blocks are supported.")
        content = "".join(parts)
    if not isinstance(content, str):
        raise InvalidInput(f"input.messages[{index}].content must be text or text blocks.")
    return role, content


def new_thread_id() -> str:
    return str(uuid.uuid4())

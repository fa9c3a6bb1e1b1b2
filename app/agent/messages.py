"""Conversion between LangChain messages and the service's stored/public message shape."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
)

from app.memory.transcript import StoredMessage

ROLE_OF = {"human": "user", "ai": "assistant", "tool": "tool", "system": "system"}


def text_of(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "".join(parts)


def to_langchain(role: str, content: str, message_id: str | None = None) -> BaseMessage:
    """A new input message; ids are assigned here so the transcript and the state agree (a
    question asked again on a new branch keeps its id)."""
    message_id = message_id or str(uuid.uuid4())
    if role == "user":
        return HumanMessage(content=content, id=message_id)
    if role == "assistant":
        return AIMessage(content=content, id=message_id)
    if role == "system":
        return SystemMessage(content=content, id=message_id)
    raise ValueError(f"unsupported role {role!r}")


def tool_calls_of(message: BaseMessage) -> list[dict[str, Any]] | None:
    if not isinstance(message, AIMessage) or not message.tool_calls:
        return None
    return [{"id": c["id"], "name": c["name"], "args": c["args"]} for c in message.tool_calls]


def to_stored(message: BaseMessage, *, seq: int, run_id: uuid.UUID | None) -> StoredMessage:
    return StoredMessage(
        seq=seq,
        message_id=message.id or str(uuid.uuid4()),
        run_id=run_id,
        role=ROLE_OF.get(message.type, message.type),
        content=text_of(message),
        name=message.name if isinstance(message, ToolMessage) else None,
        tool_calls=tool_calls_of(message),
        tool_call_id=message.tool_call_id if isinstance(message, ToolMessage) else None,
    )


def stored_to_langchain(message: StoredMessage) -> BaseMessage:
    """A transcript row as the model sees it again (the history of a later turn)."""
    if message.role == "user":
        return HumanMessage(content=message.content, id=message.message_id)
    if message.role == "assistant":
        calls = [ToolCall(id=c["id"], name=c["name"], args=c["args"]) for c in message.tool_calls or []]
        return AIMessage(content=message.content, id=message.message_id, tool_calls=calls)
    if message.role == "tool":
        return ToolMessage(
            content=message.content,
            id=message.message_id,
            tool_call_id=message.tool_call_id or "",
            name=message.name,
        )
    return SystemMessage(content=message.content, id=message.message_id)


def stored_to_json(message: StoredMessage) -> dict[str, Any]:
    """The public shape of a message (API bodies, SSE events, idempotent replays)."""
    body: dict[str, Any] = {
        "id": message.message_id,
        "role": message.role,
        "content": message.content,
        "run_id": str(message.run_id) if message.run_id else None,
    }
    if message.tool_calls is not None:
        body["tool_calls"] = message.tool_calls
    if message.tool_call_id is not None:
        body["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        body["name"] = message.name
    if message.created_at is not None:
        body["created_at"] = message.created_at.isoformat()
    return body


def request_fingerprint(
    messages: list[tuple[str, str]], checkpoint_id: str | None, resume: Any = None
) -> str:
    """Stable hash of what a turn request asks for (to reject a reused idempotency key)."""
    asked: dict[str, Any] = {"m": messages, "c": checkpoint_id}
    if resume is not None:
        asked["r"] = resume
    payload = json.dumps(asked, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()

"""A turn's request, its handle for the caller, and its running state with its events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage

from app.agent.messages import stored_to_json, text_of, to_stored
from app.memory.runs import TurnStart
from app.memory.threads import ThreadRecord
from app.services.events import (
    MessageCompleted,
    RunDone,
    RunStarted,
    ToolCallStarted,
    ToolResult,
    TurnEvent,
)


@dataclass(frozen=True)
class TurnRequest:
    owner: str
    thread_id: str
    messages: list[tuple[str, str]]  # (role, content)
    checkpoint_id: str | None = None
    idempotency_key: str | None = None


@dataclass
class TurnHandle:
    """A started (or replayed) turn: its events as they happen, and its result."""

    run_id: str
    replayed: bool
    _queue: asyncio.Queue[TurnEvent | None] | None = None
    _task: asyncio.Task[dict[str, Any]] | None = None
    _result: dict[str, Any] | None = None

    async def result(self) -> dict[str, Any]:
        if self._result is not None:
            return self._result
        assert self._task is not None
        # shield: the caller going away must not cancel the turn itself.
        return await asyncio.shield(self._task)

    async def events(self) -> AsyncIterator[TurnEvent]:
        if self._result is not None:  # an idempotent replay: the stored turn as events
            yield RunStarted(run_id=self.run_id, thread_id=self._result["thread_id"])
            for message in self._result["messages"]:
                yield MessageCompleted(message=message)
            yield RunDone(result=self._result)
            return
        assert self._queue is not None
        while (event := await self._queue.get()) is not None:
            yield event


@dataclass
class Turn:
    """A running turn: what it runs on, and where its events go (None: nobody streams)."""

    request: TurnRequest
    run_id: uuid.UUID
    thread: ThreadRecord
    start: TurnStart
    queue: asyncio.Queue[TurnEvent | None] | None
    lease_lost: asyncio.Event = field(default_factory=asyncio.Event)

    def emit(self, event: TurnEvent) -> None:
        if self.queue is not None:
            self.queue.put_nowait(event)

    def emit_updates(self, payload: dict[str, Any]) -> None:
        """Tool-call, tool-result and complete-message events from a graph "updates" chunk."""
        for update in payload.values():
            if not isinstance(update, dict):
                continue
            for message in update.get("messages", []):
                if isinstance(message, AIMessage):
                    for call in message.tool_calls:
                        self.emit(
                            ToolCallStarted(
                                message_id=message.id or "",
                                tool_call_id=call["id"] or "",
                                name=call["name"],
                                args=call["args"],
                            )
                        )
                    self.emit(
                        MessageCompleted(
                            message=stored_to_json(to_stored(message, seq=-1, run_id=self.run_id))
                        )
                    )
                elif isinstance(message, ToolMessage):
                    self.emit(
                        ToolResult(
                            message_id=message.id or "",
                            tool_call_id=message.tool_call_id,
                            name=message.name or "",
                            content=text_of(message),
                        )
                    )

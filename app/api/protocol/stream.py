"""A run's events rendered in the Agent Protocol's stream modes.

`metadata` first (`run_id`), then per event what the requested modes ask for: `values` (the
whole conversation after each step), `updates` (what each node added), `messages-tuple`
(token chunks and complete messages, with their metadata) and `messages` (partial and complete
message lists); `error` or `end` last. Every run event's last frame carries the run's event id
(`<run_id>:<n>`), so `Last-Event-ID` resumes a protocol stream exactly as a native one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from app.api.protocol.shapes import encoded_message, encoded_values, interrupt_value, lc_message
from app.services.events import (
    CustomData,
    Interrupted,
    MessageCompleted,
    RunDone,
    RunEvent,
    RunFailed,
    RunStarted,
    TokenDelta,
    ToolResult,
)
from app.streaming import Frame, RawJson, encode

_CHUNK_FIELDS: dict[str, Any] = {
    "additional_kwargs": {},
    "response_metadata": {},
    "tool_calls": [],
    "invalid_tool_calls": [],
}
_CHUNK_TAIL = "," + encode(_CHUNK_FIELDS)[1:]  # the chunk's constant fields, closing its object


def _tool_message(event: ToolResult) -> dict[str, Any]:
    return {
        "type": "tool",
        "content": event.content,
        "id": event.message_id,
        "tool_call_id": event.tool_call_id,
        "name": event.name,
        "additional_kwargs": {},
        "response_metadata": {},
        "status": "success",
    }


class ProtocolStream:
    def __init__(self, *, run_id: str, thread_id: str, modes: list[str], prior: Sequence[str]) -> None:
        """`prior`: the conversation the run starts from, its messages by `encoded_message`."""
        self._run_id = run_id
        self._thread_id = thread_id
        self._modes = set(modes)
        # Each message encoded once: a `values` frame resends the whole, growing list.
        self._encoded = list(prior)
        self._partial: dict[str, str] = {}
        self._encoded_meta: dict[str, str] = {}

    def _values(self) -> RawJson:
        return RawJson(encoded_values(self._encoded))

    def _meta(self, node: str) -> dict[str, Any]:
        return {"langgraph_node": node, "run_id": self._run_id, "thread_id": self._thread_id}

    def _token_frame(self, event: TokenDelta) -> RawJson:
        meta = self._encoded_meta.get(event.node)
        if meta is None:
            meta = self._encoded_meta[event.node] = encode(self._meta(event.node))
        head = (
            '[{"type":"AIMessageChunk","content":' + encode(event.delta) + ',"id":' + encode(event.message_id)
        )
        return RawJson(head + _CHUNK_TAIL + "," + meta + "]")

    def _message_frames(self, message: dict[str, Any], node: str) -> list[tuple[str, Any]]:
        """Frames for a message a step completed (and the state after it)."""
        self._encoded.append(encode(message))
        frames: list[tuple[str, Any]] = []
        if "updates" in self._modes:
            frames.append(("updates", {node: {"messages": [message]}}))
        if "messages-tuple" in self._modes and message["id"] not in self._partial:
            frames.append(("messages", [message, self._meta(node)]))
        if "messages" in self._modes:
            frames.append(("messages/complete", [message]))
        if "values" in self._modes:
            frames.append(("values", self._values()))
        return frames

    def _frames(self, item: RunEvent) -> list[tuple[str, Any]]:
        event = item.event
        if isinstance(event, RunStarted):
            self._encoded.extend(encoded_message(m) for m in event.input)
            return [("values", self._values())] if "values" in self._modes else []
        if isinstance(event, TokenDelta):
            text = self._partial.get(event.message_id, "") + event.delta
            self._partial[event.message_id] = text
            frames: list[tuple[str, Any]] = []
            if "messages-tuple" in self._modes:
                # The hottest frame of a stream (one per token): its constant parts encoded once.
                frames.append(("messages", self._token_frame(event)))
            if "messages" in self._modes:
                partial = {"type": "ai", "content": text, "id": event.message_id, **_CHUNK_FIELDS}
                frames.append(("messages/partial", [partial]))
            return frames
        if isinstance(event, MessageCompleted):
            return self._message_frames(lc_message(event.message), event.node)
        if isinstance(event, ToolResult):
            return self._message_frames(_tool_message(event), event.node)
        if isinstance(event, CustomData):
            return [("custom", event.data)] if "custom" in self._modes else []
        if isinstance(event, Interrupted):
            # As LangGraph streams a pause: the interrupts as a `values` chunk and an update.
            paused = {"__interrupt__": [interrupt_value(i) for i in event.interrupts]}
            return [(mode, paused) for mode in ("updates", "values") if mode in self._modes]
        if isinstance(event, RunFailed):
            return [("error", {"error": event.code, "message": event.message})]
        if isinstance(event, RunDone):
            return [("end", None)]
        return []  # a tool call is shown by its AI message

    async def frames(
        self, batches: AsyncIterator[list[RunEvent]], *, after: int = 0
    ) -> AsyncIterator[list[Frame]]:
        """The frames of a run's events from its first, sending those after event `after` only:
        a stream resumed there still renders the whole conversation in its `values`. Each batch
        of events gives one list of frames (written at once)."""
        yield [Frame(event="metadata", data={"run_id": self._run_id, "attempt": 1})]
        async for batch in batches:
            out: list[Frame] = []
            for item in batch:
                rendered = self._frames(item)
                if item.seq <= after:
                    continue
                for index, (name, data) in enumerate(rendered):
                    last = index == len(rendered) - 1
                    out.append(
                        Frame(event=name, data=data, id=f"{self._run_id}:{item.seq}" if last else None)
                    )
            if out:
                yield out

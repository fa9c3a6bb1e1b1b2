"""The saver's decoder (app/memory/message_decoding.py) gives what `serde.loads_typed` gives,
object for object, for every kind of message and for what the library blocks or warns about."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, cast

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
)
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import BaseModel

from app.memory.delta_saver import DeltaPostgresSaver
from app.memory.message_decoding import ListDecoder


class Verdict(BaseModel):
    """A pydantic model of the caller's own: not on the library's allowlist."""

    label: str
    score: float


@dataclass
class Note:
    text: str


def _fields(**fields: Any) -> dict[str, Any]:
    return fields


def _conversation() -> list[Any]:
    call: dict[str, Any] = {
        "name": "open_ticket",
        "args": {"summary": "VPN"},
        "id": "call_1",
        "type": "tool_call",
    }
    return [
        SystemMessage("be brief", id="s1"),
        HumanMessage([{"type": "text", "text": "hi"}, "there"], id=str(uuid.uuid4()), name="ada"),
        AIMessage(
            "",
            tool_calls=[ToolCall(name="open_ticket", args={"summary": "VPN"}, id="call_1", type="tool_call")],
            id="a1",
            usage_metadata={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
        ),
        # A tool call that carries `extras`: AIMessage's validator drops them, so decoding
        # must validate exactly as the library does (a shortcut that skipped it would keep them).
        AIMessage.model_construct(**_fields(content="", tool_calls=[call | {"extras": {"x": 1}}], id="a2")),
        AIMessage(
            "",
            additional_kwargs={
                "tool_calls": [{"id": "c9", "function": {"name": "f", "arguments": "{}"}, "type": "function"}]
            },
        ),
        ToolMessage(
            "opened T-1", tool_call_id="call_1", name="open_ticket", artifact={"n": 1}, status="success"
        ),
        AIMessageChunk(content="par", id="chunk"),
        ChatMessage(content="x", role="critic"),
        FunctionMessage(content="y", name="f"),
        RemoveMessage(id="s1"),
        {"plain": ["dict", 1, 2.5, None, True]},
        uuid.UUID(int=7),
        "text",
    ]


def _same(left: list[Any], right: list[Any]) -> None:
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        assert type(a) is type(b)
        assert a == b
        if isinstance(a, BaseModel):
            assert a.__dict__ == b.__dict__
            assert a.model_fields_set == b.model_fields_set


def test_a_conversation_decodes_as_the_library_decodes_it() -> None:
    serde = JsonPlusSerializer()
    typed = serde.dumps_typed(_conversation())
    assert typed[0] == "msgpack"
    ours = ListDecoder(serde)(typed)
    _same(ours, serde.loads_typed(typed))
    # The drop of `extras` really happened (the test would not notice a shortcut otherwise).
    assert "extras" not in ours[3].tool_calls[0]
    # The second decode uses the classes kept from the first: still the same.
    _same(ListDecoder(serde)(typed), ours)


@pytest.mark.parametrize("allowed", [None, [("tests.unit.test_message_decoding", "Verdict")]])
def test_types_off_the_allowlist_are_left_to_the_library(allowed: list[tuple[str, str]] | None) -> None:
    """Strict by default: the library returns a blocked object's fields; allowed, it builds it."""
    writer = JsonPlusSerializer()
    typed = writer.dumps_typed([Verdict(label="ok", score=0.5), Note("n"), HumanMessage("hi", id="h")])
    serde = JsonPlusSerializer(allowed_msgpack_modules=allowed)
    expected = serde.loads_typed(typed)
    ours = ListDecoder(serde)(typed)
    assert ours == expected
    assert [type(item) for item in ours] == [type(item) for item in expected]
    assert isinstance(ours[0], Verdict) == (allowed is not None)


def test_other_encodings_and_serializers_go_to_the_serializer() -> None:
    serde = JsonPlusSerializer()
    assert ListDecoder(serde)(("json", b'[1, "a"]')) == serde.loads_typed(("json", b'[1, "a"]'))
    assert ListDecoder(serde)(("bytes", b"raw")) == b"raw"

    class Wrapped(JsonPlusSerializer):
        """Another serializer (an encrypting one, say) decodes its own blobs."""

        def loads_typed(self, data: tuple[str, bytes]) -> Any:
            return ["decoded by the wrapper"]

    assert ListDecoder(Wrapped())(JsonPlusSerializer().dumps_typed([1])) == ["decoded by the wrapper"]


async def test_the_saver_decodes_with_the_serializer_a_compiled_graph_gives_it() -> None:
    """Compiling a graph in strict mode clones the saver with the state's types added to its
    serializer's allowlist; the clone must decode with that serializer, not the original's."""
    saver = DeltaPostgresSaver(cast(Any, None))
    saver.serde = JsonPlusSerializer(allowed_msgpack_modules=None)  # strict: only the library's types
    typed = JsonPlusSerializer().dumps_typed([Verdict(label="ok", score=0.5)])
    assert saver._decode(typed) == [{"label": "ok", "score": 0.5}]  # blocked: its fields
    clone = saver.with_allowlist([("tests.unit.test_message_decoding", "Verdict")])
    assert isinstance(clone, DeltaPostgresSaver) and clone is not saver
    assert clone._decode(typed) == [Verdict(label="ok", score=0.5)]
    assert saver._decode(typed) == [{"label": "ok", "score": 0.5}]

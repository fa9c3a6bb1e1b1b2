"""The protocol's message dicts are exactly what LangChain's own `model_dump()` gives."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from app.agent.messages import stored_to_langchain
from app.api.protocol.shapes import lc_message
from app.memory.transcript import StoredMessage


def test_message_dicts_match_langchain() -> None:
    run = uuid.uuid4()
    rows = [
        StoredMessage(0, "m0", run, "user", "Who committed the latest malware threat?", None, None, None),
        StoredMessage(
            1,
            "m1",
            run,
            "assistant",
            "",
            None,
            [{"id": "c1", "name": "get_user_info", "args": {"ip": "1.2.3.4"}}],
            None,
        ),
        StoredMessage(2, "m2", run, "tool", "user_name: Ada", "get_user_info", None, "c1"),
        StoredMessage(3, "m3", run, "assistant", "Ada did.", None, None, None),
        StoredMessage(4, "m4", run, "system", "Be brief.", None, None, None),
    ]
    for row in rows:
        assert lc_message(row) == stored_to_langchain(row).model_dump()


async def test_a_token_frame_is_the_chunk_and_its_metadata() -> None:
    import json

    from app.api.protocol.stream import ProtocolStream
    from app.services.events import RunEvent, TokenDelta

    async def one() -> AsyncIterator[list[RunEvent]]:
        yield [
            RunEvent(seq=1, event=TokenDelta(message_id="m1", delta='He said "hi" \\u00e9\n', node="model"))
        ]

    stream = ProtocolStream(run_id="r1", thread_id="t1", modes=["messages-tuple"], prior=[])
    frames = [f async for batch in stream.frames(one()) for f in batch]
    assert json.loads(frames[-1].data) == [
        {
            "type": "AIMessageChunk",
            "content": 'He said "hi" \\u00e9\n',
            "id": "m1",
            "additional_kwargs": {},
            "response_metadata": {},
            "tool_calls": [],
            "invalid_tool_calls": [],
        },
        {"langgraph_node": "model", "run_id": "r1", "thread_id": "t1"},
    ]
    assert frames[-1].id == "r1:1"

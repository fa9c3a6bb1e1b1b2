"""SSE frames written by hand, as the framing library writes them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from sse_starlette import ServerSentEvent

from app.services.events import RunEvent, TokenDelta
from app.streaming import encode, sse_frame, sse_response


def test_a_frame_is_what_sse_starlette_encodes() -> None:
    data = encode({"delta": 'line\nbreak "quoted" \u2028 é'})
    for event_id in ("r:1", None):
        expected = ServerSentEvent(data=data, event="token", id=event_id).encode()
        assert sse_frame("token", data, event_id).encode() == expected


async def test_events_there_at_once_are_one_write_in_order() -> None:
    async def batches() -> AsyncIterator[list[RunEvent]]:
        yield [RunEvent(seq=n, event=TokenDelta(message_id="m", delta=str(n))) for n in (1, 2, 3)]

    response = sse_response("r", batches(), headers={}, ping_seconds=15)
    chunks = [chunk async for chunk in response.body_iterator]
    assert len(chunks) == 1
    assert isinstance(chunks[0], bytes)
    frames = chunks[0].decode().split("\r\n\r\n")[:-1]
    assert [f.split("\r\n")[0] for f in frames] == ["id: r:1", "id: r:2", "id: r:3"]
    assert [json.loads(f.split("data: ", 1)[1])["delta"] for f in frames] == ["1", "2", "3"]

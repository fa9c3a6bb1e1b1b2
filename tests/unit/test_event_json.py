"""An event's JSON, made once and shared by its SSE frame and its log row, is its data."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict

from psycopg.types.json import Jsonb

from app.memory.run_events import StoredEvent, event_rows
from app.memory.transcript import StoredMessage
from app.services.events import (
    CustomData,
    MessageCompleted,
    RunDone,
    RunEvent,
    RunFailed,
    RunStarted,
    TokenDelta,
    ToolCallStarted,
    ToolResult,
    TurnEvent,
    event_from_json,
    event_json,
    event_kind,
)
from app.services.live_run import stored

MESSAGE = StoredMessage(
    seq=-1,
    message_id="m1",
    run_id=uuid.uuid4(),
    role="assistant",
    content="é \n",
    name=None,
    tool_calls=[{"id": "c1", "name": "t", "args": {"q": "x"}}],
    tool_call_id=None,
)
EVENTS: list[TurnEvent] = [
    RunStarted(run_id="r", thread_id="t", input=(MESSAGE,)),
    TokenDelta(message_id="m1", delta='say "hi"\n', node="agent"),
    ToolCallStarted(message_id="m1", tool_call_id="c1", name="t", args={"q": ["x", 1]}),
    ToolResult(message_id="m2", tool_call_id="c1", name="t", content="done"),
    MessageCompleted(message=MESSAGE),
    CustomData(data={"progress": [1, 2]}),
    RunFailed(code="turn_failed", message="no"),
    RunDone(run_id="r", thread_id="t", checkpoint_id="c", new_messages=3),
]


def test_an_events_json_is_its_fields_and_reads_back_as_the_event() -> None:
    for event in EVENTS:
        data = event_json(event)
        if not isinstance(event, MessageCompleted | RunStarted):
            assert data == asdict(event)
        assert event_from_json(event_kind(event), json.loads(json.dumps(data))) == event


def as_text(body: Jsonb) -> str:
    """What psycopg sends for a Jsonb parameter."""
    text = (body.dumps or json.dumps)(body.obj)
    assert isinstance(text, str)
    return text


def test_a_batch_stored_from_the_events_text_is_the_batch_of_their_data() -> None:
    events = [RunEvent(seq=i + 1, event=e) for i, e in enumerate(EVENTS)]
    from_text = event_rows(stored(events))["ev_body"]
    from_data = event_rows(
        [StoredEvent(seq=e.seq, kind=event_kind(e.event), data=event_json(e.event)) for e in events]
    )["ev_body"]
    assert json.loads(as_text(from_text)) == json.loads(as_text(from_data))
    assert [json.loads(e.data_json) for e in events] == [event_json(e.event) for e in events]

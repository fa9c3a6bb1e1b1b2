"""Failures never break a thread: a failed turn saves nothing and frees the thread; a failing
tool becomes a tool result the model reads; shutdown cancels unfinished turns cleanly."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from app.agent.offline_model import OfflineChatModel
from app.agent.tools import USER_TOOL, build_local_tools
from app.errors import ServiceUnavailable, TurnFailed
from app.lifespan import open_resources
from app.memory.execution import ExecutionStore
from app.memory.pool import open_database
from app.memory.run_events import StoredEvent
from app.services.run_model import TurnRequest
from tests.conftest import make_settings, unique
from tests.fakes import ExplodingModel, broken_threat_tool

OWNER = "tester"


async def test_failed_turn_saves_nothing_and_the_next_turn_works(database_url: str) -> None:
    settings = make_settings(database_url)
    thread_id = unique()
    # Turn 1 makes three model calls (threat tool, user tool, answer); turn 2 fails on its second.
    model = ExplodingModel(fail_on=5)
    async with open_resources(settings, model=model) as resources:
        runs, threads = resources.runs, resources.threads
        first = await (
            await runs.submit(
                TurnRequest(
                    OWNER, thread_id, [("user", "Who committed the latest malware threat?")], stream=False
                )
            )
        ).result()
        assert model.calls == 3
        # Turn 2: call 4 plans a tool call, the tool runs, call 5 explodes after tool results exist.
        handle = await runs.submit(
            TurnRequest(
                OWNER, thread_id, [("user", "Who committed the latest phishing threat?")], stream=True
            )
        )
        events = [type(e.event).__name__ for e in [e async for e in handle.events()]]
        assert events[-1] == "RunFailed" and "RunDone" not in events
        with pytest.raises(TurnFailed) as failure:
            await handle.result()
        assert "hunter2" not in failure.value.message  # provider text never reaches the client

        thread = await threads.get(OWNER, thread_id)
        assert thread.head_checkpoint_id == first.checkpoint_id
        assert thread.turn_count == 1 and thread.message_count == 6 and not thread.busy_at(thread.updated_at)
        _, checkpoints, _ = await threads.history(OWNER, thread_id, limit=10, before=None)
        assert [c.checkpoint_id for c in checkpoints] == [first.checkpoint_id]  # partial one dropped
        transcript, _ = await threads.messages(OWNER, thread_id, limit=50, before=None)
        assert len(transcript) == 6

        # The next turn starts from the last completed checkpoint, not the failed partial one.
        follow = await (
            await runs.submit(
                TurnRequest(OWNER, thread_id, [("user", "What was their IP address?")], stream=False)
            )
        ).result()
        state = await threads.state(OWNER, thread_id, None)
        assert [m["id"] for m in state.messages] == [m.message_id for m in first.messages + follow.messages]


async def test_failing_tool_becomes_a_readable_tool_result(database_url: str) -> None:
    settings = make_settings(database_url)
    async with open_database(settings.database) as database:
        tools = [broken_threat_tool(), *[t for t in build_local_tools(database.pool) if t.name == USER_TOOL]]
    async with open_resources(settings, tools=tools) as resources:
        result = await (
            await resources.runs.submit(
                TurnRequest(
                    OWNER, unique(), [("user", "Who committed the latest malware threat?")], stream=False
                )
            )
        ).result()
    tool_result = next(m for m in result.messages if m.role == "tool")
    # A stable text naming the tool and the kind of failure; the exception's own text stays in the log.
    assert tool_result.content == "get_cyber_threat_info failed: the tool raised ConnectionError"
    assert result.messages[-1].role == "assistant"
    assert tool_result.content in result.messages[-1].content
    assert "unreachable" not in result.messages[-1].content


async def test_shutdown_cancels_unfinished_turns_without_saving_them(database_url: str) -> None:
    settings = make_settings(database_url, runs={"shutdown_grace_seconds": 0.2})
    thread_id = unique()
    async with open_resources(settings, model=OfflineChatModel(token_delay_seconds=0.2)) as resources:
        handle = await resources.runs.submit(
            TurnRequest(
                OWNER, thread_id, [("user", "Who committed the latest malware threat?")], stream=False
            )
        )
        await asyncio.sleep(0.3)
    with pytest.raises(ServiceUnavailable, match="shutdown"):
        await handle.result()
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT t.turn_count, t.lease_run_id, r.status,"
            " (SELECT count(*) FROM checkpoints c WHERE c.thread_id = t.thread_key::text)"
            " FROM lma_threads t JOIN lma_runs r USING (thread_key) WHERE t.thread_id = %s",
            (thread_id,),
        ).fetchone()
    assert row == (0, None, "error", 0)


async def test_a_late_failure_record_never_undoes_a_completed_turn(database_url: str) -> None:
    """A failure recorded for a run that completed meanwhile (a cancel or a lost lease racing
    its commit) changes nothing: its checkpoint, transcript and idempotency key stay."""
    settings = make_settings(database_url)
    thread_id = unique()
    async with open_resources(settings) as resources:
        result = await (
            await resources.runs.submit(
                TurnRequest(OWNER, thread_id, [("user", "hello")], idempotency_key="k1")
            )
        ).result()
        thread = await resources.threads.get(OWNER, thread_id)
        await ExecutionStore(resources.database.pool).fail(
            thread.thread_key,
            uuid.UUID(result.run_id),
            status="error",
            code="turn_failed",
            message="late",
            events=[StoredEvent(seq=99, kind="error", data={"code": "turn_failed", "message": "late"})],
        )
        _, checkpoints, _ = await resources.threads.history(OWNER, thread_id, limit=10, before=None)
        assert [c.checkpoint_id for c in checkpoints] == [result.checkpoint_id]
        replay = await resources.runs.submit(
            TurnRequest(OWNER, thread_id, [("user", "hello")], idempotency_key="k1")
        )
        assert replay.replayed and replay.run.status == "success"
        events = [e async for e in resources.runs.follow(uuid.UUID(result.run_id), after=0)]
        assert type(events[-1].event).__name__ == "RunDone" and events[-1].seq < 99

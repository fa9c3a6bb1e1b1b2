"""Two services on one database in one event loop (each with its own pool and its own LISTEN
connection): a run executed by one is followed by the other, also when the follower's listening
connection is killed mid-run (it reconnects, and a joiner misses nothing)."""

from __future__ import annotations

import asyncio
import uuid

import psycopg

from app.lifespan import open_resources
from app.memory.run_events import CHANNEL, StoredEvent
from app.services.events import RunDone, RunEvent, TokenDelta
from app.services.run_model import TurnRequest
from tests.conftest import make_settings, unique

QUESTION = "Who committed the latest malware threat?"


def kill_listeners(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN %%'"
        ).fetchall()
    return len(rows)


async def test_a_follower_on_another_service_gets_every_event_across_a_lost_listener(
    database_url: str,
) -> None:
    slow = make_settings(database_url, model={"offline_token_delay_ms": 20})
    async with open_resources(slow) as here, open_resources(slow) as there:
        handle = await here.runs.submit(TurnRequest("o", unique(), [("user", QUESTION)], background=True))
        run_id = uuid.UUID(handle.run.run_id)
        assert run_id not in there.runs._executor.live
        followed: list[RunEvent] = []
        killed = 0
        async for event in there.runs.follow(run_id, after=0):
            followed.append(event)
            if isinstance(event.event, TokenDelta) and not killed:
                killed = kill_listeners(database_url)
        assert killed >= 1
        assert [e.seq for e in followed] == list(range(1, len(followed) + 1))
        assert isinstance(followed[-1].event, RunDone)
        local = [e async for e in here.runs.follow(run_id, after=0)]
        assert followed == local
        # The listeners came back: the next run is followed live again.
        for service in (here, there):
            await asyncio.wait_for(service.runs._queue._notifications.connected.wait(), 30)


async def test_runs_streaming_at_once_are_followed_elsewhere_each_whole_and_in_order(
    database_url: str,
) -> None:
    """One process stores the events of all its running runs in one statement per batch: three
    runs at once, each followed from the other service, each gets every event once, in order."""
    slow = make_settings(database_url, model={"offline_token_delay_ms": 10})
    async with open_resources(slow) as here, open_resources(slow) as there:
        handles = [
            await here.runs.submit(TurnRequest("o", unique(), [("user", QUESTION)], background=True))
            for _ in range(3)
        ]

        async def follow(run_id: uuid.UUID) -> list[RunEvent]:
            return [e async for e in there.runs.follow(run_id, after=0)]

        ids = [uuid.UUID(h.run.run_id) for h in handles]
        followed = await asyncio.gather(*(follow(r) for r in ids))
        for run_id, events in zip(ids, followed, strict=True):
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            assert isinstance(events[-1].event, RunDone)
            assert sum(isinstance(e.event, TokenDelta) for e in events) > 3
            assert events == [e async for e in here.runs.follow(run_id, after=0)]


async def test_a_run_deleted_while_streaming_does_not_stop_the_others_being_stored(
    database_url: str,
) -> None:
    settings = make_settings(database_url)
    async with open_resources(settings) as resources:
        log = resources.runs._executor._log
        kept = await resources.runs.submit(TurnRequest("o", unique(), [("user", QUESTION)]))
        await kept.result()
        kept_id = uuid.UUID(kept.run.run_id)
        before = len(await log.read(kept_id, after=0))
        gone = uuid.uuid4()  # a run whose row is gone (its thread deleted meanwhile)
        await log.append_many([(gone, stored_events(1)), (kept_id, stored_events(before + 1))])
        again = await log.read(kept_id, after=before)
        assert [e.seq for e in again] == [before + 1]
        assert await log.read(gone, after=0) == []


def stored_events(seq: int) -> list[StoredEvent]:
    return [StoredEvent(seq=seq, kind="custom", data={"data": "x"})]


async def test_only_runs_followed_from_their_log_are_announced(database_url: str) -> None:
    """A run nobody follows from its log sends no notification (they serialise commits); one
    followed from another service is announced as its events are stored."""
    slow = make_settings(database_url, model={"offline_token_delay_ms": 20})
    async with (
        open_resources(slow) as here,
        open_resources(slow) as there,
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as listener,
    ):
        await listener.execute(f"LISTEN {CHANNEL}")
        quiet = await here.runs.submit(TurnRequest("o", unique(), [("user", QUESTION)], stream=True))
        await quiet.result()
        followed = await here.runs.submit(TurnRequest("o", unique(), [("user", QUESTION)], background=True))
        events = [e async for e in there.runs.follow(uuid.UUID(followed.run.run_id), after=0)]
        assert isinstance(events[-1].event, RunDone)
        payloads = [n.payload async for n in listener.notifies(timeout=0.5)]
    assert not [p for p in payloads if quiet.run.run_id in p]
    assert [p for p in payloads if p.startswith(f"e {followed.run.run_id} ")]

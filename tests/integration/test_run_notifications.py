"""Two services on one database in one event loop (each with its own pool and its own LISTEN
connection): a run executed by one is followed by the other, also when the follower's listening
connection is killed mid-run (it reconnects, and a joiner misses nothing)."""

from __future__ import annotations

import asyncio
import uuid

import psycopg

from app.lifespan import open_resources
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

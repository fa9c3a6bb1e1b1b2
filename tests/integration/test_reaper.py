"""The reaper finishes a run whose process stopped renewing its lease: `worker_lost`, its key
and lease freed, its log closed, counted; a live run next to it is left alone."""

from __future__ import annotations

import asyncio
import uuid

import psycopg

from app.lifespan import open_resources
from app.observability.metrics import Metrics
from app.services.events import RunFailed
from app.services.run_model import TurnRequest
from tests.conftest import make_settings, unique

QUESTION = "Who committed the latest malware threat?"


def keyed(thread_id: str) -> TurnRequest:
    return TurnRequest("o", thread_id, [("user", QUESTION)], idempotency_key="k")


async def test_a_run_whose_heartbeat_stopped_is_reaped_and_counted(database_url: str) -> None:
    metrics = Metrics()
    settings = make_settings(database_url, runs={"lease_seconds": 2})
    async with open_resources(settings, metrics=metrics) as resources:
        thread_id = unique()
        done = await (
            await resources.runs.submit(
                TurnRequest("o", thread_id, [("user", QUESTION)], idempotency_key="k")
            )
        ).result()
        # Make the finished run look like one whose process died mid-turn, holding the lease.
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE lma_runs SET status = 'running', finished_at = NULL,"
                " heartbeat_at = now() - interval '1 hour' WHERE run_id = %s",
                (done.run_id,),
            )
            conn.execute(
                "UPDATE lma_threads SET lease_run_id = %s, lease_expires_at = now() - interval '1 minute'"
                " WHERE thread_id = %s",
                (done.run_id, thread_id),
            )
            conn.execute("DELETE FROM lma_run_events WHERE run_id = %s", (done.run_id,))
        events = [e async for e in resources.runs.follow(uuid.UUID(done.run_id), after=0)]
        assert isinstance(events[-1].event, RunFailed) and events[-1].event.code == "worker_lost"
        run = await resources.runs.get("o", thread_id, done.run_id)
        assert run.status == "error" and run.error is not None and run.error.code == "worker_lost"
        assert metrics.runs_lost._value.get() == 1
        # The key is free: the same request runs again, on a free thread.
        again = await resources.runs.submit(
            TurnRequest("o", thread_id, [("user", QUESTION)], idempotency_key="k")
        )
        assert not again.replayed
        assert (await asyncio.wait_for(again.result(), 30)).run_id != done.run_id

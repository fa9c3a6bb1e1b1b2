"""Durable runs across real processes on one database: joining a run another process executes,
resuming a dropped stream on another process, a queue fed from both, cancelling across
processes, a process killed mid-turn, and `serve --workers 2`."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import unique
from tests.faults.processes import ServiceProcess, running_service
from tests.sse import Frame, parse_sse

pytestmark = pytest.mark.slow

QUESTION = "Who committed the latest malware threat?"
ENV = {"OFFLINE_TOKEN_DELAY_MS": "25", "RUN_LEASE_SECONDS": "2", "SHUTDOWN_GRACE_SECONDS": "1"}


@pytest.fixture(scope="module")
def two_services(database_url: str) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    with ExitStack() as stack:
        a = stack.enter_context(running_service(database_url, **ENV))
        b = stack.enter_context(running_service(database_url, **ENV))
        yield a, b


async def start_background(
    base: str, thread_id: str, content: str = QUESTION, **extra: Any
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        response = await client.post(
            f"/threads/{thread_id}/messages", json={"content": content, "background": True, **extra}
        )
    assert response.status_code == 202, response.text
    run: dict[str, Any] = response.json()
    return run


async def read_stream(
    base: str, path: str, *, stop_after: int | None = None, headers: dict[str, str] | None = None
) -> list[Frame]:
    """The frames of a run's stream; with `stop_after`, the client drops after that many."""
    text = ""
    async with (
        httpx.AsyncClient(base_url=base, timeout=60) as client,
        client.stream("GET", path, headers=headers) as response,
    ):
        assert response.status_code == 200
        async for chunk in response.aiter_text():
            text += chunk
            if stop_after is not None and len(parse_sse(text.rsplit("\n\n", 1)[0] + "\n\n")) >= stop_after:
                break
    frames = parse_sse(text if stop_after is None else text.rsplit("\n\n", 1)[0] + "\n\n")
    return frames if stop_after is None else frames[:stop_after]


async def test_a_run_is_joined_and_resumed_from_another_process(
    two_services: tuple[ServiceProcess, ServiceProcess],
) -> None:
    a, b = two_services
    thread_id = unique()
    run = await start_background(a.base_url, thread_id)
    path = f"/threads/{thread_id}/runs/{run['run_id']}/stream"
    # B streams the run A executes, live; a second client on B drops after a few events.
    live, dropped = await asyncio.gather(
        read_stream(b.base_url, path), read_stream(b.base_url, path, stop_after=5)
    )
    assert live[-1][0] == "done" and "token" in [f[0] for f in live]
    assert [f[1] for f in live] == [f"{run['run_id']}:{i}" for i in range(1, len(live) + 1)]
    # The dropped client resumes on A with the id it saw last: exactly the rest, once each.
    rest = await read_stream(a.base_url, path, headers={"Last-Event-ID": dropped[-1][1]})
    assert dropped + rest == live
    # Replayed later, from either process: the same stream.
    assert await read_stream(a.base_url, path) == live == await read_stream(b.base_url, path)


async def test_five_clients_enqueue_on_one_thread_and_the_runs_go_one_at_a_time_in_order(
    two_services: tuple[ServiceProcess, ServiceProcess], database_url: str
) -> None:
    a, b = two_services
    thread_id = unique()
    first = await start_background(a.base_url, thread_id)
    contents = [f"hello {i}" for i in range(5)]
    runs = []
    for i, content in enumerate(contents):  # one after another: their creation order is known
        base = (a, b)[i % 2].base_url
        runs.append(await start_background(base, thread_id, content, multitask_strategy="enqueue"))
    async with httpx.AsyncClient(timeout=120) as client:
        for i, run in enumerate([first, *runs]):
            base = (b, a)[i % 2].base_url
            joined = await client.get(f"{base}/threads/{thread_id}/runs/{run['run_id']}/join")
            assert joined.status_code == 200, joined.text
        transcript = (await client.get(f"{a.base_url}/threads/{thread_id}/messages")).json()["messages"]
    assert [m["content"] for m in transcript if m["role"] == "user"] == [QUESTION, *contents]
    with psycopg.connect(database_url) as conn:
        spans = conn.execute(
            "SELECT r.started_at, r.finished_at, r.status"
            " FROM lma_runs r JOIN lma_threads t USING (thread_key)"
            " WHERE t.thread_id = %s ORDER BY r.created_at",
            (thread_id,),
        ).fetchall()
    assert [s[2] for s in spans] == ["success"] * 6
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans))


async def test_cancel_on_one_process_stops_the_run_on_the_other(
    two_services: tuple[ServiceProcess, ServiceProcess], database_url: str
) -> None:
    a, b = two_services
    thread_id = unique()
    run = await start_background(a.base_url, thread_id)
    path = f"/threads/{thread_id}/runs/{run['run_id']}/stream"
    await read_stream(b.base_url, path, stop_after=2)  # it runs
    async with httpx.AsyncClient(base_url=b.base_url, timeout=30) as client:
        cancelled = await client.post(
            f"/threads/{thread_id}/runs/{run['run_id']}/cancel", params={"wait": "1"}
        )
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "interrupted"
        # wait=1 answered once the run had stopped: it is finished already.
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT status, error_code, finished_at IS NOT NULL FROM lma_runs WHERE run_id = %s",
                (run["run_id"],),
            ).fetchone()
        assert row == ("interrupted", "cancelled", True)
        frames = await read_stream(a.base_url, path)
        assert frames[-1][0] == "error" and frames[-1][2]["code"] == "cancelled"
        assert (await client.get(f"/threads/{thread_id}")).json()["turn_count"] == 0
        nxt = await client.post(f"/threads/{thread_id}/messages", json={"content": "hello"})
        assert nxt.status_code == 200


async def test_a_killed_process_loses_its_run_and_a_retry_with_the_same_key_runs(database_url: str) -> None:
    thread_id = unique()
    headers = {"Idempotency-Key": f"kill-{unique()}"}
    with running_service(database_url, **ENV) as survivor:
        victim = ServiceProcess(database_url, **ENV)
        try:
            victim.start()
            victim.wait_ready()
            run = await start_background(victim.base_url, thread_id)
            async with httpx.AsyncClient(timeout=60) as client:
                # A keyed turn on another thread of the victim, killed mid-turn.
                keyed_thread = unique()
                keyed = asyncio.create_task(
                    client.post(
                        f"{victim.base_url}/threads/{keyed_thread}/messages",
                        json={"content": QUESTION},
                        headers=headers,
                    )
                )
                await read_stream(
                    survivor.base_url, f"/threads/{thread_id}/runs/{run['run_id']}/stream", stop_after=3
                )
                os.kill(victim.pid, signal.SIGKILL)
                with pytest.raises(httpx.TransportError):
                    await keyed
                killed_at = time.monotonic()
                # The survivor's reaper ends the run as worker_lost once its lease has expired.
                status = "running"
                while status == "running" and time.monotonic() - killed_at < 60:
                    got = await client.get(f"{survivor.base_url}/threads/{thread_id}/runs/{run['run_id']}")
                    status = got.json()["status"]
                    await asyncio.sleep(0.1)
                assert got.json()["status"] == "error" and got.json()["error"]["code"] == "worker_lost"
                frames = await read_stream(
                    survivor.base_url, f"/threads/{thread_id}/runs/{run['run_id']}/stream"
                )
                assert frames[-1][0] == "error" and frames[-1][2]["code"] == "worker_lost"
                # The retry with the same key runs (it is not a 409 and not a replay).
                retry = await client.post(
                    f"{survivor.base_url}/threads/{keyed_thread}/messages",
                    json={"content": QUESTION},
                    headers=headers,
                )
                assert retry.status_code == 200 and "idempotent-replayed" not in retry.headers
                assert (await client.get(f"{survivor.base_url}/threads/{keyed_thread}")).json()[
                    "turn_count"
                ] == 1
        finally:
            victim.stop()


async def test_workers_share_runs(database_url: str) -> None:
    """`serve --workers 2`: streams of one run joined over many connections (spread across the
    workers) are all the same whole stream."""
    with running_service(database_url, "--workers", "2", **ENV) as service:
        thread_id = unique()
        run = await start_background(service.base_url, thread_id)
        path = f"/threads/{thread_id}/runs/{run['run_id']}/stream"
        streams = await asyncio.gather(*(read_stream(service.base_url, path) for _ in range(8)))
        assert all(s == streams[0] for s in streams) and streams[0][-1][0] == "done"
        assert [f[1] for f in streams[0]] == [f"{run['run_id']}:{i}" for i in range(1, len(streams[0]) + 1)]

"""Cancel, and the multitask strategies (reject, enqueue, interrupt, rollback), in one process."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.api.test_runs import QUESTION, background, stream
from tests.conftest import make_settings, real_server, unique

SLOW = {"offline_token_delay_ms": 60}  # a demo turn then takes a few seconds


@pytest.fixture
async def slow_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A real server: the ASGI transport of httpx would hold a stream back until it ends."""
    async with (
        real_server(make_settings(database_url, model=SLOW)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield client


async def run_of(client: httpx.AsyncClient, thread_id: str, run_id: str) -> dict[str, Any]:
    response = await client.get(f"/threads/{thread_id}/runs/{run_id}")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def until_streaming(client: httpx.AsyncClient, thread_id: str, run_id: str) -> None:
    """Return once the run has produced its first token (it is well inside the graph)."""
    async with client.stream("GET", f"/threads/{thread_id}/runs/{run_id}/stream") as response:
        async for line in response.aiter_lines():
            if line == "event: token":
                return
    raise AssertionError("the run ended without a token")


def thread_row(database_url: str, thread_id: str) -> tuple[Any, ...]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT t.turn_count, t.message_count, t.lease_run_id,"
            " (SELECT count(*) FROM checkpoints c WHERE c.thread_id = t.thread_key::text)"
            " FROM lma_threads t WHERE t.thread_id = %s",
            (thread_id,),
        ).fetchone()
    assert row is not None
    return tuple(row)


async def test_cancel_stops_the_run_saves_nothing_and_frees_the_thread(
    slow_client: httpx.AsyncClient, database_url: str
) -> None:
    client, thread_id = slow_client, unique()
    run = await background(client, thread_id)
    await until_streaming(client, thread_id, run["run_id"])
    cancelled = await client.post(
        f"/threads/{thread_id}/runs/{run['run_id']}/cancel", params={"wait": "true"}
    )
    assert cancelled.status_code == 200
    body = cancelled.json()
    assert body["status"] == "interrupted" and body["error"]["code"] == "cancelled"
    assert thread_row(database_url, thread_id) == (0, 0, None, 0)  # nothing saved, lease free
    frames = await stream(client, thread_id, run["run_id"])
    assert frames[-1][0] == "error" and frames[-1][2]["code"] == "cancelled"
    assert [f[0] for f in frames].count("error") == 1 and "done" not in [f[0] for f in frames]
    joined = await client.get(f"/threads/{thread_id}/runs/{run['run_id']}/join")
    assert joined.status_code == 409 and joined.json()["error"]["code"] == "cancelled"
    again = await client.post(f"/threads/{thread_id}/runs/{run['run_id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "run_not_active"
    # The thread is free at once: the next message runs (its question starts the transcript).
    nxt = await client.post(f"/threads/{thread_id}/messages", json={"content": "hello"})
    assert nxt.status_code == 200
    transcript = (await client.get(f"/threads/{thread_id}/messages")).json()["messages"]
    assert transcript[0]["content"] == "hello"


async def test_a_streaming_client_sees_its_cancelled_run_end_with_an_error_event(
    slow_client: httpx.AsyncClient,
) -> None:
    client, thread_id = slow_client, unique()
    frames: list[str] = []
    async with client.stream(
        "POST",
        f"/threads/{thread_id}/messages",
        json={"content": QUESTION},
        headers={"Accept": "text/event-stream"},
    ) as response:
        run_id = response.headers["x-run-id"]
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                frames.append(line.removeprefix("event: "))
                if frames[-1] == "token" and frames.count("token") == 1:
                    await client.post(f"/threads/{thread_id}/runs/{run_id}/cancel")
    assert frames[-1] == "error" and "done" not in frames


async def test_enqueued_runs_run_one_at_a_time_in_creation_order(
    slow_client: httpx.AsyncClient, database_url: str
) -> None:
    client, thread_id = slow_client, unique()
    first = await background(client, thread_id)
    questions = ["What was their IP address?", "Who committed the latest phishing threat?", "thanks"]
    queued = [await background(client, thread_id, q, multitask_strategy="enqueue") for q in questions]
    assert [r["status"] for r in queued] == ["pending"] * 3
    assert [r["multitask_strategy"] for r in queued] == ["enqueue"] * 3
    pending = await client.get(f"/threads/{thread_id}/runs", params={"status": "pending"})
    assert [r["run_id"] for r in pending.json()] == [r["run_id"] for r in reversed(queued)]
    for run in [first, *queued]:
        joined = await client.get(f"/threads/{thread_id}/runs/{run['run_id']}/join")
        assert joined.status_code == 200
    transcript = (await client.get(f"/threads/{thread_id}/messages", params={"limit": 100})).json()[
        "messages"
    ]
    assert [m["content"] for m in transcript if m["role"] == "user"] == [QUESTION, *questions]
    # The follow-up saw the first turn: the queued run started from the thread's new head.
    ip = next(m for m in transcript if m.get("name") == "get_user_info")["content"]
    answer = next(m for m in transcript if m["role"] == "assistant" and "IP" in m["content"])
    assert ip.split("ip_address: ")[1].split(";")[0] in answer["content"]
    with psycopg.connect(database_url) as conn:
        spans = conn.execute(
            "SELECT r.started_at, r.finished_at FROM lma_runs r JOIN lma_threads t USING (thread_key)"
            " WHERE t.thread_id = %s ORDER BY r.created_at",
            (thread_id,),
        ).fetchall()
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans))
    assert "lma_runs_enqueued_total 3.0" in (await client.get("/metrics")).text


async def test_cancelling_a_queued_run_ends_it_at_once_and_the_queue_goes_on(
    slow_client: httpx.AsyncClient,
) -> None:
    client, thread_id = slow_client, unique()
    first = await background(client, thread_id)
    second = await background(client, thread_id, "hello", multitask_strategy="enqueue")
    third = await background(client, thread_id, "thanks", multitask_strategy="enqueue")
    cancelled = await client.post(f"/threads/{thread_id}/runs/{second['run_id']}/cancel")
    assert cancelled.json()["status"] == "interrupted"
    assert [f[0] for f in await stream(client, thread_id, second["run_id"])] == ["error"]
    for run in (first, third):
        assert (await client.get(f"/threads/{thread_id}/runs/{run['run_id']}/join")).status_code == 200
    transcript = (await client.get(f"/threads/{thread_id}/messages")).json()["messages"]
    assert [m["content"] for m in transcript if m["role"] == "user"] == [QUESTION, "thanks"]


async def test_interrupt_cancels_the_running_run_and_starts_the_new_one(
    slow_client: httpx.AsyncClient,
) -> None:
    client, thread_id = slow_client, unique()
    first = await background(client, thread_id)
    await until_streaming(client, thread_id, first["run_id"])
    second = await client.post(
        f"/threads/{thread_id}/messages", json={"content": "hello", "multitask_strategy": "interrupt"}
    )
    assert second.status_code == 200
    old = await run_of(client, thread_id, first["run_id"])
    assert old["status"] == "interrupted"
    transcript = (await client.get(f"/threads/{thread_id}/messages")).json()["messages"]
    assert [m["content"] for m in transcript if m["role"] == "user"] == ["hello"]


async def test_rollback_deletes_the_running_run(slow_client: httpx.AsyncClient) -> None:
    client, thread_id = slow_client, unique()
    first = await background(client, thread_id)
    await until_streaming(client, thread_id, first["run_id"])
    second = await client.post(
        f"/threads/{thread_id}/messages", json={"content": "hello", "multitask_strategy": "rollback"}
    )
    assert second.status_code == 200
    assert (await client.get(f"/threads/{thread_id}/runs/{first['run_id']}")).status_code == 404
    assert [r["run_id"] for r in (await client.get(f"/threads/{thread_id}/runs")).json()] == [
        second.json()["run_id"]
    ]


async def test_reject_is_the_default_and_says_when_to_retry(slow_client: httpx.AsyncClient) -> None:
    client, thread_id = slow_client, unique()
    first = await background(client, thread_id)
    busy = await client.post(f"/threads/{thread_id}/messages", json={"content": "hello"})
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "thread_busy"
    assert 1 <= int(busy.headers["retry-after"]) <= 30
    await client.get(f"/threads/{thread_id}/runs/{first['run_id']}/join")


async def test_cancel_many_by_thread_stops_its_running_and_queued_runs(
    slow_client: httpx.AsyncClient,
) -> None:
    client, thread_id = slow_client, unique()
    running = await background(client, thread_id)
    queued = await background(client, thread_id, "hello", multitask_strategy="enqueue")
    other = await background(client, unique())
    response = await client.post("/runs/cancel", params={"wait": "true"}, json={"thread_id": thread_id})
    assert response.status_code == 200
    assert sorted(response.json()["cancelled"]) == sorted([running["run_id"], queued["run_id"]])
    for run in (running, queued):
        assert (await run_of(client, thread_id, run["run_id"]))["status"] == "interrupted"
    assert (await client.get(f"/threads/{other['thread_id']}/runs/{other['run_id']}/join")).status_code == 200


async def test_a_retried_key_of_a_running_run_joins_it(slow_client: httpx.AsyncClient) -> None:
    client, thread_id = slow_client, unique()
    headers = {"Idempotency-Key": "once"}
    first = asyncio.create_task(
        client.post(f"/threads/{thread_id}/messages", json={"content": QUESTION}, headers=headers)
    )
    for _ in range(500):
        if (await client.get(f"/threads/{thread_id}/runs")).status_code == 200:
            break
        await asyncio.sleep(0.01)
    retried = await client.post(f"/threads/{thread_id}/messages", json={"content": QUESTION}, headers=headers)
    assert retried.status_code == 200 and retried.headers["idempotent-replayed"] == "true"
    assert retried.json() == (await first).json()

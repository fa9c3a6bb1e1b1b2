"""The run resource: background runs, reading and listing runs, joining a run's stream and
resuming it with Last-Event-ID, and the errors a client can cause."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import psycopg

from app.api.schemas import TurnOut
from app.lifespan import open_resources
from app.services.events import RunDone, RunEvent
from app.services.run_model import TurnRequest
from tests.conftest import make_settings, real_server, running_app, unique
from tests.sse import Frame, parse_sse

QUESTION = "Who committed the latest malware threat?"
RUN_KEYS = {
    "run_id",
    "thread_id",
    "assistant_id",
    "status",
    "created_at",
    "updated_at",
    "metadata",
    "multitask_strategy",
    "error",
    "checkpoint_id",
}


async def background(
    client: httpx.AsyncClient, thread_id: str, content: str = QUESTION, **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/threads/{thread_id}/messages", json={"content": content, "background": True, **extra}
    )
    assert response.status_code == 202, response.text
    run: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/threads/{thread_id}/runs/{run['run_id']}"
    assert response.headers["content-location"] == f"/threads/{thread_id}/runs/{run['run_id']}/stream"
    return run


async def stream(client: httpx.AsyncClient, thread_id: str, run_id: str, **headers: str) -> list[Frame]:
    async with client.stream(
        "GET", f"/threads/{thread_id}/runs/{run_id}/stream", headers=headers
    ) as response:
        assert response.status_code == 200, await response.aread()
        return parse_sse("".join([chunk async for chunk in response.aiter_text()]))


async def test_a_background_run_answers_202_at_once_and_can_be_joined(client: httpx.AsyncClient) -> None:
    thread_id = unique()
    run = await background(client, thread_id, metadata={"source": "test"})
    assert set(run) == RUN_KEYS
    assert run["status"] in ("pending", "running") and run["metadata"] == {"source": "test"}
    assert run["multitask_strategy"] == "reject" and run["thread_id"] == thread_id

    joined = await client.get(f"/threads/{thread_id}/runs/{run['run_id']}/join")
    assert joined.status_code == 200
    body = joined.json()
    assert body["run_id"] == run["run_id"] and "Malware" in body["messages"][-1]["content"]

    finished = (await client.get(f"/threads/{thread_id}/runs/{run['run_id']}")).json()
    assert finished["status"] == "success" and finished["error"] is None
    assert finished["checkpoint_id"] == body["checkpoint_id"]
    assert finished["created_at"] <= finished["updated_at"]
    transcript = (await client.get(f"/threads/{thread_id}/messages")).json()["messages"]
    assert [m["id"] for m in transcript] == [m["id"] for m in body["messages"]]


async def test_a_finished_run_replays_its_whole_stream_and_resumes_after_any_event(
    client: httpx.AsyncClient,
) -> None:
    thread_id = unique()
    run = await background(client, thread_id)
    await client.get(f"/threads/{thread_id}/runs/{run['run_id']}/join")
    frames = await stream(client, thread_id, run["run_id"])
    names = [f[0] for f in frames]
    assert names[0] == "run_start" and names[-1] == "done"
    assert "token" in names and names.count("tool_call") == 2  # a background run logs its tokens
    assert [f[1] for f in frames] == [f"{run['run_id']}:{i}" for i in range(1, len(frames) + 1)]
    for cut in (1, len(frames) // 2, len(frames) - 1):
        resumed = await stream(client, thread_id, run["run_id"], **{"Last-Event-ID": frames[cut - 1][1]})
        assert resumed == frames[cut:]
    bare = await stream(client, thread_id, run["run_id"], **{"Last-Event-ID": "3"})
    assert bare == frames[3:]
    assert await stream(client, thread_id, run["run_id"], **{"Last-Event-ID": frames[-1][1]}) == []


async def test_the_stream_of_a_json_turn_is_its_steps_and_done(client: httpx.AsyncClient) -> None:
    thread_id = unique()
    turn = (await client.post(f"/threads/{thread_id}/messages", json={"content": QUESTION})).json()
    frames = await stream(client, thread_id, turn["run_id"])
    assert [f[0] for f in frames] == [
        "run_start",
        "tool_call",
        "message",
        "tool_result",
        "tool_call",
        "message",
        "tool_result",
        "message",
        "done",
    ]
    assert frames[-2][2]["content"] == turn["messages"][-1]["content"]
    assert frames[-1][2]["checkpoint_id"] == turn["checkpoint_id"]


async def test_a_stream_joined_while_the_run_runs_gets_every_event_once(database_url: str) -> None:
    slow = make_settings(database_url, model={"offline_token_delay_ms": 15})
    # A real server: the ASGI transport of httpx would hold each stream back until it ends.
    async with real_server(slow) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        thread_id = unique()
        run = await background(client, thread_id)
        first, second = await asyncio.gather(
            stream(client, thread_id, run["run_id"]), stream(client, thread_id, run["run_id"])
        )
        assert first == second and first[-1][0] == "done"
        assert first == await stream(client, thread_id, run["run_id"])


async def test_runs_are_listed_newest_first_with_a_cursor_and_a_status_filter(
    client: httpx.AsyncClient,
) -> None:
    thread_id = unique()
    ids = []
    for content in ("hello", "Who committed the latest phishing threat?", "thanks"):
        ids.append(
            (await client.post(f"/threads/{thread_id}/messages", json={"content": content})).json()["run_id"]
        )
    listed = await client.get(f"/threads/{thread_id}/runs", params={"limit": 2})
    assert listed.status_code == 200
    assert [r["run_id"] for r in listed.json()] == [ids[2], ids[1]]
    rest = await client.get(
        f"/threads/{thread_id}/runs", params={"limit": 2, "before": listed.headers["x-next-cursor"]}
    )
    assert [r["run_id"] for r in rest.json()] == [ids[0]] and "x-next-cursor" not in rest.headers
    by_offset = await client.get(f"/threads/{thread_id}/runs", params={"offset": 1})
    assert [r["run_id"] for r in by_offset.json()] == [ids[1], ids[0]]
    assert len((await client.get(f"/threads/{thread_id}/runs", params={"status": "success"})).json()) == 3
    assert (await client.get(f"/threads/{thread_id}/runs", params={"status": "pending"})).json() == []


async def test_bad_run_requests_get_clear_4xx(client: httpx.AsyncClient) -> None:
    thread_id = unique()
    run_id = (await client.post(f"/threads/{thread_id}/messages", json={"content": "hi"})).json()["run_id"]
    for path in (
        f"/threads/{thread_id}/runs/not-a-uuid",
        f"/threads/{thread_id}/runs/00000000-0000-4000-8000-000000000000",
        f"/threads/{unique()}/runs/{run_id}",  # the run exists, but not on that thread
        f"/threads/{thread_id}/runs/00000000-0000-4000-8000-000000000000/stream",
        f"/threads/{thread_id}/runs/00000000-0000-4000-8000-000000000000/join",
    ):
        response = await client.get(path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "run_not_found", path
    listed = await client.get(f"/threads/{unique()}/runs")
    assert listed.status_code == 404 and listed.json()["error"]["code"] == "thread_not_found"
    for bad in ("x", f"{unique()}:3", "00000000-0000-4000-8000-000000000000:1", "-1", "1" * 12):
        response = await client.get(
            f"/threads/{thread_id}/runs/{run_id}/stream", headers={"Last-Event-ID": bad}
        )
        assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_input", bad
    strategy = await client.post(
        f"/threads/{thread_id}/messages", json={"content": "hi", "multitask_strategy": "later"}
    )
    assert strategy.status_code == 422 and "multitask_strategy" in strategy.json()["error"]["message"]
    cancel = await client.post(f"/threads/{thread_id}/runs/{run_id}/cancel")
    assert cancel.status_code == 409 and cancel.json()["error"]["code"] == "run_not_active"
    assert (await client.get(f"/threads/{thread_id}/runs", params={"before": "bm9wZQ"})).status_code == 422
    assert (await client.get(f"/threads/{thread_id}/runs", params={"status": "done"})).status_code == 422
    assert (await client.post("/runs/cancel", json={})).status_code == 422


async def test_another_owners_run_is_not_found(database_url: str) -> None:
    settings = make_settings(database_url, auth={"mode": "api_key", "api_keys": "ka:alice,kb:bob"})
    async with running_app(settings) as (_, client):
        thread_id = unique()
        alice, bob = {"X-API-Key": "ka"}, {"X-API-Key": "kb"}
        run = (
            await client.post(f"/threads/{thread_id}/messages", json={"content": "hi"}, headers=alice)
        ).json()
        # Bob has a thread with the same id: still not his run.
        await client.post(f"/threads/{thread_id}/messages", json={"content": "hi"}, headers=bob)
        for method, path in (
            ("GET", f"/threads/{thread_id}/runs/{run['run_id']}"),
            ("GET", f"/threads/{thread_id}/runs/{run['run_id']}/stream"),
            ("GET", f"/threads/{thread_id}/runs/{run['run_id']}/join"),
            ("POST", f"/threads/{thread_id}/runs/{run['run_id']}/cancel"),
        ):
            response = await client.request(method, path, headers=bob)
            assert response.status_code == 404 and response.json()["error"]["code"] == "run_not_found"
        bobs = (await client.get(f"/threads/{thread_id}/runs", headers=bob)).json()
        assert run["run_id"] not in {r["run_id"] for r in bobs}
        cancelled = await client.post("/runs/cancel", json={"run_ids": [run["run_id"]]}, headers=bob)
        assert cancelled.json() == {"cancelled": []}


async def test_expired_events_are_swept_and_the_run_still_replays_its_end(database_url: str) -> None:
    async with open_resources(make_settings(database_url)) as resources:
        result = await (
            await resources.runs.submit(TurnRequest("o", unique(), [("user", QUESTION)]))
        ).result()
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "UPDATE lma_runs SET finished_at = now() - interval '2 days' WHERE run_id = %s",
                (result.run_id,),
            )
        swept = await resources.retention.sweep()
        assert swept.events_pruned >= 1  # rows: a JSON turn logs its events as one batch
        with psycopg.connect(database_url) as conn:
            left = conn.execute(
                "SELECT count(*) FROM lma_run_events WHERE run_id = %s", (result.run_id,)
            ).fetchone()
        assert left == (0,)
        replayed = [e async for e in resources.runs.follow(uuid.UUID(result.run_id), after=0)]
    assert replayed == [
        RunEvent(
            seq=1,
            event=RunDone(
                run_id=result.run_id,
                thread_id=result.thread_id,
                checkpoint_id=result.checkpoint_id,
                new_messages=6,
            ),
        )
    ]


async def test_a_turns_body_is_the_documented_turn_out(client: httpx.AsyncClient) -> None:
    thread_id = unique()
    turn = await client.post(f"/threads/{thread_id}/messages", json={"content": QUESTION})
    joined = await client.get(f"/threads/{thread_id}/runs/{turn.json()['run_id']}/join")
    for body in (turn.json(), joined.json()):
        assert TurnOut.model_validate(body).model_dump(mode="json", exclude_none=True) == body
    assert joined.json() == turn.json()


async def test_cors_exposes_where_the_run_and_its_stream_are(database_url: str) -> None:
    settings = make_settings(database_url, server={"cors_origins": ["http://ui.example"]})
    async with running_app(settings) as (_, client):
        response = await client.post(
            f"/threads/{unique()}/messages",
            json={"content": "hi", "background": True},
            headers={"Origin": "http://ui.example"},
        )
    exposed = {h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")}
    assert {"location", "content-location", "x-run-id", "x-next-cursor"} <= exposed

"""One turn at a time per thread (409 thread_busy or a bounded wait), leases that expire after a
crash, and idempotency keys that never run a turn twice."""

from __future__ import annotations

import asyncio

import httpx
import psycopg

from tests.conftest import make_settings, running_app, unique

QUESTION = "Who committed the latest malware threat?"
SLOW = {"offline_token_delay_ms": 40}  # a turn then takes about a second


async def _start_slow_turn(client: httpx.AsyncClient, thread_id: str) -> asyncio.Task[httpx.Response]:
    """Send the demo question and return once its turn holds the thread."""
    first = asyncio.create_task(
        client.post(
            f"/threads/{thread_id}/messages", json={"content": "Who committed the latest malware threat?"}
        )
    )
    await _wait_busy(client, thread_id)
    return first


async def _wait_busy(client: httpx.AsyncClient, thread_id: str) -> None:
    for _ in range(200):
        response = await client.get(f"/threads/{thread_id}")
        if response.status_code == 200 and response.json()["status"] == "busy":
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the thread never became busy")


async def test_second_message_while_a_turn_runs_gets_409(database_url: str) -> None:
    async with running_app(make_settings(database_url, model=SLOW)) as (_, client):
        thread_id = unique()
        first = await _start_slow_turn(client, thread_id)
        second = await client.post(
            f"/threads/{thread_id}/messages", json={"content": "What was their IP address?"}
        )
        assert second.status_code == 409
        assert second.json()["error"]["code"] == "thread_busy"
        # Derived from a typical turn's length (2 s before any has completed) less the running
        # turn's age, not the lease's 30 s and not a fixed 5.
        assert 1 <= int(second.headers["retry-after"]) <= 2
        # Another thread is not blocked meanwhile.
        other = await client.post(f"/threads/{unique()}/messages", json={"content": "hello"})
        assert other.status_code == 200
        assert (await first).status_code == 200
        transcript = (await client.get(f"/threads/{thread_id}/messages")).json()["messages"]
        assert [m["content"] for m in transcript if m["role"] == "user"] == [
            "Who committed the latest malware threat?"
        ]
        assert (await client.get(f"/threads/{thread_id}")).json()["status"] == "idle"


async def test_wait_mode_queues_the_second_message(database_url: str) -> None:
    settings = make_settings(database_url, model=SLOW, runs={"busy_mode": "wait", "busy_wait_seconds": 20})
    async with running_app(settings) as (_, client):
        thread_id = unique()
        first = await _start_slow_turn(client, thread_id)
        second = await client.post(
            f"/threads/{thread_id}/messages", json={"content": "What was their IP address?"}
        )
        assert (await first).status_code == 200
        assert second.status_code == 200
        # The queued turn ran after the first and saw its result.
        ip = next(m for m in (await first).json()["messages"] if m.get("name") == "get_user_info")
        assert (
            ip["content"].split("ip_address: ")[1].split(";")[0] in second.json()["messages"][-1]["content"]
        )


async def test_wait_mode_gives_up_after_the_configured_time(database_url: str) -> None:
    settings = make_settings(database_url, model=SLOW, runs={"busy_mode": "wait", "busy_wait_seconds": 0.2})
    async with running_app(settings) as (_, client):
        thread_id = unique()
        first = await _start_slow_turn(client, thread_id)
        second = await client.post(f"/threads/{thread_id}/messages", json={"content": "hi"})
        assert second.status_code == 409
        assert (await first).status_code == 200


async def test_lease_of_a_crashed_process_expires(client: httpx.AsyncClient, database_url: str) -> None:
    thread_id = unique()
    assert (await client.post("/threads", json={"thread_id": thread_id})).status_code == 201
    with psycopg.connect(database_url, autocommit=True) as conn:
        # A live lease held by some other process: the thread is busy.
        conn.execute(
            "UPDATE lma_threads SET lease_run_id = gen_random_uuid(),"
            " lease_expires_at = now() + interval '1 hour'"
            " WHERE thread_id = %s",
            (thread_id,),
        )
        busy = await client.post(f"/threads/{thread_id}/messages", json={"content": "hi"})
        assert busy.status_code == 409
        # That process died: it stopped renewing and the lease ran out.
        conn.execute(
            "UPDATE lma_threads SET lease_expires_at = now() - interval '1 second' WHERE thread_id = %s",
            (thread_id,),
        )
    recovered = await client.post(f"/threads/{thread_id}/messages", json={"content": "hi"})
    assert recovered.status_code == 200


async def test_lease_is_renewed_during_a_long_turn(database_url: str) -> None:
    """With a 2 s lease and a ~3 s turn the heartbeat must keep the thread claimed."""
    settings = make_settings(database_url, model={"offline_token_delay_ms": 100}, runs={"lease_seconds": 2})
    async with running_app(settings) as (_, client):
        thread_id = unique()
        first = await _start_slow_turn(client, thread_id)
        await asyncio.sleep(2.5)  # past the first lease's expiry
        assert not first.done()
        second = await client.post(f"/threads/{thread_id}/messages", json={"content": "hi"})
        assert second.status_code == 409
        assert (await first).status_code == 200


async def test_idempotency_key_replays_the_first_result(client: httpx.AsyncClient, database_url: str) -> None:
    thread_id = unique()
    headers = {"Idempotency-Key": "req-1"}
    body = {"content": "Who committed the latest malware threat?"}
    first = await client.post(f"/threads/{thread_id}/messages", json=body, headers=headers)
    again = await client.post(f"/threads/{thread_id}/messages", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    thread = (await client.get(f"/threads/{thread_id}")).json()
    assert thread["turn_count"] == 1 and thread["message_count"] == 6

    # The same key with a different request is refused, not replayed.
    other = await client.post(f"/threads/{thread_id}/messages", json={"content": "other"}, headers=headers)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"

    # Keys are per thread: the same key on another thread runs a new turn.
    elsewhere = await client.post(f"/threads/{unique()}/messages", json=body, headers=headers)
    assert elsewhere.status_code == 200 and elsewhere.json()["run_id"] != first.json()["run_id"]

    # A streamed retry replays the stored turn as events.
    async with client.stream(
        "POST", f"/threads/{thread_id}/messages?stream=true", json=body, headers=headers
    ) as stream:
        text = "".join([chunk async for chunk in stream.aiter_text()])
    assert "event: done" in text and first.json()["checkpoint_id"] in text


async def test_concurrent_retries_with_one_key_run_one_turn(database_url: str) -> None:
    settings = make_settings(database_url, model=SLOW, runs={"busy_mode": "wait", "busy_wait_seconds": 20})
    async with running_app(settings) as (_, client):
        thread_id = unique()
        body = {"content": "Who committed the latest malware threat?"}
        responses = await asyncio.gather(
            *[
                client.post(f"/threads/{thread_id}/messages", json=body, headers={"Idempotency-Key": "k"})
                for _ in range(4)
            ]
        )
        assert [r.status_code for r in responses] == [200] * 4
        assert len({r.json()["run_id"] for r in responses}) == 1
        assert (await client.get(f"/threads/{thread_id}")).json()["turn_count"] == 1


async def test_a_replay_is_read_from_the_transcript_not_from_a_stored_copy(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """Runs keep no copy of their answer (no bytes spent on it): a retried key's answer is the
    run's rows of the transcript, equal to the first answer."""
    thread_id = unique()
    body = {"content": "Who committed the latest malware threat?"}
    first = await client.post(f"/threads/{thread_id}/messages", json=body, headers={"Idempotency-Key": "k"})
    with psycopg.connect(database_url) as conn:
        columns = {
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'lma_runs'"
            ).fetchall()
        }
        # The transcript row of the answer, changed behind the service's back, is what replays.
        conn.execute(
            "UPDATE lma_messages SET content = 'edited' WHERE message_id = %s",
            (first.json()["messages"][-1]["id"],),
        )
    assert "response" not in columns
    again = await client.post(f"/threads/{thread_id}/messages", json=body, headers={"Idempotency-Key": "k"})
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["messages"][-1]["content"] == "edited"
    assert again.json()["messages"][:-1] == first.json()["messages"][:-1]

"""SSE: the typed event sequence of a turn, and a client that disconnects mid-stream."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import make_settings, real_server, running_app, unique
from tests.sse import parse_sse


async def test_stream_emits_typed_events_in_order(client: httpx.AsyncClient) -> None:
    thread_id = unique()
    async with client.stream(
        "POST",
        f"/threads/{thread_id}/messages",
        json={"content": "Who committed the latest malware threat?"},
        headers={"Accept": "text/event-stream"},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join([chunk async for chunk in response.aiter_text()])
    events = parse_sse(text)
    names = [e[0] for e in events]
    assert names[0] == "run_start" and names[-1] == "done"
    assert names.count("tool_call") == 2 and names.count("tool_result") == 2
    assert names.index("tool_call") < names.index("tool_result") < names.index("token")
    assert "error" not in names
    run_id = events[0][2]["run_id"]
    assert [e[1] for e in events] == [f"{run_id}:{i}" for i in range(1, len(events) + 1)]

    answer = "".join(e[2]["delta"] for e in events if e[0] == "token")
    final = [e[2] for e in events if e[0] == "message"][-1]
    assert answer == final["content"] and "Malware" in answer
    done = events[-1][2]
    assert done["run_id"] == run_id and done["new_messages"] == 6

    thread = (await client.get(f"/threads/{thread_id}")).json()
    assert thread["head_checkpoint_id"] == done["checkpoint_id"]
    transcript = (await client.get(f"/threads/{thread_id}/messages")).json()["messages"]
    assert transcript[-1]["content"] == answer


async def test_query_parameter_also_streams(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/threads/{unique()}/messages?stream=true", json={"content": "hi"})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert parse_sse(response.text)[-1][0] == "done"


async def test_busy_thread_streams_nothing_and_answers_409(database_url: str) -> None:
    async with running_app(make_settings(database_url, model={"offline_token_delay_ms": 40})) as (_, client):
        thread_id = unique()
        first = asyncio.create_task(
            client.post(
                f"/threads/{thread_id}/messages", json={"content": "Who committed the latest malware threat?"}
            )
        )
        for _ in range(200):
            if (await client.get(f"/threads/{thread_id}")).json().get("status") == "busy":
                break
            await asyncio.sleep(0.01)
        second = await client.post(f"/threads/{thread_id}/messages?stream=true", json={"content": "hi"})
        assert second.status_code == 409 and second.json()["error"]["code"] == "thread_busy"
        await first


async def test_client_disconnect_mid_stream_leaves_a_complete_turn(database_url: str) -> None:
    """The turn runs on after the client leaves; it is saved whole, and the thread is free."""
    settings = make_settings(database_url, model={"offline_token_delay_ms": 30})
    async with real_server(settings) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        thread_id = unique()
        seen: list[str] = []
        async with http.stream(
            "POST",
            f"/threads/{thread_id}/messages?stream=true",
            json={"content": "Who committed the latest malware threat?"},
        ) as response:
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    seen.append(line.split(":", 1)[1].strip())
                if seen.count("token") >= 3:
                    break  # leave mid-answer: the connection closes here
        assert "done" not in seen

        for _ in range(300):
            thread = (await http.get(f"/threads/{thread_id}")).json()
            if thread["status"] == "idle" and thread["turn_count"] == 1:
                break
            await asyncio.sleep(0.05)
        assert thread["turn_count"] == 1 and thread["message_count"] == 6
        transcript = (await http.get(f"/threads/{thread_id}/messages")).json()["messages"]
        assert transcript[-1]["role"] == "assistant" and "Malware" in transcript[-1]["content"]
        # The thread is consistent and usable: the follow-up works from memory.
        follow = await http.post(
            f"/threads/{thread_id}/messages", json={"content": "What was their IP address?"}
        )
        assert follow.status_code == 200
        assert follow.json()["messages"][-1]["content"].startswith("Their IP address is")

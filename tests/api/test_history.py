"""Checkpoints: history pages, full state at any checkpoint, and forking from one."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import unique


async def _send(client: httpx.AsyncClient, thread_id: str, content: str, **extra: str) -> dict[str, Any]:
    response = await client.post(f"/threads/{thread_id}/messages", json={"content": content, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_history_lists_one_checkpoint_per_turn_newest_first(client: httpx.AsyncClient) -> None:
    thread_id = unique()
    turns = [await _send(client, thread_id, f"hello number {i}") for i in range(5)]
    page = (await client.get(f"/threads/{thread_id}/history", params={"limit": 2})).json()
    assert [c["checkpoint_id"] for c in page["checkpoints"]] == [
        turns[4]["checkpoint_id"],
        turns[3]["checkpoint_id"],
    ]
    head = page["checkpoints"][0]
    assert head["is_head"] is True and page["checkpoints"][1]["is_head"] is False
    assert head["parent_checkpoint_id"] == turns[3]["checkpoint_id"]
    assert head["run_id"] == turns[4]["run_id"]
    assert head["message_count"] == 10 and head["source"] == "loop"
    assert head["created_at"] is not None

    collected = [c["checkpoint_id"] for c in page["checkpoints"]]
    cursor = page["next_cursor"]
    while cursor:
        page = (
            await client.get(f"/threads/{thread_id}/history", params={"limit": 2, "before": cursor})
        ).json()
        collected += [c["checkpoint_id"] for c in page["checkpoints"]]
        cursor = page["next_cursor"]
    assert collected == [t["checkpoint_id"] for t in reversed(turns)]


async def test_state_at_a_checkpoint_is_the_conversation_then(client: httpx.AsyncClient) -> None:
    thread_id = unique()
    first = await _send(client, thread_id, "Who committed the latest malware threat?")
    await _send(client, thread_id, "What was their IP address?")

    then = (
        await client.get(f"/threads/{thread_id}/state", params={"checkpoint_id": first["checkpoint_id"]})
    ).json()
    assert then["checkpoint"]["checkpoint_id"] == first["checkpoint_id"]
    assert [m["id"] for m in then["messages"]] == [m["id"] for m in first["messages"]]
    assert then["next"] == []

    now = (await client.get(f"/threads/{thread_id}/state")).json()
    assert len(now["messages"]) == 8 and now["checkpoint"]["is_head"] is True


async def test_fork_from_an_earlier_checkpoint(client: httpx.AsyncClient) -> None:
    thread_id = unique()
    first = await _send(client, thread_id, "Who committed the latest malware threat?")
    old = await _send(client, thread_id, "What was their IP address?")

    # Fork from the end of the first turn and ask something else.
    fork = await _send(client, thread_id, "What was their email?", checkpoint_id=first["checkpoint_id"])
    assert "@example.com" in fork["messages"][-1]["content"]

    thread = (await client.get(f"/threads/{thread_id}")).json()
    assert thread["head_checkpoint_id"] == fork["checkpoint_id"]
    assert thread["message_count"] == 8

    # The transcript follows the new branch: turn 1, then the fork's turn.
    transcript = (await client.get(f"/threads/{thread_id}/messages")).json()["messages"]
    assert [m["id"] for m in transcript] == [m["id"] for m in first["messages"] + fork["messages"]]

    # The old branch stays readable through history and state.
    history = (await client.get(f"/threads/{thread_id}/history")).json()["checkpoints"]
    by_id = {c["checkpoint_id"]: c for c in history}
    assert by_id[fork["checkpoint_id"]]["parent_checkpoint_id"] == first["checkpoint_id"]
    assert by_id[old["checkpoint_id"]]["parent_checkpoint_id"] == first["checkpoint_id"]
    old_state = (
        await client.get(f"/threads/{thread_id}/state", params={"checkpoint_id": old["checkpoint_id"]})
    ).json()
    assert old_state["messages"][-1]["content"] == old["messages"][-1]["content"]

    # The next plain turn continues the new branch.
    follow = await _send(client, thread_id, "What was their IP address?")
    state = (await client.get(f"/threads/{thread_id}/state")).json()
    assert [m["id"] for m in state["messages"]] == [
        m["id"] for m in first["messages"] + fork["messages"] + follow["messages"]
    ]


async def test_transcript_pages_oldest_first_within_a_page(client: httpx.AsyncClient) -> None:
    thread_id = unique()
    for i in range(6):
        await _send(client, thread_id, f"message {i}")
    page = (await client.get(f"/threads/{thread_id}/messages", params={"limit": 5})).json()
    assert len(page["messages"]) == 5
    seen = page["messages"]
    while page["next_cursor"]:
        page = (
            await client.get(
                f"/threads/{thread_id}/messages", params={"limit": 5, "before": page["next_cursor"]}
            )
        ).json()
        seen = page["messages"] + seen
    assert len(seen) == 12
    users = [m["content"] for m in seen if m["role"] == "user"]
    assert users == [f"message {i}" for i in range(6)]
    assert all(m["run_id"] for m in seen)
    assert all(m["created_at"] for m in seen)

"""A paused turn is durable: a checkpoint in PostgreSQL, resumed after the service that paused
it stopped, by another process, with the answer the same as had nothing happened."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import unique
from tests.faults.processes import running_service

pytestmark = pytest.mark.slow

QUESTION = "Who committed the latest malware threat?"


async def test_a_pause_survives_a_restart_and_is_resumed_by_another_process(database_url: str) -> None:
    thread_id = unique()
    with running_service(database_url, TOOL_APPROVAL="get_user_info") as first:
        async with httpx.AsyncClient(base_url=first.base_url, timeout=30) as http:
            paused = await http.post(f"/threads/{thread_id}/messages", json={"content": QUESTION})
    assert paused.status_code == 200, paused.text
    (interrupt,) = paused.json()["interrupts"]
    # The first service is gone; two new processes share the database.
    with (
        running_service(database_url, TOOL_APPROVAL="get_user_info") as second,
        running_service(database_url, TOOL_APPROVAL="get_user_info") as third,
    ):
        async with (
            httpx.AsyncClient(base_url=second.base_url, timeout=30) as one,
            httpx.AsyncClient(base_url=third.base_url, timeout=30) as other,
        ):
            thread = (await one.get(f"/threads/{thread_id}")).json()
            assert thread["status"] == "interrupted" and thread["interrupts"][0]["id"] == interrupt["id"]
            body = {"resume": {"decision": "approve"}, "interrupt_id": interrupt["id"]}
            resumed = await one.post(f"/threads/{thread_id}/messages", json=body)
            assert resumed.status_code == 200, resumed.text
            assert "committed by" in resumed.json()["messages"][-1]["content"]
            # The other process sees it answered: the same resume again is refused there.
            again = await other.post(f"/threads/{thread_id}/messages", json=body)
            assert again.status_code == 409 and again.json()["error"]["code"] == "not_interrupted"
            transcript = (await other.get(f"/threads/{thread_id}/messages")).json()["messages"]
            assert [m["role"] for m in transcript] == [
                "user",
                "assistant",
                "tool",
                "assistant",
                "tool",
                "assistant",
            ]

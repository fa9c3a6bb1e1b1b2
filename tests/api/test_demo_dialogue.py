"""The README's session: the agent finds the user behind the latest malware threat, then answers
the follow-up from the thread's memory; another thread knows nothing of it."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg

from tests.conftest import latest_malware, unique


async def _send(client: httpx.AsyncClient, thread_id: str, content: str) -> dict[str, Any]:
    response = await client.post(f"/threads/{thread_id}/messages", json={"content": content})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_demo_dialogue_names_the_user_then_answers_from_memory(
    client: httpx.AsyncClient, database_url: str
) -> None:
    ip, user = latest_malware(database_url)
    thread = unique()

    first = await _send(client, thread, "Who committed the latest malware threat?")
    roles = [m["role"] for m in first["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    calls = [m["tool_calls"][0] for m in first["messages"] if m.get("tool_calls")]
    assert [c["name"] for c in calls] == ["get_cyber_threat_info", "get_user_info"]
    assert calls[0]["args"] == {"threat_type": "Malware"}
    assert calls[1]["args"] == {"source_ip": ip}
    answer = first["messages"][-1]["content"]
    assert user in answer and "Malware" in answer
    assert first["run_id"] and first["checkpoint_id"]

    second = await _send(client, thread, "What was their IP address?")
    # Answered from memory: no tool is called again.
    assert [m["role"] for m in second["messages"]] == ["user", "assistant"]
    assert ip in second["messages"][-1]["content"]
    assert second["checkpoint_id"] != first["checkpoint_id"]

    other = await _send(client, unique(), "What was their IP address?")
    assert ip not in other["messages"][-1]["content"]
    assert "don't know" in other["messages"][-1]["content"]


async def test_threat_tool_filters_by_the_type_asked_for(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """The seed's SQL compared the column with itself; ours must return the asked type."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT DISTINCT ON (threat_type) threat_type, threat_id FROM cyber_threat_detection"
            " ORDER BY threat_type, event_timestamp DESC"
        ).fetchall()
    assert len(rows) >= 5
    for threat_type, threat_id in rows:
        body = await _send(client, unique(), f"What is the latest {threat_type.lower()} threat?")
        tool_result = next(m for m in body["messages"] if m["role"] == "tool")
        assert f"threat_type: {threat_type};" in tool_result["content"]
        assert f"threat_id: {threat_id};" in tool_result["content"]


async def test_unknown_threat_type_and_ip_say_so(client: httpx.AsyncClient) -> None:
    body = await _send(client, unique(), "Who is at 203.0.113.99?")
    assert "No user has the IP address '203.0.113.99'" in body["messages"][-1]["content"]

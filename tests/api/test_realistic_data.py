"""The demo on data shaped like the accelerator's published tables: timestamps that tie and threat
source IPs that belong to no known user; and with a tool whose table is gone. Every question gets
an answer (never 502 RECURSION_LIMIT), and no library text reaches the client or the thread."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import make_settings, real_server, scratch_database, unique

UNKNOWN_IP = "203.0.113.7"
USERS = [(1, "Ann Lee", "IT", "ann.lee@corp.example", "10.0.0.1", "Oslo")]
TIED = datetime(2025, 3, 1, 10, 0)
THREATS = [
    # Two Malware threats at the same instant; the later id comes from an unknown address.
    (1, TIED, "10.0.0.1", "Malware"),
    (2, TIED, UNKNOWN_IP, "Malware"),
    (3, datetime(2025, 3, 1, 9, 0), "10.0.0.1", "Phishing"),
    (4, datetime(2025, 3, 1, 9, 0), "10.0.0.1", "Phishing"),
]


@pytest.fixture(scope="module")
def realistic_url(admin_url: str) -> Iterator[str]:
    with scratch_database(admin_url) as url:
        yield url


@pytest.fixture(scope="module")
async def base_url(realistic_url: str) -> AsyncIterator[str]:
    settings = make_settings(realistic_url, database={"load_sample_data": False})
    async with real_server(settings) as url:
        with psycopg.connect(realistic_url) as conn:
            conn.cursor().executemany(
                "INSERT INTO user_info (user_id, user_name, department, email, ip_address, location)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                USERS,
            )
            conn.cursor().executemany(
                "INSERT INTO cyber_threat_detection (threat_id, event_timestamp, source_ip,"
                " destination_ip, source_port, destination_port, protocol, threat_type,"
                " detection_tool, description)"
                " VALUES (%s, %s, %s, '192.168.0.1', 4444, 443, 'TCP', %s, 'IDS', 'seen')",
                THREATS,
            )
        yield url


async def _ask(base_url: str, thread_id: str, content: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        response = await client.post(f"/threads/{thread_id}/messages", json={"content": content})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


async def test_a_threat_from_an_unknown_address_is_answered_not_retried(base_url: str) -> None:
    body = await _ask(base_url, unique(), "Who committed the latest malware threat?")
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    answer = body["messages"][-1]["content"]
    # The tie is broken the same way every time (the higher threat id), and the unknown address
    # is said plainly.
    assert "threat 2 " in answer
    assert f"No user has the IP address '{UNKNOWN_IP}'" in answer


async def test_tied_timestamps_from_a_known_address_name_the_user(base_url: str) -> None:
    body = await _ask(base_url, unique(), "Who committed the latest phishing threat?")
    answer = body["messages"][-1]["content"]
    assert "Ann Lee" in answer and "threat 4 " in answer


async def test_a_missing_table_is_a_stable_answer_without_library_text(
    base_url: str, realistic_url: str
) -> None:
    thread_id = unique()
    with psycopg.connect(realistic_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE user_info RENAME TO user_info_renamed")
    try:
        body = await _ask(base_url, thread_id, "Who committed the latest malware threat?")
    finally:
        with psycopg.connect(realistic_url, autocommit=True) as conn:
            conn.execute("ALTER TABLE user_info_renamed RENAME TO user_info")
    stable = "get_user_info failed: the database rejected the query"
    tool_results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
    assert tool_results[-1] == stable
    assert stable in body["messages"][-1]["content"]
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        stored = (await client.get(f"/threads/{thread_id}/messages")).text
    for leaked in ("UndefinedTable", "relation", "user_info_renamed", "LINE 1"):
        assert leaked not in body["messages"][-1]["content"]
        assert leaked not in stored

"""Thread resources: create, list (cursor pagination, newest activity first), get, patch, delete."""

from __future__ import annotations

import httpx
import psycopg

from tests.conftest import scalar, unique


async def test_create_get_patch_thread(client: httpx.AsyncClient) -> None:
    thread_id = unique()
    created = await client.post(
        "/threads", json={"thread_id": thread_id, "title": "Triage", "metadata": {"team": "soc"}}
    )
    assert created.status_code == 201
    body = created.json()
    assert body["thread_id"] == thread_id
    assert body["title"] == "Triage"
    assert body["metadata"] == {"team": "soc"}
    assert body["status"] == "idle" and body["message_count"] == 0 and body["head_checkpoint_id"] is None

    got = (await client.get(f"/threads/{thread_id}")).json()
    assert got == body

    patched = await client.patch(f"/threads/{thread_id}", json={"metadata": {"priority": "high"}})
    assert patched.status_code == 200
    assert patched.json()["metadata"] == {"team": "soc", "priority": "high"}
    assert patched.json()["title"] == "Triage"  # untouched when not sent

    cleared = await client.patch(f"/threads/{thread_id}", json={"title": None})
    assert cleared.json()["title"] is None


async def test_create_without_id_generates_one(client: httpx.AsyncClient) -> None:
    created = await client.post("/threads", json={})
    assert created.status_code == 201
    thread_id = created.json()["thread_id"]
    assert (await client.get(f"/threads/{thread_id}")).status_code == 200


async def test_first_message_creates_the_thread(client: httpx.AsyncClient) -> None:
    thread_id = unique()
    assert (await client.get(f"/threads/{thread_id}")).status_code == 404
    sent = await client.post(f"/threads/{thread_id}/messages", json={"content": "hello"})
    assert sent.status_code == 200
    thread = (await client.get(f"/threads/{thread_id}")).json()
    assert thread["message_count"] == 2 and thread["turn_count"] == 1
    assert thread["head_checkpoint_id"] == sent.json()["checkpoint_id"]


async def test_list_is_newest_activity_first_and_paginates(client: httpx.AsyncClient) -> None:
    ids = [unique("page") for _ in range(5)]
    for thread_id in ids:
        assert (await client.post("/threads", json={"thread_id": thread_id})).status_code == 201
    # Activity on the oldest one moves it to the front.
    assert (await client.post(f"/threads/{ids[0]}/messages", json={"content": "hi"})).status_code == 200
    expected = [ids[0], *reversed(ids[1:])]

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"before": cursor} if cursor else {})}
        page = (await client.get("/threads", params=params)).json()
        assert len(page["threads"]) <= 2
        seen.extend(t["thread_id"] for t in page["threads"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    mine = [t for t in seen if t in ids]
    assert mine == expected
    assert len(seen) == len(set(seen))  # no duplicates across pages


async def test_list_searches_titles_in_any_case_and_pages_the_matches(client: httpx.AsyncClient) -> None:
    marker = unique("needle")
    titles = [f"{marker.upper()} one", f"A {marker} two", f"{marker} three", "100%_literal"]
    ids = []
    for title in titles:
        created = await client.post("/threads", json={"title": title})
        assert created.status_code == 201
        ids.append(created.json()["thread_id"])
    assert (await client.post("/threads", json={"title": "unrelated"})).status_code == 201

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"q": marker, "limit": 2, **({"before": cursor} if cursor else {})}
        page = (await client.get("/threads", params=params)).json()
        seen.extend(t["title"] for t in page["threads"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(titles[:3]))  # newest first, across pages
    # LIKE's wildcards are plain characters in a search; a thread id finds its thread.
    literal = (await client.get("/threads", params={"q": "0%_l"})).json()["threads"]
    assert [t["title"] for t in literal] == ["100%_literal"]
    assert (await client.get("/threads", params={"q": "%"})).json()["threads"] == literal
    by_id = (await client.get("/threads", params={"q": ids[0]})).json()["threads"]
    assert [t["thread_id"] for t in by_id] == [ids[0]]
    empty = await client.get("/threads", params={"q": ""})
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "invalid_input"


async def test_delete_removes_thread_transcript_and_checkpoints(
    client: httpx.AsyncClient, database_url: str
) -> None:
    thread_id = unique()
    for text in ("Who committed the latest malware threat?", "What was their IP address?"):
        assert (
            await client.post(f"/threads/{thread_id}/messages", json={"content": text})
        ).status_code == 200
    with psycopg.connect(database_url) as conn:
        key = scalar(conn, "SELECT thread_key::text FROM lma_threads WHERE thread_id = %s", (thread_id,))

        def counts() -> list[int]:
            return [
                scalar(conn, f"SELECT count(*) FROM {table} WHERE thread_id = %s", (key,))
                for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
            ] + [
                scalar(conn, f"SELECT count(*) FROM {table} WHERE thread_key = %s", (key,))
                for table in ("lma_messages", "lma_runs")
            ]

        before = counts()
        assert before[0] == 2 and before[1] > 0 and before[3] == 8 and before[4] == 2

        deleted = await client.delete(f"/threads/{thread_id}")
        assert deleted.status_code == 204 and deleted.content == b""
        conn.commit()
        assert counts() == [0, 0, 0, 0, 0]

    assert (await client.get(f"/threads/{thread_id}")).status_code == 404
    assert (await client.delete(f"/threads/{thread_id}")).status_code == 404
    # The id can be used again, and the new thread starts with no memory.
    again = await client.post(
        f"/threads/{thread_id}/messages", json={"content": "What was their IP address?"}
    )
    assert "don't know" in again.json()["messages"][-1]["content"]

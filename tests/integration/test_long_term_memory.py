"""Long-term memory through the agent: saved on one thread, used on another of the same owner,
never on another owner's; off means nothing stored; a failing embedder never fails a turn."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import psycopg
import pytest

from app.errors import MemoryNotFound
from app.lifespan import open_resources
from app.memory.longterm_schema import LongTermMemoryUnavailable
from tests.conftest import make_settings, running_app, scratch_database, unique

MEMORY_ON = {"enabled": True}


async def answer(client: httpx.AsyncClient, content: str, headers: dict[str, str] | None = None) -> str:
    """The agent's answer to `content` on a new thread."""
    sent = await client.post(
        f"/threads/{unique()}/messages", json={"content": content}, headers=headers or {}
    )
    assert sent.status_code == 200, sent.text
    return str(sent.json()["messages"][-1]["content"])


def _api_keys() -> dict[str, object]:
    # Alice is an admin only so that she may read /metrics.
    return {
        "mode": "api_key",
        "api_keys": "key-a:alice@example.com,key-b:bob",
        "admin_owners": ["alice@example.com"],
    }


async def test_what_one_thread_learns_another_thread_of_the_same_owner_uses(vector_database_url: str) -> None:
    settings = make_settings(vector_database_url, memory=MEMORY_ON, auth=_api_keys())
    async with running_app(settings) as (_, client):
        alice = {"Authorization": "Bearer key-a"}
        bob = {"Authorization": "Bearer key-b"}
        said = await answer(client, "Remember that I cover the London office and prefer short answers", alice)
        assert "remember that you cover the London office" in said
        assert "London" in await answer(client, "Which office do I cover?", alice)
        theirs = await answer(client, "Which office do I cover?", bob)
        assert "London" not in theirs and "don't have anything saved" in theirs
        # Three turns of two model calls each (a tool call, then the answer): one recall a turn.
        metrics = (await client.get("/metrics", headers=alice)).text
    recalls = [
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("lma_memory_recalls_total{")
    ]
    assert sum(recalls) == 3


async def test_forget_deletes_the_memory_it_finds(vector_database_url: str) -> None:
    settings = make_settings(vector_database_url, memory=MEMORY_ON, auth={"local_owner": unique("forget")})
    async with running_app(settings) as (_, client):
        await answer(client, "Remember that my desk is 4B")
        assert "4B" in await answer(client, "Where is my desk?")
        assert "forgotten" in await answer(client, "Forget that my desk is 4B")
        assert "4B" not in await answer(client, "Where is my desk?")


async def test_off_stores_and_searches_nothing(vector_database_url: str) -> None:
    owner = unique("off")
    settings = make_settings(vector_database_url, memory={"enabled": False}, auth={"local_owner": owner})
    async with running_app(settings) as (_, client):
        await answer(client, "Remember that I like tea")
        assert (await client.post("/store/items/search", json={"namespace_prefix": []})).status_code == 404
    with psycopg.connect(vector_database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM store WHERE prefix LIKE %s", (f"owners.{owner}%",)
        ).fetchone()
    assert row is not None and row[0] == 0


async def test_a_failing_embedding_endpoint_leaves_the_turn_without_memories(
    vector_database_url: str,
) -> None:
    # Nothing listens on port 9 of 127.0.0.1: every embedding call fails at once.
    memory = {
        "enabled": True,
        "embedding_provider": "openai",
        "embedding_base_url": "http://127.0.0.1:9/v1",
        "embedding_model": "m",
        "embedding_dims": 384,
    }
    settings = make_settings(vector_database_url, memory=memory)
    async with running_app(settings) as (app, client):
        assert "Malware" in await answer(client, "Who committed the latest malware threat?")
        metrics = (await client.get("/metrics")).text
    assert 'lma_memory_recalls_total{outcome="failed"}' in metrics
    assert app is not None


async def test_the_service_refuses_to_start_when_pgvector_is_missing(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    if row is not None:
        pytest.skip("the session server has pgvector: nothing to refuse")
    with pytest.raises(LongTermMemoryUnavailable, match="pgvector"):
        async with running_app(make_settings(database_url, memory=MEMORY_ON)):
            pass


async def test_dimensions_that_do_not_match_the_index_stop_the_start_with_the_fix(
    vector_database_url: str,
) -> None:
    async with running_app(make_settings(vector_database_url, memory=MEMORY_ON)):
        pass  # the index exists, made for the offline embedder (384)
    other = {
        "enabled": True,
        "embedding_provider": "openai",
        "embedding_base_url": "http://127.0.0.1:9/v1",
        "embedding_model": "m",
        "embedding_dims": 1024,
    }
    with pytest.raises(
        LongTermMemoryUnavailable, match=r"384-dimension.*1024-dimension.*DROP TABLE store_vectors"
    ):
        async with running_app(make_settings(vector_database_url, memory=other)):
            pass


async def test_item_and_default_ttls_are_swept_by_the_sweeper(vector_database_url: str) -> None:
    owner = unique("ttl")
    memory = {"enabled": True, "default_ttl_seconds": 3600}
    settings = make_settings(vector_database_url, memory=memory, auth={"local_owner": owner})
    async with open_resources(settings) as resources:
        memories = resources.memories
        await memories.put(
            owner=owner, namespace=["n"], key="own", value={"content": "a"}, index=None, ttl_minutes=5
        )
        await memories.put(
            owner=owner, namespace=["n"], key="default", value={"content": "b"}, index=None, ttl_minutes=None
        )
        with psycopg.connect(vector_database_url) as conn:
            rows: dict[str, int] = dict(
                conn.execute(
                    "SELECT key, ttl_minutes FROM store WHERE prefix = %s AND expires_at > now()",
                    (f"owners.{owner}.n",),
                ).fetchall()
            )
            assert rows == {"own": 5, "default": 60}
            assert (await resources.retention.sweep()).memories_expired == 0
            conn.execute(
                "UPDATE store SET expires_at = now() - interval '1 second' WHERE prefix = %s AND key = 'own'",
                (f"owners.{owner}.n",),
            )
            conn.commit()
        with pytest.raises(MemoryNotFound):  # hidden as soon as it expires, before the sweep
            await memories.get(owner=owner, namespace=["n"], key="own", refresh_ttl=None)
        assert (await resources.retention.sweep()).memories_expired == 1
        assert (await memories.get(owner=owner, namespace=["n"], key="default", refresh_ttl=None)).value == {
            "content": "b"
        }


async def test_a_least_privilege_start_needs_init_db_to_have_made_the_vector_index(
    vector_admin_url: str,
) -> None:
    with scratch_database(vector_admin_url) as url:
        async with running_app(make_settings(url, memory={"enabled": False})):
            pass  # the service's own tables, made by a start with long-term memory off
        least = make_settings(url, memory=MEMORY_ON, database={"migrate": False})
        with pytest.raises(LongTermMemoryUnavailable, match="init-db"):
            async with running_app(least):
                pass
        env = {**os.environ, "DATABASE_URL": url, "LONG_TERM_MEMORY": "true", "LOAD_SAMPLE_DATA": "false"}
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", "init-db"], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]
        async with running_app(least) as (_, client):
            assert "London" in await answer(client, "Remember that I cover the London office")

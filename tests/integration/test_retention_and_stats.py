"""Retention (TTL expiry, keep_latest compaction, one sweeper at a time, `prune`), deleting a
thread mid-turn, and conversation analytics on known traffic."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg

from app.lifespan import open_resources
from tests.conftest import make_settings, running_app, scalar, unique

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "Who committed the latest malware threat?"


def age(database_url: str, schema: str, thread_id: str, seconds: int) -> None:
    """Pretend the thread has been idle for `seconds`."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            f"UPDATE {schema}.lma_threads SET last_activity_at = now() - make_interval(secs => %s)"
            " WHERE thread_id = %s",
            (seconds, thread_id),
        )


def checkpoint_rows(database_url: str, schema: str, thread_key: str) -> int:
    with psycopg.connect(database_url) as conn:
        return sum(
            scalar(conn, f"SELECT count(*) FROM {schema}.{table} WHERE thread_id = %s", (thread_key,))
            for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
        )


def thread_key(database_url: str, schema: str, thread_id: str) -> str:
    with psycopg.connect(database_url) as conn:
        return str(
            scalar(conn, f"SELECT thread_key FROM {schema}.lma_threads WHERE thread_id = %s", (thread_id,))
        )


async def test_background_sweeper_expires_idle_threads_by_their_ttl(database_url: str) -> None:
    schema = f"ret_{uuid.uuid4().hex[:6]}"
    settings = make_settings(
        database_url,
        database={"schema_name": schema},
        retention={"thread_ttl_seconds": 3600, "sweep_interval_seconds": 0.2},
    )
    async with running_app(settings) as (_, client):
        ids = {name: unique(name) for name in ("stale", "own_ttl", "fresh", "busy")}
        for name, thread_id in ids.items():
            body = {"thread_id": thread_id, **({"ttl_seconds": 86400} if name == "own_ttl" else {})}
            assert (await client.post("/threads", json=body)).status_code == 201
            assert (
                await client.post(f"/threads/{thread_id}/messages", json={"content": QUESTION})
            ).status_code == 200
        stale_key = thread_key(database_url, schema, ids["stale"])
        assert checkpoint_rows(database_url, schema, stale_key) > 0
        thread = (await client.get(f"/threads/{ids['own_ttl']}")).json()
        assert thread["ttl_seconds"] == 86400 and thread["expires_at"] is not None

        for name in ("stale", "own_ttl", "busy"):
            age(database_url, schema, ids[name], 2 * 3600)
        with psycopg.connect(database_url, autocommit=True) as conn:  # a turn is running on "busy"
            conn.execute(
                f"UPDATE {schema}.lma_threads SET lease_run_id = gen_random_uuid(),"
                " lease_expires_at = now() + interval '1 minute' WHERE thread_id = %s",
                (ids["busy"],),
            )
        for _ in range(100):
            if (await client.get(f"/threads/{ids['stale']}")).status_code == 404:
                break
            await asyncio.sleep(0.1)
        assert (await client.get(f"/threads/{ids['stale']}")).status_code == 404
        for name in ("own_ttl", "fresh", "busy"):
            assert (await client.get(f"/threads/{ids[name]}")).status_code == 200, name
        assert checkpoint_rows(database_url, schema, stale_key) == 0

        # A per-thread TTL can be changed back to the default, which then applies.
        patched = await client.patch(f"/threads/{ids['own_ttl']}", json={"ttl_seconds": None})
        assert patched.json()["ttl_seconds"] is None
        for _ in range(100):
            if (await client.get(f"/threads/{ids['own_ttl']}")).status_code == 404:
                break
            await asyncio.sleep(0.1)
        assert (await client.get(f"/threads/{ids['own_ttl']}")).status_code == 404


async def test_only_one_sweeper_runs_at_a_time(database_url: str) -> None:
    schema = f"lock_{uuid.uuid4().hex[:6]}"
    settings = make_settings(
        database_url, database={"schema_name": schema}, retention={"thread_ttl_seconds": 60}
    )
    async with open_resources(settings) as resources:
        with psycopg.connect(database_url, autocommit=True) as other_replica:
            other_replica.execute("SELECT pg_advisory_lock(hashtext('lakebase-memory-agent:sweeper'))")
            assert (await resources.retention.sweep()).skipped
            other_replica.execute("SELECT pg_advisory_unlock(hashtext('lakebase-memory-agent:sweeper'))")
        assert not (await resources.retention.sweep()).skipped


async def test_keep_latest_compaction_keeps_transcript_and_state(database_url: str) -> None:
    schema = f"cmp_{uuid.uuid4().hex[:6]}"
    settings = make_settings(database_url, database={"schema_name": schema})
    async with running_app(settings) as (_, client):
        thread_id = unique()
        for content in (QUESTION, "What was their IP address?", "What was their email?"):
            assert (
                await client.post(f"/threads/{thread_id}/messages", json={"content": content})
            ).status_code == 200
        before = (await client.get(f"/threads/{thread_id}/messages")).json()
        head = (await client.get(f"/threads/{thread_id}")).json()["head_checkpoint_id"]
        state_before = (await client.get(f"/threads/{thread_id}/state")).json()
        assert len((await client.get(f"/threads/{thread_id}/history")).json()["checkpoints"]) == 3
        age(database_url, schema, thread_id, 7200)

    env = {**os.environ, "DATABASE_URL": database_url, "DB_SCHEMA": schema}
    pruned = subprocess.run(
        [sys.executable, "-m", "app.cli", "prune", "--compact-idle", "3600"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(pruned.stdout.strip().splitlines()[-1]) == {
        "expired": 0,
        "compacted": 1,
        "skipped": False,
    }

    async with running_app(settings) as (_, client):
        history = (await client.get(f"/threads/{thread_id}/history")).json()
        assert [c["checkpoint_id"] for c in history["checkpoints"]] == [head]
        assert history["complete"] is False
        assert (await client.get(f"/threads/{thread_id}")).json()["compacted_at"] is not None
        assert (await client.get(f"/threads/{thread_id}/messages")).json() == before
        assert (await client.get(f"/threads/{thread_id}/state")).json()["messages"] == state_before[
            "messages"
        ]
        follow = await client.post(
            f"/threads/{thread_id}/messages", json={"content": "What was their IP address?"}
        )
        assert follow.json()["messages"][-1]["content"].startswith("Their IP address is")
        assert len((await client.get(f"/threads/{thread_id}/history")).json()["checkpoints"]) == 2


async def test_deleting_a_thread_mid_turn_cannot_resurrect_it(database_url: str) -> None:
    settings = make_settings(database_url, model={"offline_token_delay_ms": 40})
    async with running_app(settings) as (_, client):
        thread_id = unique()
        assert (
            await client.post(f"/threads/{thread_id}/messages", json={"content": QUESTION})
        ).status_code == 200
        with psycopg.connect(database_url) as conn:
            old_key = str(
                scalar(conn, "SELECT thread_key FROM lma_threads WHERE thread_id = %s", (thread_id,))
            )
        running = asyncio.create_task(
            client.post(
                f"/threads/{thread_id}/messages",
                json={"content": "Who committed the latest phishing threat?"},
            )
        )
        for _ in range(200):
            if (await client.get(f"/threads/{thread_id}")).json()["status"] == "busy":
                break
            await asyncio.sleep(0.01)
        assert (await client.delete(f"/threads/{thread_id}")).status_code == 204
        finished = await running
        assert finished.status_code == 502 and finished.json()["error"]["code"] == "turn_failed"
        assert (await client.get(f"/threads/{thread_id}")).status_code == 404
        assert checkpoint_rows(database_url, "public", old_key) == 0
        again = await client.post(
            f"/threads/{thread_id}/messages", json={"content": "What was their IP address?"}
        )
        assert "don't know" in again.json()["messages"][-1]["content"]


async def test_stats_on_known_traffic(database_url: str) -> None:
    schema = f"sts_{uuid.uuid4().hex[:6]}"
    settings = make_settings(
        database_url,
        database={"schema_name": schema},
        auth={"mode": "api_key", "api_keys": "admin-key:ops,user-key:alice", "admin_owners": "ops"},
    )
    alice = {"Authorization": "Bearer user-key"}
    async with running_app(settings) as (_, client):
        big, small = unique("big"), unique("small")
        for content in (QUESTION, "What was their IP address?"):
            assert (
                await client.post(f"/threads/{big}/messages", json={"content": content}, headers=alice)
            ).status_code == 200
        assert (
            await client.post(f"/threads/{small}/messages", json={"content": "hello"}, headers=alice)
        ).status_code == 200

        denied = await client.get("/admin/stats", headers=alice)
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
        stats = (
            await client.get("/admin/stats", params={"top": 1}, headers={"X-API-Key": "admin-key"})
        ).json()

    totals = stats["totals"]
    assert (totals["threads"], totals["owners"], totals["turns"], totals["failed_turns"]) == (2, 1, 3, 0)
    assert totals["messages"] == 6 + 2 + 2 and totals["tool_calls"] == 2 and totals["checkpoints"] == 3
    assert totals["checkpoint_bytes"] > 0 and totals["transcript_bytes"] > 0
    assert [(t["thread_id"], t["turns"], t["tool_calls"]) for t in stats["top_threads"]] == [(big, 2, 2)]
    assert stats["per_day"][0]["turns"] == 3 and stats["per_day"][0]["active_threads"] == 2

    env = {**os.environ, "DATABASE_URL": database_url, "DB_SCHEMA": schema}
    printed = subprocess.run(
        [sys.executable, "-m", "app.cli", "stats", "--top", "5"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(printed.stdout)["totals"] == totals

"""Lakebase in production conditions, on a real PostgreSQL that enforces passwords: rotating
OAuth credentials, killed connections, a database restart, and a failing credential mint."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.conftest import make_settings, running_app, unique
from tests.fakes import FakeWorkspaceClient
from tests.pg_cluster import PasswordCluster

pytestmark = pytest.mark.slow

ROLE = "agent_app"


@pytest.fixture(scope="module")
def cluster() -> Iterator[PasswordCluster]:
    cluster = PasswordCluster()
    cluster.init()
    cluster.start()
    cluster.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD 'not-the-token'")
    cluster.execute(f"CREATE DATABASE agent OWNER {ROLE}")
    try:
        yield cluster
    finally:
        cluster.destroy()


def lakebase_settings(cluster: PasswordCluster, **database: Any) -> Settings:
    return make_settings(
        None,
        database={"pool_min_size": 2, "pool_max_size": 6, "check_idle_after": 0.5, **database},
        lakebase={
            "instance_name": "memory-instance",
            "port": cluster.port,
            "database": "agent",
            "sslmode": "disable",  # the test cluster has no TLS; Lakebase defaults to require
            "mint_timeout": 1.0,
        },
    )


def workspace(cluster: PasswordCluster, **kwargs: Any) -> FakeWorkspaceClient:
    return FakeWorkspaceClient(admin_url=cluster.url(), role=ROLE, host="127.0.0.1", **kwargs)


def terminate_backends(cluster: PasswordCluster) -> None:
    cluster.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE usename = %s AND pid <> pg_backend_pid()",
        (ROLE,),
    )


async def _turn(client: httpx.AsyncClient, thread_id: str, content: str = "hello") -> httpx.Response:
    return await client.post(f"/threads/{thread_id}/messages", json={"content": content})


async def test_service_keeps_answering_across_token_rotations(cluster: PasswordCluster) -> None:
    fake = workspace(cluster, token_lifetime=2.0)  # refreshed after ~1 s
    settings = lakebase_settings(cluster, pool_max_lifetime=1.0)  # connections recycle every second
    async with running_app(settings, workspace=fake) as (_, client):
        thread_id = unique()
        statuses = []
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            statuses.append((await _turn(client, thread_id)).status_code)
            await asyncio.sleep(0.05)
        assert set(statuses) == {200}
        assert len(fake.tokens) >= 4, "tokens were not rotated"
        # Each rotation invalidated the previous password, so connections opened after the
        # last rotations can only have logged in with the new token.
        with __import__("psycopg").connect(cluster.url(dbname="agent")) as conn:
            newest = conn.execute(
                "SELECT max(backend_start) FROM pg_stat_activity WHERE usename = %s", (ROLE,)
            ).fetchone()
        assert newest is not None and newest[0] > fake.rotated_at[-2]
        thread = (await client.get(f"/threads/{thread_id}")).json()
        assert thread["message_count"] == 2 * len(statuses) and thread["turn_count"] == len(statuses)


async def test_killing_every_connection_mid_load_never_gives_500(cluster: PasswordCluster) -> None:
    async with running_app(lakebase_settings(cluster), workspace=workspace(cluster)) as (_, client):
        statuses: list[int] = []
        acknowledged: dict[str, int] = {}
        stop = asyncio.Event()

        async def worker() -> None:
            thread_id = unique()
            while not stop.is_set():
                response = await _turn(client, thread_id)
                statuses.append(response.status_code)
                if response.status_code == 200:
                    acknowledged[thread_id] = acknowledged.get(thread_id, 0) + 1
                elif response.status_code == 409:
                    await asyncio.sleep(0.2)  # a lease left by a killed turn

        workers = [asyncio.create_task(worker()) for _ in range(6)]
        await asyncio.sleep(0.5)
        for _ in range(3):
            await asyncio.to_thread(terminate_backends, cluster)
            await asyncio.sleep(0.4)
        killed_at = time.monotonic()
        await asyncio.to_thread(terminate_backends, cluster)
        stop.set()
        await asyncio.gather(*workers)
        assert 500 not in statuses and all(s in (200, 409, 503) for s in statuses), statuses

        # After the kill, every request succeeds.
        first_ok: float | None = None
        for _ in range(20):
            response = await _turn(client, unique())
            assert response.status_code == 200, response.text
            first_ok = first_ok or time.monotonic()
        assert first_ok is not None
        logging.getLogger(__name__).info("recovered %.3f s after a mass kill", first_ok - killed_at)
        # No acknowledged turn was lost.
        for thread_id, count in acknowledged.items():
            thread = (await client.get(f"/threads/{thread_id}")).json()
            assert (thread["turn_count"], thread["message_count"]) == (count, 2 * count)


async def test_database_restart_gives_503_then_recovers_without_restart(cluster: PasswordCluster) -> None:
    async with running_app(lakebase_settings(cluster), workspace=workspace(cluster)) as (_, client):
        thread_id = unique()
        assert (await _turn(client, thread_id, "Who committed the latest malware threat?")).status_code == 200

        await asyncio.to_thread(cluster.stop)
        try:
            outage = []
            for _ in range(5):
                started = time.monotonic()
                response = await _turn(client, unique())
                outage.append((response, time.monotonic() - started))
                await asyncio.sleep(0.2)
            for response, seconds in outage:
                assert response.status_code == 503, response.text
                assert response.json()["error"]["code"] == "database_unavailable"
                assert int(response.headers["retry-after"]) >= 1
                assert seconds < 5, "requests must fail fast, not wait for the pool timeout"
            assert (await client.get("/readyz")).status_code == 503
        finally:
            await asyncio.to_thread(cluster.start)
        back = time.monotonic()
        while True:
            response = await _turn(client, unique())
            if response.status_code == 200:
                break
            assert response.status_code == 503
            assert time.monotonic() - back < 15, "the service did not recover by itself"
            await asyncio.sleep(0.1)
        logging.getLogger(__name__).info("recovered %.3f s after the restart", time.monotonic() - back)
        assert (await client.get("/readyz")).status_code == 200
        # The turn acknowledged before the outage is still there, and the thread goes on.
        follow = await _turn(client, thread_id, "What was their IP address?")
        assert follow.status_code == 200
        assert follow.json()["messages"][-1]["content"].startswith("Their IP address is")


async def test_failing_credential_mint_is_a_clear_503_without_secrets(
    cluster: PasswordCluster, caplog: pytest.LogCaptureFixture
) -> None:
    fake = workspace(cluster, token_lifetime=2.0)
    async with running_app(lakebase_settings(cluster), workspace=fake) as (_, client):
        assert (await _turn(client, unique())).status_code == 200
        fake.failing = True
        await asyncio.sleep(1.2)  # the cached token is now due for refresh
        caplog.clear()
        with caplog.at_level(logging.INFO):
            await asyncio.to_thread(terminate_backends, cluster)  # new connections need a new token
            responses = [await _turn(client, unique()) for _ in range(3)]
        assert all(r.status_code == 503 for r in responses), [r.text for r in responses]
        assert {r.json()["error"]["code"] for r in responses} == {"database_unavailable"}
        assert all("retry-after" in r.headers for r in responses)
        logs = caplog.text
        assert "minting a database credential for Lakebase instance 'memory-instance' failed" in logs
        for token in fake.tokens:
            assert token not in logs
            assert all(token not in r.text for r in responses)

        fake.failing = False
        deadline = time.monotonic() + 15
        while (await _turn(client, unique())).status_code != 200:
            assert time.monotonic() < deadline, "did not recover after minting works again"
            await asyncio.sleep(0.2)


@pytest.mark.parametrize(
    ("lakebase", "expected_call"),
    [
        pytest.param(
            {"endpoint": "projects/p/branches/main/endpoints/ep1"},
            ("endpoint_credential", "projects/p/branches/main/endpoints/ep1"),
            id="endpoint",
        ),
        pytest.param(
            {"project": "p", "branch": "dev"},
            ("endpoint_credential", "projects/p/branches/dev/endpoints/rw"),
            id="project-branch",
        ),
        pytest.param({"host": "127.0.0.1", "user": ROLE}, ("oauth_token", ""), id="apps-pg-variables"),
    ],
)
async def test_every_lakebase_configuration_connects(
    cluster: PasswordCluster, lakebase: dict[str, Any], expected_call: tuple[str, str]
) -> None:
    fake = workspace(cluster)
    settings = make_settings(
        None,
        database={"pool_min_size": 1, "pool_max_size": 2},
        lakebase={"port": cluster.port, "database": "agent", "sslmode": "disable", **lakebase},
    )
    async with running_app(settings, workspace=fake) as (_, client):
        assert (await _turn(client, unique())).status_code == 200
    assert expected_call in fake.calls

"""Database faults while clients keep sending: every backend killed (twice), then a database
restart. Never a 500; after recovery every request succeeds; no acknowledged turn is lost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from app.settings import Settings
from tests.conftest import make_settings, real_server, unique
from tests.faults.consistency import ThreadLedger, assert_thread_consistent
from tests.pg_cluster import PasswordCluster

pytestmark = pytest.mark.slow

WORKERS = 4
RECOVERY_SECONDS = 30.0  # a bound on the wait, so the test ends by itself; not a performance target


def outage_settings(database_url: str) -> Settings:
    return make_settings(
        database_url,
        database={"pool_max_size": 6, "check_idle_after": 0.5},
        runs={"lease_seconds": 2},  # a lease a killed turn could not release frees soon
    )


def assert_outage_answer(response: httpx.Response) -> None:
    assert response.status_code in (200, 409, 503), (response.status_code, response.text)
    if response.status_code == 503:
        assert response.json()["error"]["code"] == "database_unavailable", response.text
        assert int(response.headers["retry-after"]) >= 1
    if response.status_code == 409:
        assert response.json()["error"]["code"] == "thread_busy", response.text


async def under_load(base_url: str, fault: Callable[[], Awaitable[None]]) -> dict[str, ThreadLedger]:
    """Clients loop on their own threads while `fault` runs; then each thread must accept turns
    again, every one of them. Returns what the clients were told."""
    ledgers = {unique(f"outage{i}"): ThreadLedger() for i in range(WORKERS)}
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:

        async def send(thread_id: str, content: str) -> httpx.Response:
            response = await http.post(f"/threads/{thread_id}/messages", json={"content": content})
            assert_outage_answer(response)
            ledgers[thread_id].record(content, response)
            return response

        async def worker(thread_id: str) -> None:
            for n in range(10_000):  # bounded; `stop` ends it long before
                if stop.is_set():
                    return
                if (await send(thread_id, f"{thread_id} load {n}")).status_code != 200:
                    await asyncio.sleep(0.1)

        workers = [asyncio.create_task(worker(thread_id)) for thread_id in ledgers]
        try:
            await asyncio.sleep(0.5)
            await fault()
            await asyncio.sleep(0.5)
        finally:
            stop.set()
            await asyncio.gather(*workers)

        for thread_id in ledgers:
            deadline = time.monotonic() + RECOVERY_SECONDS
            while (await send(thread_id, f"{thread_id} recover {time.monotonic()}")).status_code != 200:
                assert time.monotonic() < deadline, f"{thread_id} did not recover"
                await asyncio.sleep(0.2)
            for n in range(3):  # once recovered, every request succeeds
                response = await send(thread_id, f"{thread_id} after {n}")
                assert response.status_code == 200, response.text
        for thread_id, ledger in ledgers.items():
            await assert_thread_consistent(http, thread_id, ledger)
    return ledgers


def terminate_other_backends(admin_url: str, dbname: str) -> int:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        ).fetchall()
    return sum(1 for (killed,) in rows if killed)


async def test_killing_every_connection_twice_under_load(admin_url: str, database_url: str) -> None:
    dbname = conninfo_to_dict(database_url)["dbname"]
    killed: list[int] = []

    async def kill_twice() -> None:
        for _ in range(2):
            killed.append(await asyncio.to_thread(terminate_other_backends, admin_url, str(dbname)))
            await asyncio.sleep(0.4)

    async with real_server(outage_settings(database_url)) as base_url:
        ledgers = await under_load(base_url, kill_twice)
    assert killed[0] > 0, "there was no connection to kill: the fault did not happen"
    assert all(ledger.acknowledged for ledger in ledgers.values())


@pytest.fixture(scope="module")
def cluster() -> Iterator[PasswordCluster]:
    cluster = PasswordCluster()
    cluster.init()
    cluster.start()
    cluster.execute("CREATE DATABASE faults")
    try:
        yield cluster
    finally:
        cluster.destroy()


async def test_database_restart_under_load(cluster: PasswordCluster) -> None:
    async def restart() -> None:
        await asyncio.to_thread(cluster.stop)
        try:
            await asyncio.sleep(1.0)  # the clients meet a database that is down
        finally:
            await asyncio.to_thread(cluster.start)

    async with real_server(outage_settings(cluster.url(dbname="faults"))) as base_url:
        ledgers = await under_load(base_url, restart)
    uncertain = [content for ledger in ledgers.values() for content in ledger.uncertain]
    assert uncertain, "no request met the outage: the fault did not happen under load"

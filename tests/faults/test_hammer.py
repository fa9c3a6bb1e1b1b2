"""32 clients hammering 8 threads of one real server: every acknowledged turn is in its
thread's transcript exactly once and in order, every refused one got 409 and never ran, no 5xx."""

from __future__ import annotations

import httpx

from tests.conftest import make_settings, real_server
from tests.faults.consistency import assert_thread_consistent
from tests.faults.load import assert_only_accepted_or_busy, hammer

CLIENTS = 32
THREADS = 8
SENDS_PER_CLIENT = 6


async def test_hammering_clients_lose_and_duplicate_nothing(database_url: str) -> None:
    settings = make_settings(database_url)
    async with real_server(settings) as base_url:
        ledgers, responses = await hammer(
            [base_url], clients=CLIENTS, threads=THREADS, sends=SENDS_PER_CLIENT
        )
        assert len(responses) == CLIENTS * SENDS_PER_CLIENT
        assert_only_accepted_or_busy(responses)
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            for thread_id, ledger in ledgers.items():
                await assert_thread_consistent(http, thread_id, ledger)


async def test_wait_mode_queues_every_message_and_runs_each_once(database_url: str) -> None:
    settings = make_settings(database_url, runs={"busy_mode": "wait", "busy_wait_seconds": 30})
    async with real_server(settings) as base_url:
        ledgers, responses = await hammer([base_url], clients=8, threads=4, sends=3)
        assert [r.status_code for r in responses] == [200] * 24, [
            r.text for r in responses if r.status_code != 200
        ]
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            for thread_id, ledger in ledgers.items():
                contents = await assert_thread_consistent(http, thread_id, ledger)
                assert sorted(contents) == sorted(content for content, _ in ledger.acknowledged.values())

"""Two service processes on one database, their clients sending to the same threads: the
per-thread lease lives in PostgreSQL, so the hammer's guarantees hold across processes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.faults.consistency import assert_thread_consistent
from tests.faults.load import assert_only_accepted_or_busy, hammer
from tests.faults.processes import ServiceProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def two_services(database_url: str) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    services = (
        ServiceProcess(database_url, DB_POOL_MAX_SIZE="6"),
        ServiceProcess(database_url, DB_POOL_MAX_SIZE="6"),
    )
    try:
        for service in services:  # both start together: table setup must be safe under a race
            service.start()
        for service in services:
            service.wait_ready()
        yield services
    finally:
        for service in services:
            service.stop()


async def test_two_processes_share_each_thread_without_losing_or_duplicating_turns(
    two_services: tuple[ServiceProcess, ServiceProcess],
) -> None:
    base_urls = [service.base_url for service in two_services]
    ledgers, responses = await hammer(base_urls, clients=16, threads=4, sends=6)
    assert len(responses) == 96
    assert_only_accepted_or_busy(responses)
    # Each process must have served accepted turns, or this did not test two processes at all.
    served = {str(r.request.url).rsplit("/threads/", 1)[0] for r in responses if r.status_code == 200}
    assert served == set(base_urls), served
    for base_url in base_urls:  # both processes see the same, consistent threads
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            for thread_id, ledger in ledgers.items():
                await assert_thread_consistent(http, thread_id, ledger)

"""Many clients sending to a few shared threads, each message unique, and what they were told."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import httpx

from tests.conftest import unique
from tests.faults.consistency import ThreadLedger


async def hammer(
    base_urls: Sequence[str], *, clients: int, threads: int, sends: int
) -> tuple[dict[str, ThreadLedger], list[httpx.Response]]:
    """Each client sends `sends` unique messages, each to a thread picked from a shared set, to
    the base URLs in turn; returns what each thread's clients were told, and every response."""
    thread_ids = [unique(f"hammer{i}") for i in range(threads)]
    ledgers = {thread_id: ThreadLedger() for thread_id in thread_ids}
    responses: list[httpx.Response] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:

        async def client(number: int) -> None:
            rng = random.Random(number)  # a fixed plan per client: the run is reproducible
            for send in range(sends):
                thread_id = rng.choice(thread_ids)
                content = f"msg {number}-{send}"
                base_url = base_urls[(number + send) % len(base_urls)]
                response = await http.post(
                    f"{base_url}/threads/{thread_id}/messages", json={"content": content}
                )
                responses.append(response)
                ledgers[thread_id].record(content, response)
                await asyncio.sleep(rng.uniform(0, 0.02))  # spread the clients out a little

        await asyncio.gather(*(client(n) for n in range(clients)))
    return ledgers, responses


def assert_only_accepted_or_busy(responses: list[httpx.Response]) -> None:
    statuses = [r.status_code for r in responses]
    assert all(s < 500 for s in statuses), [
        (r.status_code, r.text) for r in responses if r.status_code >= 500
    ]
    assert set(statuses) <= {200, 409}, sorted(set(statuses))
    for response in responses:
        if response.status_code == 409:
            assert response.json()["error"]["code"] == "thread_busy", response.text
            assert int(response.headers["retry-after"]) >= 1
    assert 200 in statuses, "not one turn was accepted"

"""The per-process caches are bounded by bytes (CACHE_MAX_BYTES), not only by entries: threads
of long messages cannot grow a process without limit. Measured with tracemalloc, not assumed."""

from __future__ import annotations

import gc
import tracemalloc
import uuid

from langchain_core.messages import AIMessage, HumanMessage

from app.lifespan import open_resources
from app.lru import Lru, approximate_bytes
from app.memory.pool import open_database
from app.memory.transcript import Transcript
from app.services.history_cache import HistoryCache
from app.services.run_model import TurnRequest
from tests.conftest import make_settings, unique

MiB = 1024 * 1024
LONG = 30_000  # characters per message, 20 messages per turn: the review's shape


def _turn_messages(seed: str) -> list[HumanMessage | AIMessage]:
    return [HumanMessage(content=f"{seed}-{i}-" + "x" * LONG) for i in range(20)]


def test_the_estimate_is_close_to_what_tracemalloc_measures() -> None:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        messages = [*_turn_messages("a"), AIMessage(content="short answer", tool_calls=[])]
        measured = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    estimate = approximate_bytes(messages)
    assert 0.8 * measured <= estimate <= 1.25 * measured, (estimate, measured)


def test_an_lru_keeps_within_its_byte_budget() -> None:
    cache: Lru[int, str] = Lru(1000, max_bytes=10_000, weigh=len)
    for i in range(100):
        cache.put(i, "y" * 900)
    assert cache.bytes <= 10_000 and len(cache) == 11
    assert cache.get(99) is not None and cache.get(0) is None  # the least recently used went
    cache.put(1000, "z" * 20_000)  # heavier than the whole budget: not kept, nothing evicted
    assert cache.get(1000) is None and len(cache) == 11


async def test_history_windows_of_150_long_threads_stay_within_the_budget(database_url: str) -> None:
    budget = 8 * MiB
    settings = make_settings(database_url)
    async with open_database(settings.database) as database:
        cache = HistoryCache(Transcript(database.pool), limit=200, max_bytes=budget)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(150):
                turn = _turn_messages(uuid.uuid4().hex)
                cache.remember(uuid.uuid4(), branch=0, end_seq=20, before=[], turn=turn)
                del turn
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    # 150 windows of 600,000 characters (90 MB of text) would be kept by an entry bound alone.
    assert grown <= budget * 1.25, f"the history cache holds {grown / MiB:.1f} MiB"


async def test_checkpoints_of_long_turns_stay_within_the_budget(database_url: str) -> None:
    budget = 4 * MiB
    settings = make_settings(database_url, runs={"cache_max_bytes": budget})
    async with open_resources(settings) as resources:
        saver = resources.checkpointer
        for _ in range(12):
            contents = [("user", f"{uuid.uuid4().hex} " + "x" * LONG) for _ in range(20)]
            request = TurnRequest("tester", unique(), contents)
            await (await resources.runs.submit(request)).result()
        # Twelve turns wrote 7 MB of text in their checkpoints; the cache keeps the budget.
        assert 0 < saver.cache_bytes <= budget

"""One thread to 500 turns, ours vs. the stock LangGraph path, side by side in one run.

    uv run python bench/long_thread.py [--turns 500] [--repeats 3]

Measures, for 200-character messages with the offline model:
* p50 turn latency over the first and the last 50 turns (the growth ratio);
* total bytes the thread takes in all tables (ours: checkpoints, blobs, writes, transcript,
  runs, registry row; stock: checkpoints, blobs, writes);
* ours: the latest 50 messages (`GET /messages?limit=50`) and a 20-checkpoint history page
  (`GET /history?limit=20`), p50 of 50 requests each, over HTTP.

Ours runs through the service over HTTP (uvicorn, keep-alive); stock invokes the same graph
in-process with one shared `AsyncPostgresSaver` (default durability). Medians of --repeats runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg_pool import AsyncConnectionPool

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.agent.graph import build_graph
from app.agent.offline_model import OfflineChatModel
from app.agent.tools import build_local_tools
from bench.http_turns import (
    Service,
    drop_database,
    fresh_database,
    thread_bytes_ours,
    thread_bytes_stock,
)

CONTENT = ("Please summarise the state of our network defences this week, with details. " * 4)[:200]


def p50_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def run_ours(url: str, turns: int) -> dict[str, float]:
    service = Service(url)
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=60) as client:
            latencies = []
            for _ in range(turns):
                start = time.perf_counter()
                (await client.post("/threads/long/messages", json={"content": CONTENT})).raise_for_status()
                latencies.append(time.perf_counter() - start)
            reads: dict[str, list[float]] = {"messages": [], "history": []}
            for _ in range(50):
                for name, path in (
                    ("messages", "/threads/long/messages?limit=50"),
                    ("history", "/threads/long/history?limit=20"),
                ):
                    start = time.perf_counter()
                    (await client.get(path)).raise_for_status()
                    reads[name].append(time.perf_counter() - start)
    finally:
        service.stop()
    return {
        "first50": p50_ms(latencies[:50]),
        "last50": p50_ms(latencies[-50:]),
        "bytes": thread_bytes_ours(url, "long"),
        "messages_page": p50_ms(reads["messages"]),
        "history_page": p50_ms(reads["history"]),
    }


async def run_stock(url: str, turns: int) -> dict[str, float]:
    async with AsyncConnectionPool(
        url, kwargs={"autocommit": True, "prepare_threshold": 0}, open=False
    ) as pool:
        await pool.open(wait=True)
        saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        await saver.setup()
        graph = build_graph(
            model=OfflineChatModel(),
            tools=build_local_tools(pool),
            system_prompt="",
            checkpointer=saver,  # type: ignore[arg-type]
        )
        latencies = []
        for _ in range(turns):
            start = time.perf_counter()
            await graph.ainvoke(
                {"messages": [HumanMessage(CONTENT)]}, {"configurable": {"thread_id": "long-stock"}}
            )
            latencies.append(time.perf_counter() - start)
    return {
        "first50": p50_ms(latencies[:50]),
        "last50": p50_ms(latencies[-50:]),
        "bytes": thread_bytes_stock(url, "long-stock"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ours_runs, stock_runs = [], []
    for _ in range(args.repeats):
        url = fresh_database(args.admin_url)
        try:
            ours_runs.append(asyncio.run(run_ours(url, args.turns)))
            stock_runs.append(asyncio.run(run_stock(url, args.turns)))
        finally:
            drop_database(args.admin_url, url)

    def med(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    print(f"one thread, {args.turns} turns of 200-character messages; medians of {args.repeats} runs")
    print()
    print("| | ours | stock |")
    print("|---|---:|---:|")
    for label, key in (("p50 turn, turns 1-50 (ms)", "first50"), ("p50 turn, last 50 turns (ms)", "last50")):
        print(f"| {label} | {med(ours_runs, key):.2f} | {med(stock_runs, key):.2f} |")
    print(
        f"| growth, last 50 / first 50 | {med(ours_runs, 'last50') / med(ours_runs, 'first50'):.2f}x"
        f" | {med(stock_runs, 'last50') / med(stock_runs, 'first50'):.2f}x |"
    )
    print(f"| bytes in all tables | {med(ours_runs, 'bytes'):,.0f} | {med(stock_runs, 'bytes'):,.0f} |")
    print(f"| stock bytes / ours | {med(stock_runs, 'bytes') / med(ours_runs, 'bytes'):.1f}x | |")
    print(f"| latest 50 messages, HTTP p50 (ms) | {med(ours_runs, 'messages_page'):.2f} | |")
    print(f"| 20-checkpoint history page, HTTP p50 (ms) | {med(ours_runs, 'history_page'):.2f} | |")


if __name__ == "__main__":
    main()

"""One thread to 500 turns, ours vs. the stock LangGraph path, side by side in one run.

    uv run python bench/long_thread.py [--turns 500] [--repeats 3]
    uv run python bench/long_thread.py --graph examples/langgraph.json:support [--turns 500]

Measures, for 200-character messages with the offline model:
* p50 turn latency over the first and the last 50 turns (the growth ratio);
* total bytes the thread takes in all tables (ours: checkpoints, blobs, writes, transcript,
  runs, registry row; stock: checkpoints, blobs, writes);
* ours: the latest 50 messages (`GET /messages?limit=50`) and a 20-checkpoint history page
  (`GET /history?limit=20`), p50 of 50 requests each, over HTTP.

Ours runs through the service over HTTP (uvicorn, keep-alive); stock invokes the same graph
in-process with one shared `AsyncPostgresSaver` (default durability). Medians of --repeats runs.

With `--graph <langgraph.json>:<name>`, a graph of your own (the example: a `create_agent` graph
whose `messages` hold the whole conversation) runs in-process on our saver and on the stock one,
the same driver and the same default durability for both, so only the saver differs; every fifth
turn opens a ticket (a tool call). It prints the same turn latencies and bytes (checkpoints, blobs,
writes: the saver's tables). The long thread's last 50 turns alternate with the first 50 turns of
a new thread, and the growth on the last line compares those two, turn by turn under the same
conditions (the machine's speed drifts over the minutes between a thread's first turns and its
last; the sequential ratio is printed too). It also prints the time to read the latest state and
a 20-checkpoint history page (`aget_state`, `aget_state_history(limit=20)`) by a saver that kept
nothing in memory, p50 of 20 reads each.

The last line of either mode reads `bytes stock/ours: <r>x; growth ours: <g>x, stock: <s>x`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg_pool import AsyncConnectionPool

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.agent.graph import build_graph
from app.agent.graph_loader import graph_sources, load_graph
from app.agent.offline_model import OfflineChatModel
from app.agent.tools import build_local_tools
from app.memory.checkpointer import PooledPostgresSaver
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


def graph_turn(number: int) -> str:
    """Every fifth turn opens a ticket (a tool call: four messages); the others two."""
    if number % 5 == 4:
        return f"open a ticket: laptop {number} will not connect to the VPN after the update"
    return CONTENT


async def run_graph(url: str, spec: str, turns: int, *, ours: bool) -> dict[str, float]:
    """`spec` (`<langgraph.json>:<name>`) to `turns` turns on one thread, in-process, on our
    saver or the stock one; then cold reads of its latest state and a 20-checkpoint page."""
    config_file, _, name = spec.rpartition(":")
    (source,) = [s for s in graph_sources(Path(config_file), None) if s.name == name]
    thread = f"long-{name}-{'ours' if ours else 'stock'}"
    async with AsyncConnectionPool(
        url, kwargs={"autocommit": True, "prepare_threshold": 0}, open=False
    ) as pool:
        await pool.open(wait=True)

        def saver() -> AsyncPostgresSaver:
            return PooledPostgresSaver(pool) if ours else AsyncPostgresSaver(pool)  # type: ignore[arg-type]

        writer = saver()
        await writer.setup()
        graph = load_graph(source, writer).static
        assert graph is not None, "a graph factory: give a compiled graph or a StateGraph"
        config: RunnableConfig = {"configurable": {"thread_id": thread}}

        async def turn(at: RunnableConfig, number: int) -> float:
            start = time.perf_counter()
            await graph.ainvoke({"messages": [HumanMessage(graph_turn(number))]}, at)
            return time.perf_counter() - start

        window = min(50, turns // 2)
        latencies = [await turn(config, number) for number in range(turns - window)]
        # The last turns of the long thread alternate with the first turns of a new one: the
        # machine's speed drifts over a run (other tenants), and turn by turn both see the same.
        fresh: RunnableConfig = {"configurable": {"thread_id": f"{thread}-fresh"}}
        interleaved: list[float] = []
        for number in range(window):
            latencies.append(await turn(config, turns - window + number))
            interleaved.append(await turn(fresh, number))
        reads: dict[str, list[float]] = {"state": [], "history": [], "state_warm": [], "history_warm": []}
        for _ in range(20):
            start = time.perf_counter()
            await graph.aget_state(config)
            reads["state_warm"].append(time.perf_counter() - start)
            start = time.perf_counter()
            page = [s async for s in graph.aget_state_history(config, limit=20)]
            reads["history_warm"].append(time.perf_counter() - start)
            reader = graph.copy(update={"checkpointer": saver()})  # nothing kept in memory
            start = time.perf_counter()
            await reader.aget_state(config)
            reads["state"].append(time.perf_counter() - start)
            reader = graph.copy(update={"checkpointer": saver()})
            start = time.perf_counter()
            page = [s async for s in reader.aget_state_history(config, limit=20)]
            reads["history"].append(time.perf_counter() - start)
            assert len(page) == 20
    return {
        "first50": p50_ms(latencies[:window]),
        "last50": p50_ms(latencies[-window:]),
        "first50_interleaved": p50_ms(interleaved),
        "bytes": thread_bytes_stock(url, thread),
        "state_read": p50_ms(reads["state"]),
        "history_page": p50_ms(reads["history"]),
        "state_warm": p50_ms(reads["state_warm"]),
        "history_warm": p50_ms(reads["history_warm"]),
    }


async def run_graph_alone(spec: str, turns: int) -> dict[str, float]:
    """The graph's own cost, no saver at all: each turn is given the whole conversation so far
    (what reducing it costs grows with the thread whatever stores it)."""
    config_file, _, name = spec.rpartition(":")
    (source,) = [s for s in graph_sources(Path(config_file), None) if s.name == name]
    loaded = load_graph(source, InMemorySaver()).static
    assert loaded is not None
    graph = loaded.copy(update={"checkpointer": None})
    state: dict[str, Any] = {"messages": []}
    latencies = []
    for number in range(turns):
        start = time.perf_counter()
        said = HumanMessage(graph_turn(number))
        state = await graph.ainvoke({**state, "messages": [*state["messages"], said]})
        latencies.append(time.perf_counter() - start)
    return {"first50": p50_ms(latencies[:50]), "last50": p50_ms(latencies[-50:])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--graph", help="<langgraph.json>:<name>: that graph on our saver and the stock one")
    args = parser.parse_args()
    ours_runs, stock_runs, alone_runs = [], [], []
    for _ in range(args.repeats):
        url = fresh_database(args.admin_url)
        try:
            if args.graph:
                ours_runs.append(asyncio.run(run_graph(url, args.graph, args.turns, ours=True)))
                stock_runs.append(asyncio.run(run_graph(url, args.graph, args.turns, ours=False)))
                alone_runs.append(asyncio.run(run_graph_alone(args.graph, args.turns)))
            else:
                ours_runs.append(asyncio.run(run_ours(url, args.turns)))
                stock_runs.append(asyncio.run(run_stock(url, args.turns)))
        finally:
            drop_database(args.admin_url, url)

    def med(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    subject = f"graph {args.graph}, in-process on each saver" if args.graph else "200-character messages"
    print(f"one thread, {args.turns} turns ({subject}); medians of {args.repeats} runs")
    print()
    print("| | ours | stock |")
    print("|---|---:|---:|")
    for label, key in (("p50 turn, turns 1-50 (ms)", "first50"), ("p50 turn, last 50 turns (ms)", "last50")):
        print(f"| {label} | {med(ours_runs, key):.2f} | {med(stock_runs, key):.2f} |")
    growth_ours = med(ours_runs, "last50") / med(ours_runs, "first50")
    growth_stock = med(stock_runs, "last50") / med(stock_runs, "first50")
    print(f"| growth, last 50 / first 50 | {growth_ours:.2f}x | {growth_stock:.2f}x |")
    if args.graph:
        key = "first50_interleaved"
        print(
            f"| p50 turn, turns 1-50 of a new thread, alternating with the last 50 (ms) |"
            f" {med(ours_runs, key):.2f} | {med(stock_runs, key):.2f} |"
        )
        growth_ours = med(ours_runs, "last50") / med(ours_runs, key)
        growth_stock = med(stock_runs, "last50") / med(stock_runs, key)
        print(f"| growth, last 50 / first 50 alternating | {growth_ours:.2f}x | {growth_stock:.2f}x |")
    ratio = med(stock_runs, "bytes") / med(ours_runs, "bytes")
    print(f"| bytes in all tables | {med(ours_runs, 'bytes'):,.0f} | {med(stock_runs, 'bytes'):,.0f} |")
    if args.graph:
        for label, key in (
            ("latest state, cold read, p50 (ms)", "state_read"),
            ("20-checkpoint history page, cold read, p50 (ms)", "history_page"),
            ("latest state, read by the writer, p50 (ms)", "state_warm"),
            ("20-checkpoint history page, read by the writer, p50 (ms)", "history_warm"),
        ):
            print(f"| {label} | {med(ours_runs, key):.2f} | {med(stock_runs, key):.2f} |")
        first, last = med(alone_runs, "first50"), med(alone_runs, "last50")
        print()
        print(
            f"the graph alone, no saver: p50 turn {first:.2f} ms (turns 1-50),"
            f" {last:.2f} ms (last 50), {last / first:.2f}x"
        )
    else:
        print(f"| latest 50 messages, HTTP p50 (ms) | {med(ours_runs, 'messages_page'):.2f} | |")
        print(f"| 20-checkpoint history page, HTTP p50 (ms) | {med(ours_runs, 'history_page'):.2f} | |")
    print()
    print(f"bytes stock/ours: {ratio:.1f}x; growth ours: {growth_ours:.2f}x, stock: {growth_stock:.2f}x")


if __name__ == "__main__":
    main()

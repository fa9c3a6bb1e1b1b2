"""Turns through HTTP vs. the stock LangGraph path, side by side, in one run.

    uv run python bench/http_turns.py [--repeats 3] [--turns 200] [--admin-url postgresql://...]

* ours:  the service (`serve`, 1 and 2 workers) over HTTP with keep-alive, offline model.
* stock: the same graph invoked in-process with one shared stock `AsyncPostgresSaver` on a pool
  (default durability), which is what users of the library would otherwise run.
* floor: a raw durable single-row upsert round trip on the same server.

Prints medians over `--repeats` runs. It is a benchmark, not a test: it asserts nothing.
Each run uses a fresh database on the server at --admin-url (default: 127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import psycopg
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.agent.graph import build_graph  # noqa: E402
from app.agent.offline_model import OfflineChatModel  # noqa: E402
from app.agent.prompt import DEFAULT_SYSTEM_PROMPT, render_system_prompt  # noqa: E402
from app.agent.tools import build_local_tools  # noqa: E402
from bench.lean_client import LeanConnection  # noqa: E402

QUESTIONS = ("Who committed the latest malware threat?", "What was their IP address?")


def fresh_database(admin_url: str) -> str:
    name = f"lma_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(admin_url)
    params["dbname"] = name
    return make_conninfo(**params)  # type: ignore[arg-type]


def drop_database(admin_url: str, url: str) -> None:
    name = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def timed_turns(
    threads: int, turns_per_thread: int, run_turn: Callable[[str, str], Awaitable[None]]
) -> tuple[float, list[float]]:
    """Run `threads` threads concurrently, each `turns_per_thread` sequential turns."""
    latencies: list[float] = []

    async def one_thread() -> None:
        thread_id = f"b-{uuid.uuid4().hex[:10]}"
        for i in range(turns_per_thread):
            start = time.perf_counter()
            await run_turn(thread_id, QUESTIONS[i % 2])
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*[one_thread() for _ in range(threads)])
    elapsed = time.perf_counter() - start
    return threads * turns_per_thread / elapsed, latencies


class Service:
    """`serve` as a process; `root`: a checkout of the service (another revision, side by side)."""

    def __init__(
        self, database_url: str, *, workers: int = 1, root: Path = ROOT, env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "PORT": str(self.port),
            "LOG_LEVEL": "warning",
            "DB_POOL_MAX_SIZE": "20",
            # Like for like with the stock path's graph (no long-term memory); a server without
            # pgvector could not start it anyway. bench/memory_search.py measures its cost.
            "LONG_TERM_MEMORY": "false",
            **(env or {}),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--workers", str(workers)],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(300):
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("service did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


async def bench_ours(
    database_url: str, concurrency: list[int], turns: int, *, workers: int = 1
) -> dict[int, tuple[float, float]]:
    service = Service(database_url, workers=workers)
    results: dict[int, tuple[float, float]] = {}
    connections: dict[str, LeanConnection] = {}
    try:

        async def run_turn(thread_id: str, content: str) -> None:
            # One keep-alive connection per thread, like one client per conversation.
            conn = connections.setdefault(thread_id, LeanConnection("127.0.0.1", service.port))
            status, body = await conn.post_json(f"/threads/{thread_id}/messages", {"content": content})
            if status != 200:
                raise RuntimeError(f"{status}: {body[:200]!r}")

        await timed_turns(4, 5, run_turn)  # warm-up
        for n in concurrency:
            rate, latencies = await timed_turns(n, max(2, turns // n), run_turn)
            results[n] = (rate, statistics.median(latencies))
    finally:
        for conn in connections.values():
            await conn.close()
        service.stop()
    return results


async def bench_stock(
    database_url: str, concurrency: list[int], turns: int
) -> dict[int, tuple[float, float]]:
    results: dict[int, tuple[float, float]] = {}
    async with AsyncConnectionPool(
        database_url, max_size=20, kwargs={"autocommit": True, "prepare_threshold": 0}, open=False
    ) as pool:
        await pool.open(wait=True)
        saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        await saver.setup()
        tools = build_local_tools(pool)  # type: ignore[arg-type]
        graph = build_graph(
            model=OfflineChatModel(),
            tools=tools,
            system_prompt=render_system_prompt(DEFAULT_SYSTEM_PROMPT, tools),
            checkpointer=saver,
        )

        async def run_turn(thread_id: str, content: str) -> None:
            await graph.ainvoke(
                {"messages": [HumanMessage(content)]}, {"configurable": {"thread_id": thread_id}}
            )

        await timed_turns(4, 5, run_turn)
        for n in concurrency:
            rate, latencies = await timed_turns(n, max(2, turns // n), run_turn)
            results[n] = (rate, statistics.median(latencies))
    return results


def floor_upsert(database_url: str, count: int = 500) -> float:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_floor (k int PRIMARY KEY, v text)")
        samples = []
        for i in range(count):
            start = time.perf_counter()
            conn.execute(
                "INSERT INTO bench_floor VALUES (%s, %s) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                (i % 50, "x" * 200),
            )
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def thread_bytes_ours(database_url: str, thread_id: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "WITH t AS (SELECT thread_key FROM lma_threads WHERE thread_id = %s)"
            " SELECT (SELECT coalesce(sum(pg_column_size(c.*)), 0) FROM checkpoints c, t"
            "         WHERE c.thread_id = t.thread_key::text)"
            "  + (SELECT coalesce(sum(pg_column_size(b.*)), 0) FROM checkpoint_blobs b, t"
            "         WHERE b.thread_id = t.thread_key::text)"
            "  + (SELECT coalesce(sum(pg_column_size(w.*)), 0) FROM checkpoint_writes w, t"
            "         WHERE w.thread_id = t.thread_key::text)"
            "  + (SELECT coalesce(sum(pg_column_size(m.*)), 0) FROM lma_messages m, t"
            "         WHERE m.thread_key = t.thread_key)"
            "  + (SELECT coalesce(sum(pg_column_size(r.*)), 0) FROM lma_runs r, t"
            "         WHERE r.thread_key = t.thread_key)"
            "  + (SELECT coalesce(sum(pg_column_size(th.*)), 0) FROM lma_threads th WHERE thread_id = %s)",
            (thread_id, thread_id),
        ).fetchone()
    return int(row[0]) if row else 0


def thread_bytes_stock(database_url: str, thread_id: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT (SELECT coalesce(sum(pg_column_size(c.*)), 0) FROM checkpoints c WHERE thread_id = %s)"
            " + (SELECT coalesce(sum(pg_column_size(b.*)), 0) FROM checkpoint_blobs b WHERE thread_id = %s)"
            " + (SELECT coalesce(sum(pg_column_size(w.*)), 0) FROM checkpoint_writes w WHERE thread_id = %s)",
            (thread_id, thread_id, thread_id),
        ).fetchone()
    return int(row[0]) if row else 0


async def bench_bytes(database_url: str, turns: int) -> tuple[int, int]:
    content = ("Please summarise the state of our network defences this week. " * 4)[:200]
    service = Service(database_url)
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=60) as client:
            for _ in range(turns):
                (
                    await client.post("/threads/bytes-ours/messages", json={"content": content})
                ).raise_for_status()
    finally:
        service.stop()
    ours = thread_bytes_ours(database_url, "bytes-ours")
    async with AsyncConnectionPool(database_url, kwargs={"autocommit": True}, open=False) as pool:
        await pool.open(wait=True)
        saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        tools = build_local_tools(pool)  # type: ignore[arg-type]
        graph = build_graph(model=OfflineChatModel(), tools=tools, system_prompt="", checkpointer=saver)
        for _ in range(turns):
            await graph.ainvoke(
                {"messages": [HumanMessage(content)]}, {"configurable": {"thread_id": "bytes-stock"}}
            )
    return ours, thread_bytes_stock(database_url, "bytes-stock")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--turns", type=int, default=192, help="turns per measurement")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--workers", default="1,2", help="uvicorn worker counts to measure")
    args = parser.parse_args()
    concurrency = [int(c) for c in args.concurrency.split(",")]
    worker_counts = [int(w) for w in args.workers.split(",")]

    ours_runs: dict[int, list[dict[int, tuple[float, float]]]] = {w: [] for w in worker_counts}
    stock_runs: list[dict[int, tuple[float, float]]] = []
    floors: list[float] = []
    for _ in range(args.repeats):
        url = fresh_database(args.admin_url)
        try:
            for workers in worker_counts:
                ours_runs[workers].append(
                    asyncio.run(bench_ours(url, concurrency, args.turns, workers=workers))
                )
            stock_runs.append(asyncio.run(bench_stock(url, concurrency, args.turns)))
            floors.append(floor_upsert(url))
        finally:
            drop_database(args.admin_url, url)
    url = fresh_database(args.admin_url)
    try:
        ours_bytes, stock_bytes = asyncio.run(bench_bytes(url, 100))
    finally:
        drop_database(args.admin_url, url)

    def med(runs: list[dict[int, tuple[float, float]]], n: int, i: int) -> float:
        return statistics.median(r[n][i] for r in runs)

    floor = statistics.median(floors)
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"medians of {args.repeats} runs, {args.turns} turns per measurement, offline model")
    print(f"raw durable upsert round trip (floor): {floor * 1000:.3f} ms")
    print()
    print("| threads | path | turns/s | vs stock | p50 ms | p50 in floor round trips |")
    print("|---:|---|---:|---:|---:|---:|")
    for n in concurrency:
        s_rate, s_p50 = med(stock_runs, n, 0), med(stock_runs, n, 1)
        print(
            f"| {n} | stock (in-process, no HTTP) | {s_rate:.1f} | 1.00x | {s_p50 * 1000:.1f} |"
            f" {s_p50 / floor:.0f} |"
        )
        for workers in worker_counts:
            o_rate, o_p50 = med(ours_runs[workers], n, 0), med(ours_runs[workers], n, 1)
            print(
                f"| {n} | ours, HTTP, {workers} worker{'s' if workers > 1 else ''} | {o_rate:.1f} |"
                f" {o_rate / s_rate:.2f}x | {o_p50 * 1000:.1f} | {o_p50 / floor:.0f} |"
            )
    print()
    print("per-run ratios vs stock (each run measures both paths on a fresh database):")
    for n in concurrency:
        for workers in worker_counts:
            ratios = [o[n][0] / st[n][0] for o, st in zip(ours_runs[workers], stock_runs, strict=True)]
            listed = " ".join(f"{r:.2f}x" for r in ratios)
            print(f"  {n} threads, {workers} worker{'s' if workers > 1 else ''}: {listed}")
    print()
    print(
        f"bytes of one thread after 100 turns (200-character messages): ours {ours_bytes:,},"
        f" stock {stock_bytes:,} ({stock_bytes / max(ours_bytes, 1):.1f}x less)"
    )


if __name__ == "__main__":
    main()

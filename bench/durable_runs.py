"""The cost of durable runs, side by side in one run.

    uv run python bench/durable_runs.py [--base 7a9088d] [--repeats 3] [--turns 192]

* turns/s at 16 threads, JSON and SSE, of this checkout against `--base` (the revision before
  durable runs: no run resource, no event log), served from a git worktree of that revision,
  and against the stock LangGraph path (in-process, as `http_turns.py` measures it);
* event delivery across processes: the same events streamed from the process that runs the
  turn and from a second process on the same database; the second one's extra delay per event
  (p50, p99) is what the log, `LISTEN/NOTIFY` and the catch-up read cost;
* cancel-to-free: from sending a cancel (to the other process) to the thread accepting a new
  run, and cancel with `wait=true` until the run has stopped (p50, p99).

A benchmark, not a test: it asserts nothing. Fresh databases on --admin-url (127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.http_turns import (  # noqa: E402
    QUESTIONS,
    Service,
    bench_stock,
    drop_database,
    fresh_database,
    timed_turns,
)
from bench.lean_client import LeanConnection  # noqa: E402

THREADS = 16


async def turns_per_second(service: Service, turns: int, *, sse: bool) -> float:
    connections: dict[str, LeanConnection] = {}
    accept = "text/event-stream" if sse else "application/json"

    async def run_turn(thread_id: str, content: str) -> None:
        conn = connections.setdefault(thread_id, LeanConnection("127.0.0.1", service.port))
        status, body = await conn.post_json(
            f"/threads/{thread_id}/messages", {"content": content}, accept=accept
        )
        if status != 200 or (sse and b"event: done" not in body):
            raise RuntimeError(f"{status}: {body[-300:]!r}")

    try:
        await timed_turns(4, 5, run_turn)  # warm-up
        rate, _ = await timed_turns(THREADS, max(2, turns // THREADS), run_turn)
    finally:
        for conn in connections.values():
            await conn.close()
    return rate


async def arrivals(client: httpx.AsyncClient, url: str, into: dict[str, float]) -> None:
    async with client.stream("GET", url) as response:
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                into[line[4:]] = time.perf_counter()


async def delivery_delays(here: Service, there: Service, runs: int) -> list[float]:
    """Per event: arrival at a joiner on another process minus arrival at one on the executor's."""
    delays: list[float] = []
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(runs):
            thread_id = f"lat-{uuid.uuid4().hex[:8]}"
            started = await client.post(
                f"{here.url}/threads/{thread_id}/messages", json={"content": QUESTIONS[0], "background": True}
            )
            path = f"/threads/{thread_id}/runs/{started.json()['run_id']}/stream"
            local: dict[str, float] = {}
            remote: dict[str, float] = {}
            await asyncio.gather(
                arrivals(client, here.url + path, local), arrivals(client, there.url + path, remote)
            )
            # Events both saw live (the first few may predate the joins and arrive as a catch-up).
            delays += [remote[i] - local[i] for i in local if i in remote][3:]
    return delays


async def cancel_latencies(here: Service, there: Service, runs: int) -> tuple[list[float], list[float]]:
    free: list[float] = []
    stopped: list[float] = []
    async with httpx.AsyncClient(timeout=60) as client:
        for i in range(runs):
            thread_id = f"cancel-{uuid.uuid4().hex[:8]}"
            run = (
                await client.post(
                    f"{here.url}/threads/{thread_id}/messages",
                    json={"content": QUESTIONS[0], "background": True},
                )
            ).json()
            async with client.stream(
                "GET", f"{there.url}/threads/{thread_id}/runs/{run['run_id']}/stream"
            ) as s:
                async for line in s.aiter_lines():
                    if line == "event: token":
                        break
            wait = i % 2 == 1
            start = time.perf_counter()
            await client.post(
                f"{there.url}/threads/{thread_id}/runs/{run['run_id']}/cancel",
                params={"wait": str(wait).lower()},
            )
            if wait:
                stopped.append(time.perf_counter() - start)
                continue
            while (
                await client.post(
                    f"{there.url}/threads/{thread_id}/messages", json={"content": "hello", "background": True}
                )
            ).status_code != 202:
                pass
            free.append(time.perf_counter() - start)
    return free, stopped


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--base", default="7a9088d", help="the revision to compare with")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--turns", type=int, default=192)
    parser.add_argument("--latency-runs", type=int, default=10)
    args = parser.parse_args()

    rates: dict[str, list[float]] = {
        k: [] for k in ("base json", "ours json", "base sse", "ours sse", "stock")
    }
    with tempfile.TemporaryDirectory(prefix="lma-base-") as folder:
        base_root = Path(folder) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(base_root), args.base], cwd=ROOT, check=True
        )
        try:
            for repeat in range(args.repeats):
                # Alternate which goes first, so drift on the machine does not favour one.
                order = [("base", base_root), ("ours", ROOT)]
                for name, root in order if repeat % 2 == 0 else reversed(order):
                    url = fresh_database(args.admin_url)
                    try:
                        service = Service(url, root=root)
                        try:
                            rates[f"{name} json"].append(
                                asyncio.run(turns_per_second(service, args.turns, sse=False))
                            )
                            rates[f"{name} sse"].append(
                                asyncio.run(turns_per_second(service, args.turns, sse=True))
                            )
                        finally:
                            service.stop()
                        if name == "ours":
                            # On the database the service set up (its demo tables), as http_turns.py.
                            stock = asyncio.run(bench_stock(url, [THREADS], args.turns))
                            rates["stock"].append(stock[THREADS][0])
                    finally:
                        drop_database(args.admin_url, url)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base_root)], cwd=ROOT, check=False)

    url = fresh_database(args.admin_url)
    try:
        env = {"OFFLINE_TOKEN_DELAY_MS": "5"}
        here, there = Service(url, env=env), Service(url, env=env)
        try:
            delays = asyncio.run(delivery_delays(here, there, args.latency_runs))
            free, stopped = asyncio.run(cancel_latencies(here, there, 2 * args.latency_runs))
        finally:
            here.stop()
            there.stop()
    finally:
        drop_database(args.admin_url, url)

    med = {k: statistics.median(v) for k, v in rates.items()}
    print(
        f"medians of {args.repeats} runs, {THREADS} threads, {args.turns} turns per measurement,"
        " offline model"
    )
    print()
    print("| path | turns/s | vs base | vs stock |")
    print("|---|---:|---:|---:|")
    print(f"| stock (in-process, no HTTP) | {med['stock']:.1f} | | 1.00x |")
    for kind in ("json", "sse"):
        for name in ("base", "ours"):
            rate = med[f"{name} {kind}"]
            print(
                f"| {name} ({args.base if name == 'base' else 'durable runs'}), {kind.upper()} | {rate:.1f} |"
                f" {rate / med[f'base {kind}']:.2f}x | {rate / med['stock']:.2f}x |"
            )
    print()
    print(
        "per-run turns/s: " + "; ".join(f"{k}: " + " ".join(f"{r:.0f}" for r in v) for k, v in rates.items())
    )
    print()
    print(
        f"event delivery to a joiner on another process, extra delay per event ({len(delays)} events):"
        f" p50 {pct(delays, 0.5) * 1000:.1f} ms, p99 {pct(delays, 0.99) * 1000:.1f} ms"
    )
    print(
        "cancel to thread free (cancel sent on the other process, then a new run accepted),"
        f" {len(free)} runs:"
        f" p50 {pct(free, 0.5) * 1000:.1f} ms, p99 {pct(free, 0.99) * 1000:.1f} ms"
    )
    print(
        f"cancel with wait=true until the run stopped, {len(stopped)} runs:"
        f" p50 {pct(stopped, 0.5) * 1000:.1f} ms, p99 {pct(stopped, 0.99) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()

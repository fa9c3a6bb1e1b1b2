"""The Agent Protocol path against the native route, side by side in one run.

    uv run python bench/protocol_path.py [--repeats 3] [--turns 192]

At 16 threads, on one service and one fresh database per measurement: native JSON turns
(`POST /threads/{id}/messages`) against `runs.wait` (`POST /lg/threads/{id}/runs/wait`, which
answers the thread's whole `values`), and native SSE against `runs.stream` in `values` +
`messages-tuple`. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.http_turns import Service, drop_database, fresh_database, timed_turns  # noqa: E402
from bench.lean_client import LeanConnection  # noqa: E402

THREADS = 16
SSE = "text/event-stream"


def path_runner(
    service: Service, kind: str
) -> tuple[Callable[[str, str], Awaitable[None]], list[LeanConnection]]:
    connections: dict[str, LeanConnection] = {}

    async def run_turn(thread_id: str, content: str) -> None:
        conn = connections.setdefault(thread_id, LeanConnection("127.0.0.1", service.port))
        message = {"role": "user", "content": content}
        protocol = {"assistant_id": "agent", "input": {"messages": [message]}, "if_not_exists": "create"}
        if kind == "native json":
            status, body = await conn.post_json(f"/threads/{thread_id}/messages", {"content": content})
        elif kind == "native sse":
            status, body = await conn.post_json(
                f"/threads/{thread_id}/messages", {"content": content}, accept=SSE
            )
        elif kind == "runs.wait":
            status, body = await conn.post_json(f"/lg/threads/{thread_id}/runs/wait", protocol)
        else:
            modes = {**protocol, "stream_mode": ["values", "messages-tuple"]}
            status, body = await conn.post_json(f"/lg/threads/{thread_id}/runs/stream", modes, accept=SSE)
        if status != 200 or b"event: error" in body:
            raise RuntimeError(f"{kind} {status}: {body[-300:]!r}")

    return run_turn, list(connections.values())


async def measure(service: Service, kind: str, turns: int) -> float:
    run_turn, _ = path_runner(service, kind)
    await timed_turns(4, 5, run_turn)
    rate, _ = await timed_turns(THREADS, max(2, turns // THREADS), run_turn)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--turns", type=int, default=192)
    args = parser.parse_args()
    kinds = ["native json", "runs.wait", "native sse", "runs.stream"]
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    for repeat in range(args.repeats):
        for kind in kinds if repeat % 2 == 0 else list(reversed(kinds)):
            url = fresh_database(args.admin_url)
            try:
                service = Service(url)
                try:
                    rates[kind].append(asyncio.run(measure(service, kind, args.turns)))
                finally:
                    service.stop()
            finally:
                drop_database(args.admin_url, url)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"medians of {args.repeats} runs, {THREADS} threads, {args.turns} turns per measurement")
    print()
    print("| path | turns/s | vs native |")
    print("|---|---:|---:|")
    for kind, native in (
        ("native json", "native json"),
        ("runs.wait", "native json"),
        ("native sse", "native sse"),
        ("runs.stream", "native sse"),
    ):
        print(f"| {kind} | {med[kind]:.1f} | {med[kind] / med[native]:.2f}x |")
    print()
    print(
        "per-run turns/s: " + "; ".join(f"{k}: " + " ".join(f"{r:.0f}" for r in v) for k, v in rates.items())
    )


if __name__ == "__main__":
    main()

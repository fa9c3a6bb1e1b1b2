"""Long-term memory: search latency at 10k and 100k memories (one user, and spread over 1,000
users), and turn latency with memory on vs off, side by side, in one run.

    uv run python bench/memory_search.py [--sizes 10000,100000] [--searches 200] [--turns 100]
                                         [--admin-url postgresql://...]

* search: `asearch(("memories",), query=...)` on one owner's scoped store (the agent's recall and
  `POST /store/items/search` do exactly this), offline lexical embedder (384 dimensions), HNSW
  index. p50/p99 over --searches queries; each query is the text of one of that owner's
  memories, and "found" is the share of searches whose first result is that memory (how often
  the index still finds it when the owner's rows are a small part of the table).
* turns: the service (`serve`) over HTTP, one new thread per turn, offline model, memory off vs
  on (the owner has 1,000 memories; each turn recalls), p50/p99 of --turns turns each.

Memories are loaded in bulk (COPY) with the index built after, to keep the run short. The
server is --admin-url if it has pgvector, else an embedded PostgreSQL started for the run.
A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg
from psycopg_pool import AsyncConnectionPool

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.agent.embeddings import OFFLINE_DIMS, LexicalEmbeddings  # noqa: E402
from app.memory.longterm import ROOT as STORE_ROOT  # noqa: E402
from app.memory.longterm import LongTermStore, owner_label  # noqa: E402
from app.memory.longterm_schema import VECTOR_INDEX  # noqa: E402
from bench.http_turns import Service, drop_database, fresh_database  # noqa: E402

_VOCABULARY = (
    "office london paris berlin vpn gateway backup nightly escalation soc number manager desk floor"
    " laptop password rotation incident report template team meeting tuesday friday budget travel"
    " approval printer badge access firewall rule change window release freeze oncall rota pager"
)
WORDS = tuple(_VOCABULARY.split())


def memory_text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 12)))


def ms(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def load(url: str, owners: list[str], per_owner: int, rng: random.Random) -> dict[str, list[tuple[str, str]]]:
    """Add `per_owner` memories to each owner (COPY), return each owner's (key, text) pairs."""
    embedder = LexicalEmbeddings()
    added: dict[str, list[tuple[str, str]]] = {}
    with psycopg.connect(url) as conn:
        # Built once after the load (`reindex`): kept up row by row, the load takes far longer.
        conn.execute("DROP INDEX IF EXISTS store_vectors_embedding_idx")
        with conn.cursor() as cur, cur.copy("COPY store (prefix, key, value) FROM STDIN") as copy:
            for owner in owners:
                prefix = f"{STORE_ROOT}.{owner_label(owner)}.memories"
                for _ in range(per_owner):
                    key, text = uuid.uuid4().hex, memory_text(rng)
                    added.setdefault(owner, []).append((key, text))
                    copy.write_row((prefix, key, psycopg.types.json.Jsonb({"content": text})))
        with (
            conn.cursor() as cur,
            cur.copy("COPY store_vectors (prefix, key, field_name, embedding) FROM STDIN") as copy,
        ):
            for owner, items in added.items():
                prefix = f"{STORE_ROOT}.{owner_label(owner)}.memories"
                for key, text in items:
                    vector = "[" + ",".join(f"{v:.5f}" for v in embedder.embed_query(text)) + "]"
                    copy.write_row((prefix, key, "content", vector))
    return added


def reindex(url: str) -> float:
    start = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute(VECTOR_INDEX)
        conn.execute("ANALYZE store")
        conn.execute("ANALYZE store_vectors")
    return time.perf_counter() - start


async def search_latency(
    url: str, memories: dict[str, list[tuple[str, str]]], owner: str, searches: int, rng: random.Random
) -> tuple[float, float, float]:
    async with AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool:
        store = LongTermStore(
            pool, embeddings=LexicalEmbeddings(), dims=OFFLINE_DIMS, default_ttl_minutes=None
        )
        scoped = store.for_owner(owner)
        samples, found = [], 0
        for _ in range(searches):
            _, text = rng.choice(memories[owner])
            start = time.perf_counter()
            items = await scoped.asearch(("memories",), query=text, limit=5)
            samples.append(time.perf_counter() - start)
            # The same text may be several memories: any with the best score counts.
            found += bool(items) and any(i.value["content"] == text for i in items[:1])
        await store.close()
    return ms(samples, 0.5), ms(samples, 0.99), found / searches


async def bench_search(url: str, sizes: list[int], searches: int) -> list[str]:
    rows = []
    for layout, owners in (("1 user", ["bench-user"]), ("1,000 users", [f"user-{i}" for i in range(1000)])):
        rng = random.Random(7)
        loaded: dict[str, list[tuple[str, str]]] = {}
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("TRUNCATE store CASCADE")
        total = 0
        for size in sizes:
            for owner, items in load(url, owners, (size - total) // len(owners), rng).items():
                loaded.setdefault(owner, []).extend(items)
            total = size
            build = reindex(url)
            p50, p99, found = await search_latency(url, loaded, owners[0], searches, rng)
            mine = len(loaded[owners[0]])
            rows.append(
                f"| {layout} | {size:,} | {mine:,} | {p50:.1f} | {p99:.1f} | {found:.0%} | {build:.1f} |"
            )
            print(rows[-1], flush=True)
    return rows


def turn_latency(url: str, *, memory: bool, turns: int) -> tuple[float, float, str]:
    env = {"LONG_TERM_MEMORY": "true" if memory else "false", "LOCAL_OWNER": "bench-turns"}
    service = Service(url, env=env)
    try:
        samples = []
        with httpx.Client(base_url=service.url, timeout=60) as client:
            for i in range(turns + 5):
                start = time.perf_counter()
                sent = client.post(
                    f"/threads/t-{uuid.uuid4().hex[:10]}/messages",
                    json={"content": "Who committed the latest malware threat?"},
                )
                sent.raise_for_status()
                if i >= 5:  # the first ones warm the process up
                    samples.append(time.perf_counter() - start)
            recalls = [
                line
                for line in client.get("/metrics").text.splitlines()
                if line.startswith("lma_memory_recalls_total{")
            ]
    finally:
        service.stop()
    return ms(samples, 0.5), ms(samples, 0.99), " ".join(recalls) or "no recalls"


def has_pgvector(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            return (
                conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
                is not None
            )
    except psycopg.Error:
        return False


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]  # empty: turns only

    embedded = None
    folder = Path(tempfile.mkdtemp(prefix="lma-bench-", dir="/var/tmp"))
    admin = args.admin_url
    if not has_pgvector(admin):
        from app.memory.embedded import start_embedded

        embedded = start_embedded(folder / "pgdata")
        admin = embedded.uri
    url = fresh_database(admin)
    try:
        # The service's start makes the tables and the index (memory on, offline embedder).
        Service(url, env={"LONG_TERM_MEMORY": "true"}).stop()
        if sizes:
            started = time.perf_counter()
            print(
                "| layout | memories in the table | the user's memories"
                " | search p50 ms | search p99 ms | found | index build s |"
            )
            print("|---|---|---|---|---|---|---|")
            await bench_search(url, sizes, args.searches)
            print(f"\n(search part: {time.perf_counter() - started:.0f} s)\n")

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("TRUNCATE store CASCADE")
        load(url, ["bench-turns"], 1000, random.Random(3))
        reindex(url)
        off = turn_latency(url, memory=False, turns=args.turns)
        on = turn_latency(url, memory=True, turns=args.turns)
        print("| turn (offline model, new thread) | p50 ms | p99 ms |")
        print("|---|---|---|")
        print(f"| memory off | {off[0]:.1f} | {off[1]:.1f} |")
        print(f"| memory on (1,000 memories, one recall per turn) | {on[0]:.1f} | {on[1]:.1f} |")
        print(f"| ratio on/off | {on[0] / off[0]:.2f} | {on[1] / off[1]:.2f} |")
        print(f"\nmemory on: {on[2]}")
    finally:
        drop_database(admin, url)
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())

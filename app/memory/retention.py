"""Retention: expire idle threads, and compact old checkpoints of idle threads.

* Expiry: a thread whose last activity is older than its TTL (its own `ttl_seconds`, else
  THREAD_TTL_SECONDS) is deleted with its transcript, runs, checkpoints, writes and blobs, in
  one transaction per batch. A thread running a turn is skipped (its lease is live).
* Compaction (`keep_latest`): a thread idle longer than COMPACT_IDLE_SECONDS keeps only its
  latest checkpoint (its head); the transcript and the latest state stay whole, time travel
  starts at the kept checkpoint, and the thread records `compacted_at` so the API can say so.
  The thread's lease is held while compacting, so no turn runs on it meanwhile.

Several replicas may run the sweeper: a session advisory lock lets one sweep at a time and
the others skip their round.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from app.memory.longterm import LongTermStore
from app.memory.pool import Pool
from app.memory.run_events import RunEventLog
from app.memory.threads import lease_free, purge_checkpoints

logger = logging.getLogger(__name__)

_SWEEP_LOCK = "lakebase-memory-agent:sweeper"


@dataclass(frozen=True)
class SweepResult:
    expired: int = 0
    compacted: int = 0
    events_pruned: int = 0  # event batches of runs finished longer than RUN_EVENTS_TTL_SECONDS ago
    memories_expired: int = 0  # long-term memories past their TTL
    skipped: bool = False  # another process holds the sweeper lock


class Retention:
    def __init__(
        self,
        pool: Pool,
        saver: AsyncPostgresSaver,
        *,
        default_ttl: int | None,
        compact_idle: int | None,
        batch: int,
        events_ttl: int | None = None,
        memories: LongTermStore | None = None,
    ) -> None:
        self._pool = pool
        self._saver = saver
        self._default_ttl = default_ttl
        self._compact_idle = compact_idle
        self._batch = batch
        self._events_ttl = events_ttl
        self._events = RunEventLog(pool)
        self._memories = memories

    async def sweep(self) -> SweepResult:
        async with self._pool.connection() as lock_conn:
            cur = await lock_conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (_SWEEP_LOCK,))
            row = await cur.fetchone()
            if row is None or not row[0]:
                return SweepResult(skipped=True)
            try:
                expired = await self._expire()
                compacted = await self._compact() if self._compact_idle is not None else 0
                pruned = (
                    await self._events.prune(older_than_seconds=self._events_ttl, batch=self._batch)
                    if self._events_ttl is not None
                    else 0
                )
                memories = (
                    await self._memories.sweep_expired(batch=self._batch) if self._memories is not None else 0
                )
            finally:
                await lock_conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (_SWEEP_LOCK,))
        if expired or compacted or pruned or memories:
            logger.info(
                "retention sweep",
                extra={
                    "expired": expired,
                    "compacted": compacted,
                    "events_pruned": pruned,
                    "memories_expired": memories,
                },
            )
        return SweepResult(
            expired=expired, compacted=compacted, events_pruned=pruned, memories_expired=memories
        )

    async def _expire(self) -> int:
        total = 0
        while True:
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute(
                    "DELETE FROM lma_threads WHERE thread_key IN ("
                    "  SELECT thread_key FROM lma_threads"
                    "  WHERE coalesce(ttl_seconds, %(default)s) IS NOT NULL"
                    "    AND last_activity_at"
                    "      + make_interval(secs => coalesce(ttl_seconds, %(default)s)) < now()"
                    f"    AND {lease_free()}"
                    "  LIMIT %(batch)s FOR UPDATE SKIP LOCKED"
                    ") RETURNING thread_key",
                    {"default": self._default_ttl, "batch": self._batch},
                )
                keys = [str(r[0]) for r in await cur.fetchall()]
                if keys:
                    await purge_checkpoints(conn, keys)
            total += len(keys)
            if len(keys) < self._batch:
                return total

    async def _compact(self) -> int:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT thread_key FROM lma_threads"
                " WHERE last_activity_at < now() - make_interval(secs => %s)"
                "   AND turn_count > 1 AND (compacted_at IS NULL OR compacted_at < last_activity_at)"
                f"   AND {lease_free()}"
                " ORDER BY last_activity_at LIMIT %s",
                (self._compact_idle, self._batch),
            )
            candidates: list[uuid.UUID] = [r[0] for r in await cur.fetchall()]  # type: ignore[misc]
        done = 0
        for key in candidates:
            if await self._compact_one(key):
                done += 1
        return done

    async def _compact_one(self, key: uuid.UUID) -> bool:
        lease = uuid.uuid4()
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE lma_threads SET lease_run_id = %s, lease_expires_at = now() + interval '5 minutes'"
                f" WHERE thread_key = %s AND {lease_free()}"
                " RETURNING 1",
                (lease, key),
            )
            if await cur.fetchone() is None:
                return False  # a turn started meanwhile; next round
        compacted = False
        try:
            await self._saver.aprune([str(key)], strategy="keep_latest")
            compacted = True
        finally:
            async with self._pool.connection() as conn:
                await conn.execute(
                    "UPDATE lma_threads SET lease_run_id = NULL, lease_expires_at = NULL,"
                    " compacted_at = CASE WHEN %s THEN now() ELSE compacted_at END"
                    " WHERE thread_key = %s AND lease_run_id = %s",
                    (compacted, key, lease),
                )
        return compacted

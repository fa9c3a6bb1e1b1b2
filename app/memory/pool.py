"""The one connection pool of a process, and where its database comes from."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from app.memory.embedded import EmbeddedPostgres, start_embedded
from app.settings import DatabaseSettings

logger = logging.getLogger(__name__)

Pool = AsyncConnectionPool[AsyncConnection[tuple[object, ...]]]


@dataclass
class Database:
    pool: Pool
    embedded: EmbeddedPostgres | None


async def _configure(conn: AsyncConnection[tuple[object, ...]]) -> None:
    # The checkpointer needs autocommit (it relies on statement-level atomicity and runs
    # CREATE INDEX CONCURRENTLY); our own multi-statement writes open explicit transactions.
    await conn.set_autocommit(True)


class _BorrowCheck:
    """Check a connection on borrow only if it sat idle in the pool for a while.

    A connection that went back to the pool a moment ago was healthy then; checking it again
    costs a round trip on every borrow (six per turn). One idle for longer than `after` seconds
    may have been dropped by the server or a middlebox and is checked (and replaced if dead).
    """

    def __init__(self, after: float) -> None:
        self._after = after
        self._returned: weakref.WeakKeyDictionary[AsyncConnection[Any], float] = weakref.WeakKeyDictionary()

    async def reset(self, conn: AsyncConnection[Any]) -> None:
        self._returned[conn] = time.monotonic()

    async def check(self, conn: AsyncConnection[Any]) -> None:
        returned = self._returned.get(conn)
        if returned is None or time.monotonic() - returned > self._after:
            await AsyncConnectionPool.check_connection(conn)


@asynccontextmanager
async def open_database(settings: DatabaseSettings) -> AsyncIterator[Database]:
    """Open the pool (starting the embedded server first when no URL is set); close both after."""
    embedded: EmbeddedPostgres | None = None
    if settings.url is None:
        embedded = await asyncio.to_thread(start_embedded, settings.embedded_dir)
        conninfo = embedded.uri
    else:
        conninfo = settings.url.get_secret_value()
    prepare = None if settings.prepare_threshold < 0 else settings.prepare_threshold
    borrow_check = _BorrowCheck(after=settings.check_idle_after)
    pool: Pool = AsyncConnectionPool(
        conninfo,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        timeout=settings.pool_timeout,
        max_idle=settings.pool_max_idle,
        max_lifetime=settings.pool_max_lifetime,
        kwargs={"prepare_threshold": prepare},
        configure=_configure,
        # A connection the server or the network dropped while idle is found and replaced
        # before a request gets it.
        check=borrow_check.check,
        reset=borrow_check.reset,
        open=False,
        name="lakebase-memory-agent",
    )
    try:
        await pool.open(wait=True, timeout=settings.pool_timeout)
        yield Database(pool=pool, embedded=embedded)
    finally:
        await pool.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)

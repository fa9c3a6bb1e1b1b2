"""The one connection pool of a process: where its connections come from, how they are checked,
and how the service behaves while the database is away.

* Every new connection gets a fresh password from the credential cache (Lakebase OAuth), so
  rotation needs nothing else: open connections keep working after their token expires.
* A connection is checked before it is lent if it sat idle for a while or if its socket shows
  the server has closed it (a terminated backend, a restart), so a dropped connection is not
  handed to a request.
* When connecting fails, the database is marked unavailable: requests then fail at once with
  503 and `Retry-After` instead of queueing for the pool timeout, and a probe reconnects every
  half second; when it succeeds, the pool drops its dead connections and refills, with no
  restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from app.memory.credentials import CredentialUnavailable, TokenCache
from app.memory.embedded import EmbeddedPostgres, start_embedded
from app.memory.lakebase import Target, resolve_target
from app.observability.metrics import Metrics
from app.settings import DatabaseSettings, LakebaseSettings

logger = logging.getLogger(__name__)

Pool = AsyncConnectionPool[AsyncConnection[tuple[object, ...]]]


class DatabaseDown(psycopg.OperationalError):
    """Raised instead of waiting for a connection while the database is known to be away."""


class DatabaseHealth:
    """Whether connecting works right now, as seen by the last connection attempt."""

    def __init__(self, *, on_down: Callable[[], None] | None = None) -> None:
        self.down_since: float | None = None
        self.reason = ""
        self._on_down = on_down

    @property
    def available(self) -> bool:
        return self.down_since is None

    def mark_down(self, reason: str) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.reason = reason
            logger.warning("database unavailable: %s", reason)
            if self._on_down is not None:
                self._on_down()

    def mark_up(self) -> None:
        if self.down_since is not None:
            logger.info("database available again after %.1f s", time.monotonic() - self.down_since)
            self.down_since = None


def connection_class(
    health: DatabaseHealth,
    credentials: TokenCache | None,
    options: str | None,
    metrics: Metrics | None = None,
) -> type[AsyncConnection[Any]]:
    """A psycopg connection class bound to this pool's credentials and health."""

    class ServiceConnection(AsyncConnection[Any]):
        @classmethod
        async def connect(cls, conninfo: str = "", **kwargs: Any) -> ServiceConnection:
            try:
                if credentials is not None:
                    kwargs["password"] = await credentials.password()
                if options:
                    kwargs["options"] = options
                conn = await super().connect(conninfo, **kwargs)
            except (psycopg.OperationalError, CredentialUnavailable) as exc:
                if metrics is not None:
                    metrics.db_connection_errors.inc()
                health.mark_down(type(exc).__name__)
                raise
            health.mark_up()
            return conn

    return ServiceConnection


class ServicePool(AsyncConnectionPool[AsyncConnection[tuple[object, ...]]]):
    """Fails fast while the database is away instead of queueing requests for `timeout`."""

    health: DatabaseHealth

    async def getconn(self, timeout: float | None = None) -> AsyncConnection[tuple[object, ...]]:  # noqa: ASYNC109
        total = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + total
        while True:
            if not self.health.available:
                raise DatabaseDown("the database is unavailable")
            remaining = deadline - time.monotonic()
            try:
                # Wait in short slices so a request notices at once when the database goes away.
                return await super().getconn(timeout=max(min(remaining, 0.5), 0.01))
            except PoolTimeout:
                if time.monotonic() >= deadline:
                    raise


class _BorrowCheck:
    """Check a connection on borrow only when there is a reason to.

    A connection returned to the pool a moment ago was healthy then; a round trip to check it
    again on every borrow would cost six per turn. It is checked when it sat idle longer than
    `after` seconds (the server or a middlebox may have dropped it silently), or when its socket
    is readable while idle, which means the server sent something: for an idle connection that
    is the goodbye of a terminated backend or a shutting-down server.
    """

    def __init__(self, after: float) -> None:
        self._after = after
        self._returned: weakref.WeakKeyDictionary[AsyncConnection[Any], float] = weakref.WeakKeyDictionary()

    async def reset(self, conn: AsyncConnection[Any]) -> None:
        self._returned[conn] = time.monotonic()

    async def check(self, conn: AsyncConnection[Any]) -> None:
        returned = self._returned.get(conn)
        stale = returned is None or time.monotonic() - returned > self._after
        if stale or _socket_readable(conn):
            await AsyncConnectionPool.check_connection(conn)


def _socket_readable(conn: AsyncConnection[Any]) -> bool:
    try:
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    except (OSError, ValueError, psycopg.OperationalError):
        return True
    return bool(readable)


def record_pool_stats(pool: Pool, metrics: Metrics) -> None:
    stats = pool.get_stats()
    metrics.pool_size.set(stats.get("pool_size", 0))
    metrics.pool_idle.set(stats.get("pool_available", 0))
    metrics.pool_waiting.set(stats.get("requests_waiting", 0))


@dataclass
class Database:
    pool: Pool
    description: str  # where it is, safe to log


@asynccontextmanager
async def open_database(
    settings: DatabaseSettings,
    lakebase: LakebaseSettings | None = None,
    *,
    workspace: Any | None = None,
    metrics: Metrics | None = None,
) -> AsyncIterator[Database]:
    """Open the pool (starting the embedded server first when nothing is configured); close
    everything after. The HTTP service, the MLflow model and the CLI all connect through here."""
    lakebase = lakebase or LakebaseSettings()
    target: Target | None = await asyncio.to_thread(resolve_target, settings, lakebase, workspace=workspace)
    embedded: EmbeddedPostgres | None = None
    if target is None:
        embedded = await asyncio.to_thread(start_embedded, settings.embedded_dir)
        target = Target(
            conninfo=embedded.uri, source=None, description=f"embedded PostgreSQL ({embedded.pgdata})"
        )
    credentials = (
        TokenCache(
            target.source,
            refresh_margin=lakebase.token_refresh_margin,
            mint_timeout=lakebase.mint_timeout,
            on_mint=metrics.on_mint if metrics is not None else None,
        )
        if target.source is not None
        else None
    )
    probe: asyncio.Task[None] | None = None

    def start_probe() -> None:
        nonlocal probe
        if probe is None or probe.done():
            probe = asyncio.get_running_loop().create_task(_probe_until_up(pool, target.conninfo, prepare))

    health = DatabaseHealth(on_down=start_probe)
    options = f"-c search_path={settings.schema_name}" if settings.schema_name else None
    prepare = None if settings.prepare_threshold < 0 else settings.prepare_threshold
    borrow_check = _BorrowCheck(after=settings.check_idle_after)
    pool = ServicePool(
        target.conninfo,
        connection_class=connection_class(health, credentials, options, metrics),
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        timeout=settings.pool_timeout,
        max_idle=settings.pool_max_idle,
        max_lifetime=settings.pool_max_lifetime,
        kwargs={"prepare_threshold": prepare, "autocommit": True, "connect_timeout": 5},
        check=borrow_check.check,
        reset=borrow_check.reset,
        # Keep trying to reconnect in the background for as long as the service runs.
        reconnect_timeout=float("inf"),
        open=False,
        name="lakebase-memory-agent",
    )
    pool.health = health
    logger.info("connecting to %s", target.description)
    try:
        await pool.open(wait=True, timeout=settings.pool_timeout)
        yield Database(pool=pool, description=target.description)
    finally:
        if probe is not None:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
        await pool.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


async def _probe_until_up(pool: ServicePool, conninfo: str, prepare: int | None) -> None:
    """Reconnect every half second until it works, then purge dead connections and refill."""
    while not pool.health.available:
        await asyncio.sleep(0.5)
        try:
            conn = await pool.connection_class.connect(
                conninfo, prepare_threshold=prepare, autocommit=True, connect_timeout=2
            )
        except Exception:  # noqa: BLE001, S112 - still down; connect() marked it and logged the cause
            continue
        await conn.close()
    # The database is back: drop every connection that died meanwhile and open fresh ones.
    with contextlib.suppress(Exception):
        await pool.check()

"""One `LISTEN` connection per process, fanning PostgreSQL notifications about runs out to the
tasks that wait for them (joiners, cancel handling, the queue dispatcher).

Joiners do not each hold a connection: they wait on an in-process `asyncio.Event`. A lost
connection is reopened (with the pool's credentials, so Lakebase tokens rotate as usual), and
after a reconnect every waiter is woken once to re-read, because notifications sent while the
connection was down are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from app.memory.pool import Pool
from app.memory.run_events import CHANNEL

logger = logging.getLogger(__name__)


class RunNotifications:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._waiters: dict[uuid.UUID, set[asyncio.Event]] = {}
        self._on_cancel: Callable[[uuid.UUID], object] = lambda _: None
        self.queue_changed = asyncio.Event()  # a queued run may be startable
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self, *, on_cancel: Callable[[uuid.UUID], object]) -> None:
        self._on_cancel = on_cancel
        self._task = asyncio.create_task(self._listen_forever(), name="run-notifications")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def subscribe(self, run_id: uuid.UUID) -> asyncio.Event:
        """An event set whenever `run_id` has new events (or after a reconnect)."""
        event = asyncio.Event()
        self._waiters.setdefault(run_id, set()).add(event)
        return event

    def unsubscribe(self, run_id: uuid.UUID, event: asyncio.Event) -> None:
        waiters = self._waiters.get(run_id)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del self._waiters[run_id]

    def _wake(self, run_id: uuid.UUID) -> None:
        for event in self._waiters.get(run_id, ()):
            event.set()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()
        self.queue_changed.set()

    def dispatch(self, payload: str) -> None:
        kind, _, rest = payload.partition(" ")
        if kind == "q":
            self.queue_changed.set()
            return
        run_text = rest.split(" ", 1)[0]
        try:
            run_id = uuid.UUID(run_text)
        except ValueError:
            return
        if kind == "e":
            self._wake(run_id)
        elif kind == "c":
            self._on_cancel(run_id)
            self._wake(run_id)

    async def _listen_forever(self) -> None:
        delay = 0.2
        while True:
            try:
                conn = await self._connect()
            except Exception:  # noqa: BLE001 - the database is away; the pool reports it
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.2
            try:
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    self._wake_all()  # whatever was sent while we were not listening
                    async for notify in conn.notifies():
                        self.dispatch(notify.payload)
            except psycopg.Error:
                logger.warning("run notifications connection lost; reconnecting")
            finally:
                self.connected.clear()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        # The pool's own connection class: the same credentials (rotated tokens), options and health.
        kwargs: dict[str, Any] = dict(self._pool.kwargs) if isinstance(self._pool.kwargs, dict) else {}
        kwargs["autocommit"] = True
        conninfo = self._pool.conninfo
        assert isinstance(conninfo, str)
        conn: psycopg.AsyncConnection[Any] = await self._pool.connection_class.connect(conninfo, **kwargs)
        return conn

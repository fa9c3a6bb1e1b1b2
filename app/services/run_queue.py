"""The background work every process does for runs: start queued runs when their thread frees
up, finish runs whose process died, and stop runs cancelled from another process.

Any process may start any queued run (claimed with `FOR UPDATE SKIP LOCKED`), in creation order
per thread; a process that shuts down stops claiming and leaves the queue to the others. All
three are woken by PostgreSQL notifications and also run on a timer, so a lost notification
delays them, never stalls them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from app.memory.execution import ExecutionStore
from app.memory.notifications import RunNotifications
from app.memory.runs import RunStore
from app.memory.threads import ThreadRecord
from app.observability.metrics import Metrics
from app.services.executor import Execution, Executor
from app.services.run_model import BUILTIN_ASSISTANT_ID, TurnRequest
from app.settings import RunSettings

logger = logging.getLogger(__name__)


class RunQueue:
    def __init__(
        self,
        *,
        store: ExecutionStore,
        runs: RunStore,
        executor: Executor,
        notifications: RunNotifications,
        settings: RunSettings,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._runs = runs
        self._executor = executor
        self._notifications = notifications
        self._settings = settings
        self._metrics = metrics
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._notifications.start(on_cancel=self._executor.cancel_local)
        self._notifications.queue_changed.set()  # queued runs left by a previous start
        self._tasks = [
            asyncio.create_task(self._dispatch_forever(), name="run-dispatch"),
            asyncio.create_task(self._reap_forever(), name="run-reaper"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._notifications.close()

    def wake(self) -> None:
        """Look at the queue now (a scheduled run's time has come)."""
        self._notifications.queue_changed.set()

    async def start_queued(self, *, thread_key: uuid.UUID | None = None) -> list[uuid.UUID]:
        """Claim and launch startable queued runs (of one thread, or any); their ids."""
        started: list[uuid.UUID] = []
        batch = self._settings.max_queued_starts
        while True:
            claimed = await self._store.claim_next(
                lease_seconds=self._settings.lease_seconds, limit=batch, thread_key=thread_key
            )
            for run_id, thread in claimed:
                await self._launch(run_id, thread)
                started.append(run_id)
            if len(claimed) < batch or thread_key is not None:
                return started

    async def _launch(self, run_id: uuid.UUID, thread: ThreadRecord) -> None:
        record = await self._runs.by_id(run_id)
        if record is None:  # deleted with its thread in between: the lease expires by itself
            return
        stored = record.input or {}
        request = TurnRequest(
            owner=thread.owner,
            thread_id=thread.thread_id,
            messages=TurnRequest.messages_of(stored),
            checkpoint_id=stored.get("checkpoint_id"),
            metadata=record.metadata,
            assistant_id=record.assistant_id or BUILTIN_ASSISTANT_ID,
            resume=TurnRequest.resume_of(stored),
            abandon_interrupt=bool(stored.get("abandon_interrupt")),
        )
        # Whoever waits for a queued run reads its log: its events are produced live.
        served = self._executor.catalog.get(record.assistant_id or BUILTIN_ASSISTANT_ID)
        self._executor.launch(
            Execution(
                run_id=run_id, thread=thread, request=request, graph=served, start=None, live_events=True
            )
        )

    async def _dispatch_forever(self) -> None:
        wake = self._notifications.queue_changed
        while True:
            with contextlib.suppress(TimeoutError):
                # The timer covers a wake-up that fell between an enqueue and a commit.
                await asyncio.wait_for(wake.wait(), timeout=min(5.0, self._settings.lease_seconds / 2))
            wake.clear()
            if self._executor.closing:
                return
            try:
                await self.start_queued()
            except Exception:
                logger.warning("starting queued runs failed; will retry", exc_info=True)

    async def reap(self, *, thread_key: uuid.UUID | None = None) -> list[uuid.UUID]:
        """Finish the runs whose process died (of one thread, or all)."""
        reaped = await self._runs.reap(lease_seconds=self._settings.lease_seconds, thread_key=thread_key)
        if reaped:
            logger.warning("runs lost with their process", extra={"run_ids": [str(r) for r in reaped]})
            if self._metrics is not None:
                self._metrics.runs_lost.inc(len(reaped))
        return reaped

    async def _reap_forever(self) -> None:
        interval = max(0.5, self._settings.lease_seconds / 4)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reap()
            except Exception:
                logger.warning("reaping dead runs failed; will retry", exc_info=True)

"""The one way to run a turn, and the run resource: submit (with a multitask strategy), read,
list, follow, join and cancel runs, from any process.

Every turn is a run. A run claimed by this process executes here (`executor`); a queued one is
started by whichever process finds its thread free (`run_queue`); its events are followed from
memory when it executes here and from the event log otherwise (`run_stream`).
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from app.agent.messages import request_fingerprint
from app.errors import (
    CheckpointNotFound,
    GraphMismatch,
    IdempotencyConflict,
    RunNotActive,
    RunNotFound,
    RunStillActive,
    ServiceError,
    ServiceUnavailable,
    ThreadBusy,
    ThreadNotFound,
    error_for,
)
from app.memory.execution import Claim, ExecutionStore
from app.memory.history import CheckpointHistory
from app.memory.runs import FROM_START, NewRun, RunQuery, RunRecord, RunStore
from app.memory.threads import ThreadRegistry
from app.memory.transcript import Transcript
from app.observability.metrics import Metrics
from app.services.events import RunEvent
from app.services.executor import Execution, Executor
from app.services.graphs import GraphCatalog, ServedGraph
from app.services.interrupts import check_continuation, resume_command
from app.services.live_run import LiveRun
from app.services.run_handle import RunHandle
from app.services.run_model import Run, TurnRequest, TurnResult
from app.services.run_queue import RunQueue
from app.services.run_stream import LogFollower
from app.settings import BusyMode, MultitaskStrategy, RunSettings

CANCELLED = "The run was cancelled; nothing was saved."


class RunService:
    def __init__(
        self,
        *,
        registry: ThreadRegistry,
        runs: RunStore,
        store: ExecutionStore,
        executor: Executor,
        queue: RunQueue,
        follower: LogFollower,
        history: CheckpointHistory,
        transcript: Transcript,
        settings: RunSettings,
        metrics: Metrics | None = None,
    ) -> None:
        self._registry = registry
        self._runs = runs
        self._store = store
        self._executor = executor
        self._queue = queue
        self._follower = follower
        self._history = history
        self._transcript = transcript
        self._settings = settings
        self._metrics = metrics
        self._detached: set[asyncio.Task[list[str]]] = set()

    @property
    def catalog(self) -> GraphCatalog:
        """The graphs runs execute, each an assistant."""
        return self._executor.catalog

    # -- submitting ----------------------------------------------------------------------------

    async def submit(self, request: TurnRequest) -> RunHandle:
        if self._executor.closing:
            raise ServiceUnavailable("The service is shutting down; retry on another instance.")
        strategy = request.multitask_strategy or self._settings.multitask_strategy
        served = self.catalog.get(request.assistant_id)
        new = NewRun(
            run_id=uuid.uuid4(),
            assistant_id=served.assistant_id,
            graph=served.name,
            metadata=request.metadata,
            multitask_strategy=strategy.value,
            idempotency_key=request.idempotency_key,
            request_hash=request_fingerprint(
                request.messages, request.checkpoint_id, request.resume.stored() if request.resume else None
            ),
            input=request.with_graph(served.name),
            checkpoint_id=request.checkpoint_id,
            after_seconds=request.after_seconds or None,
        )
        if request.checkpoint_id is not None:
            await self._check_checkpoint(request.owner, request.thread_id, request.checkpoint_id)
        if strategy in (MultitaskStrategy.INTERRUPT, MultitaskStrategy.ROLLBACK):
            await self._clear_thread(request, rollback=strategy is MultitaskStrategy.ROLLBACK)
        if new.after_seconds:
            return await self._schedule(request, new)
        wait = self._settings.busy_wait_seconds if self._settings.busy_mode is BusyMode.WAIT else 0.0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (wait if strategy is MultitaskStrategy.REJECT else 0.0)
        delay = 0.02
        while True:
            claim = await self._store.claim(
                request.owner, request.thread_id, new, lease_seconds=self._settings.lease_seconds
            )
            if claim.thread is not None:
                return await self._run_here(request, new, claim, served)
            if claim.bound_to is not None:
                if request.resume is not None and self.catalog.find(claim.bound_to) is not None:
                    # A resume continues the paused turn on the graph that paused it.
                    bound = self.catalog.get(claim.bound_to).assistant_id
                    if bound != request.assistant_id:
                        return await self.submit(replace(request, assistant_id=bound))
                raise GraphMismatch(request.thread_id, claim.bound_to)
            if not claim.exists:  # a thread id never seen before: its first message creates it
                if not request.create_thread:
                    raise ThreadNotFound(request.thread_id)
                await self._registry.ensure(request.owner, request.thread_id)
                continue
            if claim.key_used:
                replay = await self._replay(request, new)
                if replay is not None:
                    return replay
                continue  # the key's run was dead and is now reaped: claim again
            if strategy is MultitaskStrategy.ENQUEUE:
                queued = await self._enqueue(request, new)
                if queued is not None:
                    return queued
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                if self._metrics is not None:
                    self._metrics.busy_conflicts.inc()
                raise ThreadBusy(request.thread_id, self._retry_after(claim))
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.5)

    def _handle(self, record: RunRecord, *, replayed: bool = False) -> RunHandle:
        return RunHandle(run=Run.of(record), replayed=replayed, _service=self)

    async def _run_here(
        self, request: TurnRequest, new: NewRun, claim: Claim, served: ServedGraph
    ) -> RunHandle:
        assert claim.thread is not None
        try:
            # Checked on the claimed row, before anything starts: a refused run leaves no trace.
            if request.resume is not None:
                resume_command(request, claim.thread)
            else:
                check_continuation(request, claim.thread)
        except ServiceError:
            await self._store.release(claim.thread.thread_key, new.run_id)
            raise
        try:
            start = await self._runs.start_of(claim.thread, request.checkpoint_id)
        except LookupError:
            start = None  # not a checkpoint a turn can start from: the run fails with 404
        live = self._executor.launch(
            Execution(
                run_id=new.run_id,
                thread=claim.thread,
                request=request,
                graph=served,
                start=start,
                live_events=request.stream or request.background,
            )
        )
        # Built, not read back: the hot path pays no round trip for it.
        now = datetime.now(UTC)
        run = Run(
            run_id=str(new.run_id),
            thread_id=request.thread_id,
            assistant_id=new.assistant_id,
            status="running",
            created_at=now,
            updated_at=now,
            metadata=new.metadata,
            multitask_strategy=new.multitask_strategy,
            error=None,
            checkpoint_id=None,
        )
        start_at = (claim.thread.thread_key, start.branch, start.seq) if start is not None else None
        return RunHandle(run=run, replayed=False, _service=self, _live=live, start_at=start_at)

    async def _enqueue(self, request: TurnRequest, new: NewRun) -> RunHandle | None:
        run_id = await self._runs.enqueue(request.owner, request.thread_id, new)
        if run_id is None:
            return None  # the key was used meanwhile, or the thread deleted: decide again
        if self._metrics is not None:
            self._metrics.runs_enqueued.inc()
        thread = await self._registry.get(request.owner, request.thread_id)
        if thread is not None:
            await self._queue.start_queued(thread_key=thread.thread_key)  # free already?
        record = await self._runs.by_id(run_id)
        if record is None:
            raise ThreadNotFound(request.thread_id)
        return self._handle(record)

    async def _schedule(self, request: TurnRequest, new: NewRun) -> RunHandle:
        """A run that starts later: queued with its time; this process wakes its queue then
        (the others look at least every few seconds)."""
        assert new.after_seconds is not None
        await self._registry.ensure(request.owner, request.thread_id)
        while (queued := await self._enqueue(request, new)) is None:
            replay = await self._replay(request, new)
            if replay is not None:
                return replay
        asyncio.get_running_loop().call_later(new.after_seconds, self._queue.wake)
        return queued

    async def _replay(self, request: TurnRequest, new: NewRun) -> RunHandle | None:
        """The run a retried idempotency key names; None if it was dead and has been reaped."""
        thread = await self._registry.get(request.owner, request.thread_id)
        record = (
            await self._runs.find_by_key(thread.thread_key, request.idempotency_key)
            if thread is not None and request.idempotency_key is not None
            else None
        )
        if record is None or thread is None:
            return None
        if record.request_hash != new.request_hash:
            raise IdempotencyConflict()
        if record.status == "running" and await self._queue.reap(thread_key=thread.thread_key):
            return None
        if self._metrics is not None:
            self._metrics.idempotent_replays.inc()
        return RunHandle(run=Run.of(record), replayed=True, _service=self, _request=request)

    async def _check_checkpoint(self, owner: str, thread_id: str, checkpoint_id: str) -> None:
        thread = await self._registry.get(owner, thread_id)
        if thread is None:
            raise ThreadNotFound(thread_id)
        if checkpoint_id != FROM_START and await self._history.get(thread.thread_key, checkpoint_id) is None:
            raise CheckpointNotFound(thread_id, checkpoint_id)

    async def _clear_thread(self, request: TurnRequest, *, rollback: bool) -> None:
        """Cancel the thread's active runs (interrupt), and delete them too (rollback)."""
        active = await self._runs.active_ids(request.owner, request.thread_id)
        if not active:
            return
        cancelled = await self._cancel(request.owner, active, wait=rollback)
        if rollback:
            await self._runs.delete(cancelled)

    def _retry_after(self, claim: Claim) -> int:
        """Seconds until the thread is likely free: what is left of a typical turn, never more
        than the holder's lease (which is when a dead holder's thread frees up)."""
        if claim.busy_until is None:
            return 1
        left_of_lease = (claim.busy_until - datetime.now(UTC)).total_seconds()
        typical = self._executor.typical_turn_seconds
        age = (datetime.now(UTC) - claim.holder_started_at).total_seconds() if claim.holder_started_at else 0
        return max(1, math.ceil(min(left_of_lease, max(typical - age, 1.0))))

    # -- reading -------------------------------------------------------------------------------

    async def record(self, owner: str, thread_id: str, run_id: str) -> RunRecord:
        try:
            key = uuid.UUID(run_id)
        except ValueError:
            raise RunNotFound(run_id) from None
        record = await self._runs.get(owner, thread_id, key)
        if record is None:
            raise RunNotFound(run_id)
        return record

    async def get(self, owner: str, thread_id: str, run_id: str) -> Run:
        return Run.of(await self.record(owner, thread_id, run_id))

    async def page(
        self, owner: str, thread_id: str, query: RunQuery
    ) -> tuple[list[Run], tuple[datetime, uuid.UUID] | None]:
        if await self._registry.get(owner, thread_id) is None:
            raise ThreadNotFound(thread_id)
        rows, cursor = await self._runs.page(owner, thread_id, query)
        return [Run.of(r) for r in rows], cursor

    def follow(self, run_id: uuid.UUID, *, after: int) -> AsyncIterator[RunEvent]:
        """The run's events after `after`: from memory while it runs here, else from the log."""
        live: LiveRun | None = self._executor.live.get(run_id)
        if live is not None:
            return live.follow(after=after)
        return self._follower.follow(run_id, after=after)

    def follow_batches(
        self, run_id: uuid.UUID, *, after: int, live: LiveRun | None = None
    ) -> AsyncIterator[list[RunEvent]]:
        """`follow`, as many events at a time as are there."""
        live = live or self._executor.live.get(run_id)
        if live is not None:
            return live.follow_batches(after=after)
        return self._follower.follow_batches(run_id, after=after)

    async def result_of(self, run_id: uuid.UUID) -> TurnResult:
        """The run's result once it has finished, or the error it ended with."""
        live = self._executor.live.get(run_id)
        if live is not None:
            # shield: the caller going away must not cancel the run itself.
            return await asyncio.shield(live.result)
        record = await self._follower.finished(run_id)
        if record is None:
            raise error_for("cancelled", "The run was deleted.")
        if record.status != "success" or record.checkpoint_id is None:
            raise error_for(record.error_code or "turn_failed", record.error_message or CANCELLED)
        rows = await self._transcript.upto(
            record.thread_key,
            branch=record.branch,
            start_seq=record.start_seq or 0,
            end_seq=record.message_count or 0,
        )
        return TurnResult(
            thread_id=record.thread_id,
            run_id=str(record.run_id),
            checkpoint_id=record.checkpoint_id,
            conversation_end=(record.thread_key, record.branch, record.message_count or 0),
            # As the run itself answered (a replay equals the first answer): no row timestamps.
            messages=tuple(replace(m, created_at=None) for m in rows),
            interrupts=tuple(record.interrupts or ()),
        )

    # -- cancelling ----------------------------------------------------------------------------

    async def cancel(self, owner: str, thread_id: str, run_id: str, *, wait: bool, rollback: bool) -> Run:
        record = await self.record(owner, thread_id, run_id)
        if record.status not in ("pending", "running"):
            raise RunNotActive(run_id, record.status)
        if not await self._cancel(owner, [record.run_id], wait=wait or rollback):
            latest = await self.record(owner, thread_id, run_id)
            raise RunNotActive(run_id, latest.status)
        latest = await self.record(owner, thread_id, run_id)
        if rollback:
            await self._runs.delete([record.run_id])
        return Run.of(latest)

    async def cancel_many(
        self, owner: str, *, run_ids: Sequence[str] | None, thread_id: str | None, wait: bool, rollback: bool
    ) -> list[str]:
        ids: list[uuid.UUID] = []
        for text in run_ids or []:
            try:
                ids.append(uuid.UUID(text))
            except ValueError:
                continue  # not a run id: nothing of this owner's to cancel
        if thread_id is not None:
            ids.extend(await self._runs.active_ids(owner, thread_id))
        cancelled = await self._cancel(owner, ids, wait=wait or rollback) if ids else []
        if rollback:
            await self._runs.delete(cancelled)
        return [str(r) for r in cancelled]

    async def _cancel(self, owner: str, run_ids: Sequence[uuid.UUID], *, wait: bool) -> list[uuid.UUID]:
        cancelled = await self._runs.cancel(owner, run_ids, message=CANCELLED)
        for run_id in cancelled:
            self._executor.cancel_local(run_id)  # at once here; elsewhere by notification
        if wait:
            # Stopped means finished: by its executor, or by the reaper once its lease expired.
            limit = self._settings.lease_seconds * 2 + 5
            await asyncio.gather(*(self._follower.finished(r, within=limit) for r in cancelled))
        return cancelled

    async def delete(self, owner: str, thread_id: str, run_id: str) -> None:
        """Remove a finished run and its events (an active one must be cancelled first)."""
        record = await self.record(owner, thread_id, run_id)
        if record.finished_at is None:
            raise RunStillActive(run_id, record.status)
        await self._runs.delete([record.run_id])

    def cancel_soon(self, owner: str, run_id: str) -> None:
        """Cancel a run from code that cannot wait (a stream whose client went away)."""
        task = asyncio.create_task(
            self.cancel_many(owner, run_ids=[run_id], thread_id=None, wait=False, rollback=False)
        )
        self._detached.add(task)
        task.add_done_callback(self._detached.discard)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._queue.start()

    async def drain(self) -> None:
        """Refuse new turns, let running ones finish within the grace period, cancel the rest;
        queued runs stay queued for the other processes."""
        await self._executor.drain(self._settings.shutdown_grace_seconds)
        await self._queue.stop()

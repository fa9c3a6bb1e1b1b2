"""The one way to run a turn: claim the thread, run the graph, commit, release.

A turn runs in its own task, detached from the request that started it: a client that
disconnects (mid-stream or while waiting for JSON) does not cancel it, so the turn completes and
is saved, and the client finds it in the transcript. A turn that fails is not saved at all: the
thread's head stays at the last completed checkpoint, the partial checkpoint is dropped, and the
next turn starts from the head. On shutdown running turns get a grace period, then are cancelled
(and so not saved).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.errors import GraphRecursionError
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Overwrite

from app.agent.graph import HISTORY_KEY
from app.agent.messages import (
    request_fingerprint,
    stored_to_json,
    text_of,
    to_langchain,
    to_stored,
)
from app.errors import (
    CheckpointNotFound,
    IdempotencyConflict,
    ServiceError,
    ServiceUnavailable,
    ThreadBusy,
    ThreadNotFound,
    TurnFailed,
    TurnTimeout,
    as_service_error,
)
from app.memory.checkpointer import HEAD_KEY, STAGE_KEY, StagedCheckpoints
from app.memory.history import CheckpointHistory
from app.memory.runs import Claim, RunRecord, RunStore
from app.memory.threads import ThreadRegistry
from app.memory.transcript import Transcript
from app.observability.metrics import Metrics, timed_checkpoint_write
from app.services.events import (
    RunDone,
    RunFailed,
    RunStarted,
    TokenDelta,
    TurnEvent,
)
from app.services.history_cache import HistoryCache
from app.services.turn import Turn, TurnHandle, TurnRequest
from app.settings import BusyMode, RunSettings

logger = logging.getLogger(__name__)

Graph = CompiledStateGraph[Any, Any, Any, Any]


class RunService:
    def __init__(
        self,
        *,
        graph: Graph,
        registry: ThreadRegistry,
        runs: RunStore,
        history: CheckpointHistory,
        transcript: Transcript,
        settings: RunSettings,
        metrics: Metrics | None = None,
        log_content: bool = False,
    ) -> None:
        self._graph = graph
        self._metrics = metrics
        self._log_content = log_content
        self._registry = registry
        self._runs = runs
        self._history = history
        self._history_cache = HistoryCache(transcript, limit=settings.history_messages)
        self._settings = settings
        self._tasks: set[asyncio.Task[dict[str, Any]]] = set()
        self._cleanups: set[asyncio.Task[None]] = set()
        self._closing = False

    # -- starting a turn -------------------------------------------------------------------

    async def start(self, request: TurnRequest, *, stream: bool) -> TurnHandle:
        if self._closing:
            raise ServiceUnavailable("The service is shutting down; retry on another instance.")
        fingerprint = request_fingerprint(request.messages, request.checkpoint_id)
        if request.checkpoint_id is not None:
            await self._check_checkpoint(request.owner, request.thread_id, request.checkpoint_id)
        run_id = uuid.uuid4()
        claim = await self._claim(request, run_id, fingerprint)
        if claim.existing_run is not None:
            return self._replay(claim.existing_run, fingerprint, request)
        assert claim.thread is not None
        try:
            start = await self._runs.start_of(claim.thread, request.checkpoint_id)
        except LookupError:
            await self._runs.fail(claim.thread.thread_key, run_id, "checkpoint_not_found")
            raise CheckpointNotFound(request.thread_id, request.checkpoint_id or "") from None
        queue: asyncio.Queue[TurnEvent | None] | None = asyncio.Queue() if stream else None
        turn = Turn(request=request, run_id=run_id, thread=claim.thread, start=start, queue=queue)
        task = asyncio.create_task(self._execute(turn), name=f"turn-{run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._forget)
        return TurnHandle(run_id=str(run_id), replayed=False, _queue=queue, _task=task)

    def _forget(self, task: asyncio.Task[dict[str, Any]]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # mark retrieved: a client that left does not make this an error

    async def _check_checkpoint(self, owner: str, thread_id: str, checkpoint_id: str) -> None:
        thread = await self._registry.get(owner, thread_id)
        if thread is None:
            raise ThreadNotFound(thread_id)
        if await self._history.get(thread.thread_key, checkpoint_id) is None:
            raise CheckpointNotFound(thread_id, checkpoint_id)

    async def _claim(self, request: TurnRequest, run_id: uuid.UUID, fingerprint: str) -> Claim:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (
            self._settings.busy_wait_seconds if self._settings.busy_mode is BusyMode.WAIT else 0
        )
        delay = 0.02
        while True:
            claim = await self._runs.claim(
                owner=request.owner,
                thread_id=request.thread_id,
                run_id=run_id,
                lease_seconds=self._settings.lease_seconds,
                idempotency_key=request.idempotency_key,
                request_hash=fingerprint,
                from_checkpoint_id=request.checkpoint_id,
            )
            if claim.thread is not None:
                return claim
            if claim.existing_run is not None and claim.existing_run.status != "running":
                return claim
            if claim.busy_until is None and claim.existing_run is None:
                # A thread id never seen before: its first message creates it.
                await self._registry.ensure(request.owner, request.thread_id)
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                if self._metrics is not None:
                    self._metrics.busy_conflicts.inc()
                raise ThreadBusy(request.thread_id, self._retry_after(claim.busy_until))
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.5)

    def _retry_after(self, busy_until: datetime | None) -> int:
        if busy_until is None:
            return 1
        seconds = (busy_until - datetime.now(UTC)).total_seconds()
        return max(1, min(math.ceil(seconds), 5))

    def _replay(self, run: RunRecord, fingerprint: str, request: TurnRequest) -> TurnHandle:
        if run.request_hash != fingerprint:
            raise IdempotencyConflict()
        if run.response is None:  # pragma: no cover - completed runs always store a response
            raise ThreadBusy(request.thread_id, 1)
        if self._metrics is not None:
            self._metrics.idempotent_replays.inc()
        return TurnHandle(run_id=str(run.run_id), replayed=True, _result=run.response)

    # -- running it ------------------------------------------------------------------------

    async def _execute(self, turn: Turn) -> dict[str, Any]:
        request = turn.request
        turn.emit(RunStarted(run_id=str(turn.run_id), thread_id=request.thread_id))
        heartbeat = asyncio.create_task(self._heartbeat(turn))
        started = time.perf_counter()
        if self._metrics is not None:
            self._metrics.turns_started.inc()
        try:
            async with asyncio.timeout(self._settings.turn_timeout_seconds):
                result = await self._run_graph(turn)
        except BaseException as exc:
            error = self._classify(exc)
            await self._record_failure(turn, error.code)
            turn.emit(RunFailed(code=error.code, message=error.message))
            if self._metrics is not None:
                self._metrics.turns_failed.labels(code=error.code).inc()
            self._log_turn(turn, started, error_code=error.code, result=None)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise error from exc
        else:
            turn.emit(RunDone(result=result))
            if self._metrics is not None:
                self._metrics.turns_completed.inc()
                self._metrics.turn_latency.observe(time.perf_counter() - started)
            self._log_turn(turn, started, error_code=None, result=result)
            return result
        finally:
            heartbeat.cancel()
            if turn.queue is not None:
                turn.queue.put_nowait(None)

    def _log_turn(
        self, turn: Turn, started: float, *, error_code: str | None, result: dict[str, Any] | None
    ) -> None:
        """One structured line per turn; message content only when LOG_CONTENT is on."""
        fields: dict[str, Any] = {
            "thread_id": turn.request.thread_id,
            "run_id": str(turn.run_id),
            "owner": turn.request.owner,
            "status": "failed" if error_code else "completed",
            "error_code": error_code,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "forked_from": turn.request.checkpoint_id,
        }
        if result is not None:
            fields["checkpoint_id"] = result["checkpoint_id"]
            fields["new_messages"] = len(result["messages"])
            fields["tool_calls"] = sum(len(m.get("tool_calls") or []) for m in result["messages"])
        if self._log_content:
            fields["input"] = [content for _, content in turn.request.messages]
            if result is not None:
                fields["answer"] = result["messages"][-1]["content"]
        logger.info("turn", extra=fields)

    async def _record_failure(self, turn: Turn, code: str) -> None:
        try:
            await asyncio.shield(self._runs.fail(turn.thread.thread_key, turn.run_id, code))
        except Exception:  # noqa: BLE001 - the database is away; retry below
            # Keep trying in the background, so the lease and the partial checkpoint do not
            # outlive the outage by a whole lease period.
            retry = asyncio.create_task(self._fail_later(turn, code))
            self._cleanups.add(retry)
            retry.add_done_callback(self._cleanups.discard)

    async def _fail_later(self, turn: Turn, code: str) -> None:
        for _ in range(int(self._settings.lease_seconds * 4)):
            await asyncio.sleep(0.5)
            try:
                await self._runs.fail(turn.thread.thread_key, turn.run_id, code)
            except Exception:  # noqa: BLE001, S112 - still away
                continue
            return

    def _classify(self, exc: BaseException) -> ServiceError:
        if isinstance(exc, TimeoutError):
            return TurnTimeout("The turn took longer than TURN_TIMEOUT_SECONDS; nothing was saved.")
        if isinstance(exc, asyncio.CancelledError):
            return ServiceUnavailable("The turn was interrupted by a shutdown; nothing was saved.")
        if isinstance(exc, GraphRecursionError):
            return TurnFailed("The agent exceeded RECURSION_LIMIT steps; nothing was saved.")
        mapped = as_service_error(exc)
        if mapped is not None:
            return mapped
        logger.exception("turn failed", exc_info=exc)
        return TurnFailed("The agent failed to complete the turn; nothing was saved.")

    async def _heartbeat(self, turn: Turn) -> None:
        interval = self._settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                ok = await self._runs.renew(turn.thread.thread_key, turn.run_id, self._settings.lease_seconds)
            except Exception:  # noqa: BLE001 - a blip; the next beat retries before expiry
                logger.warning("lease renewal failed for run %s", turn.run_id)
                continue
            if not ok:
                turn.lease_lost.set()
                return

    async def _run_graph(self, turn: Turn) -> dict[str, Any]:
        request = turn.request
        inputs = [to_langchain(role, content) for role, content in request.messages]
        start = turn.start
        # The thread's memory is its transcript; the model gets the recent part of it before
        # this turn's messages (the graph state holds one turn, so it stays small).
        earlier = await self._history_cache.window(
            turn.thread.thread_key, branch=start.branch, end_seq=start.seq
        )
        staged = StagedCheckpoints()
        configurable: dict[str, Any] = {
            "thread_id": str(turn.thread.thread_key),
            HISTORY_KEY: earlier,
            # The head we know completed is the thread's latest checkpoint, never the newest row,
            # which could be a partial one of a crashed run.
            HEAD_KEY: turn.thread.head_checkpoint_id,
            # The checkpoint is written by the commit below, with the transcript and the head.
            STAGE_KEY: staged,
        }
        if start.fork:
            configurable["checkpoint_id"] = start.checkpoint_id
        config: RunnableConfig = {
            "configurable": configurable,
            "metadata": {"run_id": str(turn.run_id)},
            "recursion_limit": self._settings.recursion_limit,
            "run_id": turn.run_id,
        }
        final: list[BaseMessage] = []
        checkpoint_id: str | None = None
        stream: AsyncIterator[tuple[str, Any]] = self._graph.astream(  # type: ignore[assignment]
            # Overwrite: the state starts empty each turn, with only this turn's input.
            {"messages": Overwrite(inputs)},
            config,
            # Token and step events only when someone streams: without a "messages" consumer
            # the model is called without streaming, which costs less.
            stream_mode=["messages", "updates", "checkpoints"] if turn.queue is not None else ["checkpoints"],
            durability="exit",
        )
        async for mode, payload in stream:
            if mode == "checkpoints":
                checkpoint_id = payload["config"]["configurable"]["checkpoint_id"]
                final = payload["values"].get("messages", [])
            elif mode == "messages":
                chunk = payload[0]
                if isinstance(chunk, AIMessageChunk) and (delta := text_of(chunk)):
                    turn.emit(TokenDelta(message_id=chunk.id or "", delta=delta))
            elif mode == "updates":
                turn.emit_updates(payload)
        if turn.lease_lost.is_set():
            raise TurnFailed("The thread's lease was lost during the turn; nothing was saved.")
        assert checkpoint_id is not None and checkpoint_id == staged.last_id
        new = [to_stored(m, seq=start.seq + i, run_id=turn.run_id) for i, m in enumerate(final)]
        result = {
            "thread_id": request.thread_id,
            "run_id": str(turn.run_id),
            "checkpoint_id": checkpoint_id,
            "messages": [stored_to_json(m) for m in new],
        }
        # The commit writes the turn's checkpoint: its latency is the checkpoint write's.
        with timed_checkpoint_write(self._metrics):
            thread = await self._runs.complete(
                thread_key=turn.thread.thread_key,
                run_id=turn.run_id,
                checkpoint_id=checkpoint_id,
                start=start,
                messages=new,
                # Kept for replaying a retried request; without an idempotency key there is none.
                response=result if request.idempotency_key is not None else None,
                staged=staged,
            )
        if thread is None:
            raise TurnFailed("The thread was deleted or taken over during the turn; nothing was saved.")
        self._history_cache.remember(
            turn.thread.thread_key,
            branch=thread.branch,
            end_seq=thread.message_count,
            before=earlier,
            turn=final,
        )
        return result

    # -- shutdown --------------------------------------------------------------------------

    async def drain(self) -> None:
        """Refuse new turns, let running ones finish within the grace period, cancel the rest."""
        self._closing = True
        tasks = set(self._tasks)
        pending: set[asyncio.Task[dict[str, Any]]] = set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self._settings.shutdown_grace_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for cleanup in set(self._cleanups):
            cleanup.cancel()

"""Executing a claimed run in this process: the graph, the lease heartbeat, the commit.

A run executes in its own task, detached from any request: a client that disconnects does not
cancel it. A run that fails, times out or is cancelled is not saved at all: the thread's head
stays at the last completed checkpoint and the next turn starts from there. Whatever happens,
the run ends with exactly one terminal event, written by the statement that finishes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, Overwrite

from app.agent.approval import Decision
from app.agent.graph import AGENT_NODE, HISTORY_KEY
from app.agent.memory_tools import OWNER_KEY
from app.agent.messages import text_of, to_langchain, to_stored
from app.errors import (
    CheckpointNotFound,
    RunCancelled,
    ServiceError,
    ServiceUnavailable,
    TurnFailed,
    TurnTimeout,
)
from app.memory.checkpointer import HEAD_KEY, STAGE_KEY, StagedCheckpoints, regenerated
from app.memory.execution import ExecutionStore
from app.memory.run_events import RunEventLog
from app.memory.runs import RunStore, TurnStart
from app.memory.threads import ThreadRecord
from app.observability.metrics import Metrics, timed_checkpoint_write
from app.services.events import (
    CustomData,
    Interrupted,
    RunDone,
    RunFailed,
    RunStarted,
    TokenDelta,
    TurnEvent,
)
from app.services.graphs import GraphCatalog, ServedGraph
from app.services.history_cache import HistoryCache
from app.services.interrupts import check_continuation, recorded, resume_command
from app.services.live_run import EventWriter, LiveRun
from app.services.run_model import TurnRequest, TurnResult
from app.services.state_update import apply_update
from app.services.step_events import LIVE_MODES, jsonable, step_events, update_events
from app.services.turn_report import classify_failure, count_decisions, log_turn
from app.settings import RunSettings

logger = logging.getLogger(__name__)

Graph = CompiledStateGraph[Any, Any, Any, Any]


@dataclass(frozen=True)
class Execution:
    """A claimed run: this process holds its thread's lease."""

    run_id: uuid.UUID
    thread: ThreadRecord
    request: TurnRequest
    graph: ServedGraph
    start: TurnStart | None  # None: found when the run starts (a queued run)
    live_events: bool  # token and step events as they happen (someone streams, or may join)


async def _nothing() -> AsyncIterator[tuple[str, Any]]:
    return
    yield  # an empty stream


class Executor:
    def __init__(
        self,
        *,
        catalog: GraphCatalog,
        store: ExecutionStore,
        runs: RunStore,
        log: RunEventLog,
        history_cache: HistoryCache,
        settings: RunSettings,
        metrics: Metrics | None,
        log_content: bool,
    ) -> None:
        self.catalog = catalog
        self._store = store
        self._runs = runs
        self._log = log
        self._history_cache = history_cache
        self._settings = settings
        self._metrics = metrics
        self._log_content = log_content
        self.live: dict[uuid.UUID, LiveRun] = {}
        self._writer = EventWriter(log, settings.events_flush_ms / 1000)
        self.closing = False
        # A moving average of completed turns' duration (for Retry-After on a busy thread).
        self.typical_turn_seconds = 2.0

    def launch(self, execution: Execution) -> LiveRun:
        live = LiveRun(execution.run_id, execution.request.thread_id)
        live.result.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved: no warning
        self.live[execution.run_id] = live
        live.task = asyncio.create_task(self._execute(live, execution), name=f"run-{execution.run_id}")
        return live

    def cancel_local(self, run_id: uuid.UUID) -> bool:
        """Stop a run executing here (it was cancelled); False if it does not run here."""
        live = self.live.get(run_id)
        if live is None or live.task is None:
            return False
        if live.cancel_requested:
            return True  # already stopping (cancelled here, then told again by notification)
        live.cancel_requested = True
        # A commit in flight is never interrupted: it finds the lease gone and writes nothing.
        if not live.committing:
            live.task.cancel()
        return True

    async def _execute(self, live: LiveRun, execution: Execution) -> None:
        # The input's ids are given here, so the start event and the transcript agree on them.
        request = execution.request
        ids: tuple[str | None, ...] = request.input_ids or tuple(None for _ in request.messages)
        inputs = [to_langchain(role, text, i) for (role, text), i in zip(request.messages, ids, strict=True)]
        live.emit(
            RunStarted(
                run_id=str(execution.run_id),
                thread_id=execution.request.thread_id,
                input=tuple(to_stored(m, seq=-1, run_id=execution.run_id) for m in inputs),
            )
        )
        if execution.live_events:
            live.store_with(self._writer)
        heartbeat = asyncio.create_task(self._heartbeat(live, execution))
        started = time.perf_counter()
        if self._metrics is not None:
            self._metrics.turns_started.inc()
        try:
            async with asyncio.timeout(self._settings.turn_timeout_seconds):
                result = await self._run_graph(live, execution, inputs)
        except BaseException as exc:  # noqa: BLE001 - every outcome is recorded; none escapes
            error = classify_failure(exc, cancelled=live.cancel_requested, lease_lost=live.lease_lost)
            # Recorded whatever happens next: a second cancel (a shutdown) waits for it, so the
            # run always ends with its status, its terminal event and its lease freed.
            recording = asyncio.ensure_future(self._record_failure(live, execution, error))
            while not recording.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(recording)
            log_turn(
                execution.run_id,
                execution.request,
                started,
                error_code=error.code,
                result=None,
                content=self._log_content,
            )
            live.result.set_exception(error)
        else:
            elapsed = time.perf_counter() - started
            self.typical_turn_seconds = 0.9 * self.typical_turn_seconds + 0.1 * elapsed
            if self._metrics is not None:
                self._metrics.turns_completed.inc()
                self._metrics.turn_latency.observe(elapsed)
            log_turn(
                execution.run_id,
                execution.request,
                started,
                error_code=None,
                result=result,
                content=self._log_content,
            )
            live.result.set_result(result)
        finally:
            heartbeat.cancel()
            if not live.result.done():  # cancelled again while recording its failure
                live.result.set_exception(ServiceUnavailable("The turn was interrupted; nothing was saved."))
            if not live.ended:
                # Whatever went wrong on the way, whoever follows it here sees it end.
                failure = live.result.exception()
                code = failure.code if isinstance(failure, ServiceError) else TurnFailed.code
                live.publish(live.numbered([RunFailed(code=code, message="The turn did not complete.")]))
                logger.error("run %s ended without its terminal event", execution.run_id, exc_info=failure)
            live.finish()
            self.live.pop(execution.run_id, None)

    async def _record_failure(self, live: LiveRun, execution: Execution, error: ServiceError) -> None:
        status = "timeout" if isinstance(error, TurnTimeout) else "error"
        last = live.numbered([RunFailed(code=error.code, message=error.message)])
        if self._metrics is not None:
            self._metrics.turns_failed.labels(code=error.code).inc()
        # While the database is away keep trying (then the reaper finishes it); not at shutdown.
        attempts = 1 if self.closing else int(self._settings.lease_seconds * 4)
        for attempt in range(attempts):
            try:
                events = await live.unstored(last)
                await asyncio.shield(
                    self._store.fail(
                        execution.thread.thread_key,
                        execution.run_id,
                        status=status,
                        code=error.code,
                        message=error.message,
                        events=events,
                    )
                )
                break
            except Exception:  # noqa: BLE001 - the database is away: keep trying, then the reaper
                if attempt == 0:
                    logger.warning("recording the failure of run %s failed; retrying", execution.run_id)
                await asyncio.sleep(0.5)
        live.publish(last)

    async def _heartbeat(self, live: LiveRun, execution: Execution) -> None:
        interval = self._settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                held = await self._store.renew(
                    execution.thread.thread_key, execution.run_id, self._settings.lease_seconds
                )
            except Exception:  # noqa: BLE001 - a blip; the next beat retries before expiry
                logger.warning("lease renewal failed for run %s", execution.run_id)
                continue
            if not held and live.task is not None and not live.committing:
                # Cancelled (its notification lost) or taken over: it cannot commit; stop now.
                live.lease_lost = True
                live.task.cancel()
                return

    async def _run_graph(self, live: LiveRun, execution: Execution, inputs: list[BaseMessage]) -> TurnResult:
        request = execution.request
        thread = execution.thread
        start = execution.start
        if start is None:
            try:
                start = await self._runs.start_of(thread, request.checkpoint_id)
            except LookupError:
                raise CheckpointNotFound(request.thread_id, request.checkpoint_id or "") from None
        served = execution.graph
        # A paused turn is answered by a resume; a new message must not leave it behind unsaid.
        command: Command[Any] | None = None
        decisions: list[Decision] = []
        if request.resume is not None:
            command, decisions = resume_command(request, thread)
        else:
            check_continuation(request, thread)
        staged = StagedCheckpoints()
        configurable: dict[str, Any] = {
            "thread_id": str(thread.thread_key),
            # The head we know completed is the thread's latest checkpoint, never the newest row,
            # which could be a partial one of a crashed run.
            HEAD_KEY: None if start.fork and start.checkpoint_id is None else thread.head_checkpoint_id,
            # The checkpoint is written by the commit below, with the transcript and the head.
            STAGE_KEY: staged,
            OWNER_KEY: request.owner,  # long-term memory is scoped to it (app/agent/memory_tools.py)
        }
        if start.fork and start.checkpoint_id is not None:
            configurable["checkpoint_id"] = start.checkpoint_id
        config: RunnableConfig = {
            "configurable": configurable,
            "metadata": {"run_id": str(execution.run_id), **regenerated(request.regenerates)},
            "recursion_limit": self._settings.recursion_limit,
            "run_id": execution.run_id,
        }
        final: list[BaseMessage] = []
        checkpoint_id: str | None = None
        graph = await served.compiled(config)
        known: set[str | None] = set()
        if not served.builtin or command is not None:
            # What the thread's state held before (a hosted graph's whole thread, the built-in
            # agent's paused turn): the turn's new messages are the others.
            before = (await graph.aget_state(config)).values
            known = {m.id for m in (before.get("messages", []) if isinstance(before, dict) else [])}
        # The built-in agent's memory is its transcript: the model gets the recent part of it
        # before this turn's messages (its state holds one turn, so it stays small; a resumed
        # turn's own messages are in its state already). A hosted graph keeps its whole state in
        # its checkpoints, as with the stock saver.
        earlier = (
            await self._history_cache.window(
                thread.thread_key, branch=start.branch, end_seq=start.seq - len(known)
            )
            if served.builtin
            else []
        )
        configurable[HISTORY_KEY] = earlier
        if request.state_update is not None:
            checkpoint_id, final = await apply_update(
                graph, config, request.state_update, builtin=served.builtin
            )
            stream: AsyncIterator[tuple[str, Any]] = _nothing()
        else:
            stream = graph.astream(  # type: ignore[assignment]
                # Overwrite (built-in): the state starts empty each turn, with only its input.
                command or {"messages": Overwrite(inputs) if served.builtin else inputs},
                config,
                # Token and step events only when someone may watch: without a "messages"
                # consumer the model is called without streaming, which costs less.
                stream_mode=LIVE_MODES if execution.live_events else ["checkpoints"],
                durability="exit",
            )
        async for mode, payload in stream:
            if mode == "checkpoints":
                checkpoint_id = payload["config"]["configurable"]["checkpoint_id"]
                final = payload["values"].get("messages", [])
            elif mode == "messages":
                chunk, meta = payload
                if isinstance(chunk, AIMessageChunk) and (delta := text_of(chunk)):
                    node = (
                        str(meta.get("langgraph_node", AGENT_NODE)) if isinstance(meta, dict) else AGENT_NODE
                    )
                    live.emit(TokenDelta(message_id=chunk.id or "", delta=delta, node=node))
            elif mode == "updates":
                for event in update_events(execution.run_id, payload):
                    live.emit(event)
            elif mode == "custom":
                live.emit(CustomData(data=jsonable(payload)))
        assert checkpoint_id is not None and checkpoint_id == staged.last_id
        turn = [m for m in final if m.id not in known] if known else final
        new = [to_stored(m, seq=start.seq + i, run_id=execution.run_id) for i, m in enumerate(turn)]
        result = TurnResult(
            thread_id=request.thread_id,
            run_id=str(execution.run_id),
            checkpoint_id=checkpoint_id,
            messages=tuple(new),
        )
        # Without live events, the log gets the turn's steps now, from its messages.
        steps: list[TurnEvent] = (
            [] if execution.live_events else list(step_events(execution.run_id, turn[len(inputs) :]))
        )
        paused = recorded(staged.interrupts)
        if paused:
            steps.append(Interrupted(interrupts=tuple(paused)))
        done = RunDone(
            run_id=result.run_id,
            thread_id=result.thread_id,
            checkpoint_id=checkpoint_id,
            new_messages=len(new),
        )
        last = live.numbered([*steps, done])
        live.committing = True
        # The commit writes the turn's checkpoint: its latency is the checkpoint write's.
        with timed_checkpoint_write(self._metrics):
            committed = await self._store.complete(
                thread_key=thread.thread_key,
                run_id=execution.run_id,
                checkpoint_id=checkpoint_id,
                start=start,
                messages=new,
                staged=staged,
                events=await live.unstored(last),
                interrupts=paused or None,
            )
        if committed is None:
            live.committing = False
            if live.cancel_requested:
                raise RunCancelled("The run was cancelled; nothing was saved.")
            raise TurnFailed("The thread was deleted or taken over during the turn; nothing was saved.")
        live.publish(last)
        count_decisions(self._metrics, thread, decisions, paused)
        result = replace(
            result,
            conversation_end=(thread.thread_key, committed.branch, committed.message_count),
            interrupts=tuple(paused),
        )
        if served.builtin:
            self._history_cache.remember(
                thread.thread_key,
                branch=committed.branch,
                end_seq=committed.message_count,
                before=earlier,
                turn=final,
                before_at=(start.branch, start.seq - len(known)),
            )
        return result

    async def drain(self, grace: float) -> None:
        """Let running turns finish within `grace` seconds, cancel the rest (not saved)."""
        self.closing = True
        tasks = {live.task for live in self.live.values() if live.task is not None}
        pending: set[asyncio.Task[None]] = set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._writer.close()

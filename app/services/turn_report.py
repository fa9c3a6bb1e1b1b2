"""What a finished turn leaves behind besides its commit: the error a failure is reported as,
its log line, and its human-in-the-loop metrics."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from langgraph.errors import GraphRecursionError

from app.agent.approval import Decision
from app.errors import (
    RunCancelled,
    ServiceError,
    ServiceUnavailable,
    TurnFailed,
    TurnTimeout,
    as_service_error,
)
from app.memory.threads import ThreadRecord
from app.observability.metrics import Metrics
from app.services.run_model import TurnRequest, TurnResult

logger = logging.getLogger("app.services.executor")


def classify_failure(exc: BaseException, *, cancelled: bool, lease_lost: bool) -> ServiceError:
    """The error a turn that did not complete ends with (what its clients and its run see)."""
    if cancelled:
        return RunCancelled("The run was cancelled; nothing was saved.")
    if lease_lost:
        return TurnFailed("The thread's lease was lost during the turn; nothing was saved.")
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


def count_decisions(
    metrics: Metrics | None, thread: ThreadRecord, decisions: list[Decision], paused: list[dict[str, Any]]
) -> None:
    """A committed turn's pause (it waits for a person) and the decisions it carried out."""
    if metrics is None:
        return
    if paused:
        metrics.interrupts.inc()
    for decision in decisions:
        metrics.approval_decisions.labels(decision=decision.type).inc()
    if decisions and thread.interrupted_at is not None:
        waited = (datetime.now(UTC) - thread.interrupted_at).total_seconds()
        metrics.decision_latency.observe(max(waited, 0.0))


def log_turn(
    run_id: uuid.UUID,
    request: TurnRequest,
    started: float,
    *,
    error_code: str | None,
    result: TurnResult | None,
    content: bool,
) -> None:
    """One structured line per turn; message content only when LOG_CONTENT (`content`) is on."""
    fields: dict[str, Any] = {
        "thread_id": request.thread_id,
        "run_id": str(run_id),
        "owner": request.owner,
        "status": "failed" if error_code else "completed",
        "error_code": error_code,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        "forked_from": request.checkpoint_id,
    }
    if result is not None:
        fields["checkpoint_id"] = result.checkpoint_id
        fields["new_messages"] = len(result.messages)
        fields["tool_calls"] = sum(len(m.tool_calls or []) for m in result.messages)
        if result.interrupts:
            fields["interrupts"] = len(result.interrupts)
    if content:
        fields["input"] = [text for _, text in request.messages]
        if result is not None and result.messages:
            fields["answer"] = result.messages[-1].content
    logger.info("turn", extra=fields)

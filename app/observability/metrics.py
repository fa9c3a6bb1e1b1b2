"""Prometheus metrics: one object per app, created against a registry the caller passes.

A registry per app keeps tests (many apps in one process) from colliding. With several uvicorn
workers set PROMETHEUS_MULTIPROC_DIR: every process then writes its values to files there, and
`/metrics` aggregates them (prometheus-client's multiprocess mode); pool gauges are summed over
the live processes.

Label sets are bounded: route templates (never a path with a thread id), methods, status
codes, providers, tool names and outcome/error codes. Never a thread id, run id or owner.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prom_multiprocess

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.multiprocess = multiprocess_dir() is not None
        # In multiprocess mode values live in files, not in a registry; exposition collects them.
        self.registry = CollectorRegistry() if registry is None else registry
        reg = None if self.multiprocess else self.registry

        self.http_requests = Counter(
            "lma_http_requests_total", "HTTP requests", ["route", "method", "status"], registry=reg
        )
        self.http_latency = Histogram(
            "lma_http_request_duration_seconds",
            "HTTP request latency (for SSE: until the stream ends)",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.turns_started = Counter("lma_turns_started_total", "Turns started", registry=reg)
        self.turns_completed = Counter("lma_turns_completed_total", "Turns completed and saved", registry=reg)
        self.turns_failed = Counter(
            "lma_turns_failed_total", "Turns failed (nothing saved)", ["code"], registry=reg
        )
        self.turn_latency = Histogram(
            "lma_turn_duration_seconds",
            "Turn latency, claim to commit",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.busy_conflicts = Counter(
            "lma_thread_busy_total", "Messages refused because their thread ran another turn", registry=reg
        )
        self.runs_enqueued = Counter(
            "lma_runs_enqueued_total", "Runs queued behind another run of their thread", registry=reg
        )
        self.runs_lost = Counter(
            "lma_runs_lost_total", "Runs finished as worker_lost (their process died)", registry=reg
        )
        self.idempotent_replays = Counter(
            "lma_idempotent_replays_total", "Retries answered from a stored turn", registry=reg
        )
        self.model_latency = Histogram(
            "lma_model_call_duration_seconds",
            "Chat model call latency",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.model_tokens = Counter(
            "lma_model_tokens_total", "Model tokens", ["provider", "direction"], registry=reg
        )
        self.tool_calls = Counter("lma_tool_calls_total", "Tool calls", ["tool", "outcome"], registry=reg)
        self.tool_latency = Histogram(
            "lma_tool_call_duration_seconds",
            "Tool call latency",
            ["tool"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.checkpoint_write_latency = Histogram(
            "lma_checkpoint_write_duration_seconds",
            "Checkpoint write latency (a turn's commit, which writes its checkpoint)",
            buckets=FAST_BUCKETS,
            registry=reg,
        )
        self.pool_size = Gauge(
            "lma_db_pool_connections", "Pooled connections", multiprocess_mode="livesum", registry=reg
        )
        self.pool_idle = Gauge(
            "lma_db_pool_idle_connections",
            "Idle pooled connections",
            multiprocess_mode="livesum",
            registry=reg,
        )
        self.pool_waiting = Gauge(
            "lma_db_pool_waiting_requests",
            "Requests waiting for a connection",
            multiprocess_mode="livesum",
            registry=reg,
        )
        self.db_connection_errors = Counter(
            "lma_db_connection_errors_total", "Failed attempts to open a database connection", registry=reg
        )
        self.credential_mints = Counter(
            "lma_credential_mints_total", "Database credential mints", ["outcome"], registry=reg
        )
        self.threads_expired = Counter(
            "lma_threads_expired_total", "Threads removed by retention", registry=reg
        )
        self.memory_recalls = Counter(
            "lma_memory_recalls_total",
            "Per-turn long-term memory recalls, by outcome (hit, miss, failed: the turn went on without)",
            ["outcome"],
            registry=reg,
        )

        self.interrupts = Counter(
            "lma_interrupts_total",
            "Turns that paused for a person (an approval, a graph's interrupt)",
            registry=reg,
        )
        self.approval_decisions = Counter(
            "lma_approval_decisions_total",
            "Decisions on tool calls awaiting approval (approve, edit, reject, respond)",
            ["decision"],
            registry=reg,
        )
        self.decision_latency = Histogram(
            "lma_interrupt_decision_seconds",
            "From a turn's pause to the resume that answered it",
            buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86_400, 7 * 86_400),
            registry=reg,
        )

    def on_mint(self, ok: bool) -> None:
        self.credential_mints.labels(outcome="success" if ok else "failure").inc()

    @contextmanager
    def time_checkpoint_write(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.checkpoint_write_latency.observe(time.perf_counter() - start)

    def render(self) -> tuple[bytes, str]:
        if self.multiprocess:
            registry = CollectorRegistry()
            prom_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def timed_checkpoint_write(metrics: Metrics | None) -> AbstractContextManager[None]:
    """`metrics.time_checkpoint_write()`, or nothing when there are no metrics."""
    return metrics.time_checkpoint_write() if metrics is not None else nullcontext()

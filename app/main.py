"""The application factory: middleware, routers, error handlers; nothing else."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import CollectorRegistry

from app.api import feedback, health, history, invocations, messages, operations, runs, store, threads
from app.api.guards import BodyGuard, ConcurrencyCap, RejectNul
from app.api.protocol import protocol_router
from app.api.ui import mount_ui
from app.errors import install_error_handlers
from app.lifespan import lifespan
from app.observability.metrics import Metrics
from app.observability.middleware import ObservabilityMiddleware
from app.settings import Settings

DESCRIPTION = """Durable, thread-scoped conversation memory for a LangGraph agent, in PostgreSQL.

Every error has the body `{"error": {"code": "...", "message": "..."}}`.
"""


def create_app(
    settings: Settings | None = None,
    *,
    workspace: Any | None = None,
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    """The service. `workspace`: a databricks-sdk WorkspaceClient to use for Lakebase instead of
    one built from the environment; `registry`: where the Prometheus metrics go (a fresh one by
    default, so several apps in one process do not collide)."""
    settings = settings or Settings()
    app = FastAPI(
        title="lakebase-memory-agent",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.workspace = workspace
    app.state.metrics = Metrics(registry)
    install_error_handlers(app)
    for module in (threads, messages, runs, history, feedback, health, operations, store):
        app.include_router(module.router)
    app.include_router(invocations.router)
    app.include_router(protocol_router())
    mount_ui(app)
    if settings.server.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.server.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            # Where a run and its stream are, and the next page of runs: clients read these.
            expose_headers=["Location", "Content-Location", "X-Run-Id", "X-Next-Cursor", "Retry-After"],
        )
    app.add_middleware(
        BodyGuard,
        max_bytes=settings.limits.max_body_bytes,
        read_timeout=settings.limits.body_read_timeout_seconds,
        deadline=settings.limits.body_deadline_seconds,
    )
    app.add_middleware(RejectNul)
    app.add_middleware(ConcurrencyCap, limit=settings.limits.max_concurrent_requests)
    app.add_middleware(ObservabilityMiddleware, metrics=app.state.metrics)
    return app

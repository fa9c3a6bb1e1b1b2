"""The LangGraph Agent Protocol, served under `PREFIX`: a thin mapping onto the same services,
threads and runs as the native API (no second run engine, no second thread registry, no SQL).

Under a prefix because some of the protocol's paths are the native API's with other shapes
(`GET /threads/{id}`, `/state`, a run's `join` and `stream`): point a LangGraph client at
`http://<host>/lg`.
"""

from __future__ import annotations

from fastapi import APIRouter

from app.api.protocol import runs, system, threads

PREFIX = "/lg"


def protocol_router() -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["agent protocol"])
    router.include_router(system.router)
    router.include_router(threads.router)
    router.include_router(runs.build_router())
    return router

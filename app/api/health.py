"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import ResourcesDep
from app.errors import DatabaseUnavailable, error_response

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (no dependency is checked)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Database unreachable"}})
async def readyz(resources: ResourcesDep) -> JSONResponse:
    """The database answers within two seconds."""
    try:
        async with asyncio.timeout(2):
            async with resources.database.pool.connection(timeout=2) as conn:
                await conn.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any failure means not ready
        return error_response(DatabaseUnavailable())
    return JSONResponse({"status": "ready"})

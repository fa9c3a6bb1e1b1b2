"""Operator routes: Prometheus metrics and conversation analytics (admins only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from app.api.deps import OwnerDep, ResourcesDep
from app.api.schemas import ErrorBody
from app.errors import Forbidden
from app.memory.pool import record_pool_stats
from app.memory.stats import collect_stats

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
async def metrics(resources: ResourcesDep) -> Response:
    """Prometheus exposition (all worker processes in multiprocess mode)."""
    record_pool_stats(resources.database.pool, resources.metrics)
    body, content_type = resources.metrics.render()
    return Response(body, media_type=content_type)


@router.get(
    "/admin/stats",
    responses={403: {"model": ErrorBody, "description": "The caller is not an admin owner"}},
)
async def admin_stats(
    owner: OwnerDep,
    resources: ResourcesDep,
    top: Annotated[int, Query(ge=1, le=100, description="How many of the largest threads to list.")] = 10,
    days: Annotated[int, Query(ge=1, le=366, description="Days of activity to report.")] = 30,
) -> dict[str, Any]:
    """Threads, turns, messages, tool calls and checkpoint storage: totals, the largest threads
    (by checkpoint bytes) and activity per day. Owners listed in ADMIN_OWNERS only."""
    if not resources.settings.auth.is_admin(owner):
        raise Forbidden("Only admin owners (ADMIN_OWNERS) may read service statistics.")
    stats = await collect_stats(resources.database.pool, top=top, days=days)
    return {"totals": stats.totals, "top_threads": stats.top_threads, "per_day": stats.per_day}

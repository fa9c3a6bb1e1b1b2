"""Operator routes: Prometheus metrics and conversation analytics (admins only)."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from app.api.deps import OwnerDep, ResourcesDep, current_owner
from app.api.schemas import ErrorBody
from app.errors import Forbidden, Unauthorized
from app.memory.pool import record_pool_stats
from app.memory.stats import collect_stats
from app.settings import AuthMode

router = APIRouter(tags=["operations"])


async def metrics_access(request: Request, resources: ResourcesDep) -> None:
    """Who may scrape /metrics: anyone presenting METRICS_TOKEN as a bearer token; without it,
    anyone in AUTH_MODE=none (local use), else an authenticated admin owner (ADMIN_OWNERS).
    Metrics name routes, tools and error rates: not for whoever can reach the port."""
    auth = resources.settings.auth
    token = auth.metrics_token.get_secret_value() if auth.metrics_token is not None else None
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if (
        token
        and scheme.lower() == "bearer"
        and hmac.compare_digest(presented.strip().encode(), token.encode())
    ):
        return
    if token is None and auth.mode is AuthMode.NONE:
        return
    if auth.mode is AuthMode.NONE:
        raise Unauthorized("Send METRICS_TOKEN as 'Authorization: Bearer <token>'.")
    if not auth.is_admin(await current_owner(request, resources)):
        raise Forbidden("Only METRICS_TOKEN or an admin owner (ADMIN_OWNERS) may read /metrics.")


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(metrics_access)])
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

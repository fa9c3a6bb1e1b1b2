"""Pure ASGI middleware: request id, access log line, HTTP metrics.

Labels use the route template Starlette matched ("/threads/{thread_id}/messages"), never the
raw path, so a thread id cannot become a label. Health and metrics routes are not counted.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.logging import request_id_var
from app.observability.metrics import Metrics

logger = logging.getLogger("app.access")

EXCLUDED = {"/healthz", "/readyz", "/metrics"}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            if template not in EXCLUDED:
                self.metrics.http_requests.labels(route=template, method=method, status=str(status)).inc()
                self.metrics.http_latency.labels(route=template, method=method).observe(elapsed)
                state = scope.get("state", {})
                logger.info(
                    "request",
                    extra={
                        "method": method,
                        "route": template,
                        "status": status,
                        "latency_ms": round(elapsed * 1000, 2),
                        "owner": state.get("owner"),
                        "thread_id": (scope.get("path_params") or {}).get("thread_id"),
                    },
                )
            request_id_var.reset(token)

"""Pure ASGI request guards that run before any route: body size and NUL characters."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_body


async def send_error(
    send: Send, status: int, code: str, message: str, *, retry_after: int | None = None
) -> None:
    body = json.dumps(error_body(code, message)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RejectNul:
    """NUL can never be stored in PostgreSQL text: refuse it in the path or query string up
    front, for every route (bodies are checked by their schemas)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope["path"] or b"\x00" in unquote_to_bytes(scope.get("query_string", b""))
        ):
            await send_error(send, 422, "invalid_input", "The URL must not contain NUL characters.")
            return
        await self.app(scope, receive, send)


class ConcurrencyCap:
    """At most MAX_CONCURRENT_REQUESTS requests in progress in this process (streams included);
    beyond, 503 with Retry-After at once, instead of every request slowing down together.
    Health probes and /metrics are exempt: a busy process is alive, and a busy one is when its
    metrics matter most."""

    EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_progress = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.EXEMPT:
            await self.app(scope, receive, send)
            return
        if self.in_progress >= self.limit:
            await send_error(
                send,
                503,
                "server_busy",
                f"The server has {self.limit} requests in progress (MAX_CONCURRENT_REQUESTS); retry shortly.",
                retry_after=1,
            )
            return
        self.in_progress += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_progress -= 1


class BodyGuard:
    """Bound what a request body may cost: over MAX_BODY_BYTES is 413 (checked up front from
    Content-Length, and while reading chunked bodies, so it is never buffered whole); a client
    that stops sending its body for BODY_READ_TIMEOUT_SECONDS, or has not sent all of it within
    BODY_DEADLINE_SECONDS of the request's start (a trickle resets no clock), is 408, so a slow
    sender cannot hold a worker forever."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, read_timeout: float, deadline: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout
        self.deadline = deadline

    async def _reject(self, send: Send) -> None:
        await send_error(
            send,
            413,
            "payload_too_large",
            f"The request body is larger than {self.max_bytes} bytes (MAX_BODY_BYTES).",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_large = int(value) > self.max_bytes
                except ValueError:
                    too_large = False
                if too_large:
                    await self._reject(send)
                    return
        seen = 0
        rejected = False
        started = False
        body_done = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline

        async def limited_receive() -> Message:
            nonlocal seen, rejected, body_done
            if body_done or rejected:
                return await receive()  # e.g. waiting for a disconnect while streaming: no timeout
            try:
                wait = min(self.read_timeout, deadline - loop.time())
                if wait <= 0:
                    raise TimeoutError
                message = await asyncio.wait_for(receive(), wait)
            except TimeoutError:
                rejected = True
                if not started:
                    await send_error(
                        send,
                        408,
                        "request_timeout",
                        "The request body did not arrive in time; send it again.",
                    )
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if seen > self.max_bytes:
                    rejected = True
                    if not started:
                        await self._reject(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if rejected:
                return  # the 413/408 already went out
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)

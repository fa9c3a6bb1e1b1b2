"""The HTTP server's own limits: request head size and header count (431), time to send a request
head (408, or a quiet close when nothing was sent), and open connections per process.

uvicorn's httptools protocol has none of these: a header line of any size is buffered whole, a
connection that never sends a byte is kept forever, and every accepted connection holds a file
descriptor. They cannot be enforced in ASGI, which sees a request only once its head is
complete, so they live in a subclass of uvicorn's protocol. It uses uvicorn internals (the parser
callbacks, `connections`, `cycle`): this module is their only user, and
tests/unit/test_http_server_internals.py fails loudly when an upgrade moves them.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from app.errors import error_body
from app.settings import LimitSettings


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int
    max_header_count: int
    header_timeout: float
    max_connections: int

    @classmethod
    def from_settings(cls, limits: LimitSettings) -> ConnectionLimits:
        return cls(
            max_header_bytes=limits.max_header_bytes,
            max_header_count=limits.max_header_count,
            header_timeout=limits.header_timeout_seconds,
            max_connections=limits.max_connections,
        )


class ServingConfig(uvicorn.Config):
    """uvicorn's Config carrying our limits to the protocol; picklable (a module-level class),
    so worker processes get it as they get the rest of the config."""

    def __init__(self, app: Any, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, http="app.http_server:LimitedHttpProtocol", **kwargs)
        self.limits = limits


# How long a connection closed in the middle of a request (a 408, 413 or 431 sent while the client
# is still sending) goes on reading and dropping what arrives, once its response is out. Closing
# with bytes unread makes the kernel answer them with a reset, and a reset can destroy the response
# in the client's buffer before it is read: the client sees "connection reset", not the 408.
# Half-closing first and draining (nginx's "lingering close") lets the response arrive.
# (When the client closes, the transport closes itself on the end of its stream.)
LINGER_SECONDS = 2.0


class _LingeringTransport:
    """The connection's transport as uvicorn sees it, but for `close()`, which lingers when a
    request is still arriving (`LimitedHttpProtocol._close`)."""

    def __init__(self, transport: asyncio.Transport, protocol: LimitedHttpProtocol) -> None:
        self._real = transport
        self._protocol = protocol

    def close(self) -> None:
        self._protocol._close()

    def is_closing(self) -> bool:
        return self._protocol._lingering is not None or self._real.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _response(status: int, code: str, message: str) -> bytes:
    body = json.dumps(error_body(code, message)).encode()
    return b"".join(
        [
            STATUS_LINE[status],
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of the module doc."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = getattr(config, "limits", None)
        if not isinstance(limits, ConnectionLimits):
            raise TypeError("LimitedHttpProtocol needs a ServingConfig (app.http_server)")
        self._limits = limits
        self._in_head = True  # waiting for (the rest of) a request head
        self._head_bytes = 0
        self._header_count = 0
        self._head_size = 0
        self._refusal: bytes | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_pending = False  # a request's head is in, the rest of its body is not
        self._lingering: asyncio.TimerHandle | None = None
        self._real_transport: asyncio.Transport | None = None

    # Connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._real_transport = transport
        super().connection_made(_LingeringTransport(transport, self))  # type: ignore[arg-type]
        if len(self.connections) > self._limits.max_connections and not self._make_room():
            self._refuse(_response(503, "too_many_connections", "The server has too many open connections."))
            return
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        if self._lingering is not None:
            self._lingering.cancel()
        super().connection_lost(exc)

    def _close(self) -> None:
        """Close, or, when the client is still sending a request, stop writing (the response is
        out), drop what it sends, and close once it closes or after LINGER_SECONDS."""
        real = self._real_transport
        if real is None or self._lingering is not None or real.is_closing():
            return
        self._cancel_head_timer()
        unread = self._body_pending or (self._in_head and self._head_bytes > 0)
        if not unread or not real.can_write_eof():
            real.close()
            return
        real.write_eof()
        self._lingering = self.loop.call_later(LINGER_SECONDS, real.close)

    def _idle(self) -> bool:
        return (
            self._in_head and self._head_bytes == 0 and (self.cycle is None or self.cycle.response_complete)
        )

    def _make_room(self) -> bool:
        """Close an idle connection (no request in progress) for this one; False if none is idle."""
        for other in self.connections:
            if other is not self and isinstance(other, LimitedHttpProtocol) and other._idle():
                other.transport.close()
                return True
        return False

    def _refuse(self, response: bytes) -> None:
        self._cancel_head_timer()
        if not self.transport.is_closing():
            self.transport.write(response)
            self.transport.close()

    # Time to send a request head

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self._limits.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self._head_bytes == 0:
            self.transport.close()  # sent nothing: an idle connection, closed quietly
            return
        self._refuse(
            _response(
                408, "request_timeout", "The request head did not arrive in time (HEADER_TIMEOUT_SECONDS)."
            )
        )

    # Parsing

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None:
            return  # the response is out: what the client still sends is dropped
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # A head still incomplete is measured by the bytes received for it (a line can be
        # endless); a complete one by its parts (on_url, on_header), since a chunk may hold a body.
        if self._refusal is None and self._in_head and self._head_bytes > self._limits.max_header_bytes:
            self._refusal = self._too_large()
        if self._refusal is not None:
            self._refuse(self._refusal)

    def _too_large(self) -> bytes:
        return _response(
            431,
            "headers_too_large",
            f"The request head is larger than {self._limits.max_header_bytes} bytes (MAX_HEADER_BYTES).",
        )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = max(self._head_bytes, 1)  # a request has begun: no longer idle
        self._head_size = 0
        self._header_count = 0
        self._start_head_timer()

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._head_size += len(name) + len(value) + 4  # ": " and CRLF
        if self._head_size > self._limits.max_header_bytes:
            self._refusal = self._refusal or self._too_large()
            return
        if self._header_count > self._limits.max_header_count:
            # Refused after this chunk is parsed (raising here would read as a 400).
            self._refusal = self._refusal or _response(
                431,
                "headers_too_large",
                f"The request has more than {self._limits.max_header_count} headers (MAX_HEADER_COUNT).",
            )
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._body_pending = True
        self._cancel_head_timer()
        if self._refusal is None:
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._refusal is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._body_pending = False
        if self._refusal is None:
            super().on_message_complete()

    def on_response_complete(self) -> None:
        self._in_head = True
        super().on_response_complete()

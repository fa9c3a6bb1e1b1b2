"""app/http_server.py subclasses uvicorn's httptools protocol and relies on its internals; this
fails loudly, naming what moved, when a uvicorn upgrade changes them."""

from __future__ import annotations

import asyncio
import inspect

from uvicorn.protocols.http import httptools_impl
from uvicorn.server import ServerState

from app.http_server import ConnectionLimits, LimitedHttpProtocol, ServingConfig

HOOKS = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_header",
    "on_headers_complete",
    "on_body",
    "on_message_complete",
    "on_response_complete",
)


def test_the_uvicorn_internals_we_override_are_still_there() -> None:
    base = httptools_impl.HttpToolsProtocol
    missing = [name for name in HOOKS if not callable(getattr(base, name, None))]
    assert not missing, f"uvicorn's HttpToolsProtocol no longer has {missing}"
    assert 431 in httptools_impl.STATUS_LINE and 408 in httptools_impl.STATUS_LINE
    params = list(inspect.signature(base.__init__).parameters)
    assert params[:4] == ["self", "config", "server_state", "app_state"], params


async def test_the_protocol_reads_the_state_it_needs_from_uvicorn() -> None:
    limits = ConnectionLimits(max_header_bytes=1024, max_header_count=10, header_timeout=1, max_connections=2)
    config = ServingConfig("app.cli:build_app", factory=True, limits=limits)
    config.load()  # builds the app (no lifespan: nothing is opened)
    protocol = LimitedHttpProtocol(config, ServerState(), {}, asyncio.get_running_loop())
    for name in ("connections", "tasks", "cycle", "loop", "parser", "transport"):
        assert hasattr(protocol, name), f"uvicorn's protocol no longer sets {name!r}"
    assert config.http == "app.http_server:LimitedHttpProtocol"

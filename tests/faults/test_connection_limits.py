"""The server's limits against abusive clients, on real sockets to a real `serve` process: huge
or numerous headers (431), a head or a body trickled forever (408), idle connections by the
thousand (closed to make room; /healthz keeps answering), too many requests at once (503)."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.faults.processes import ServiceProcess, running_service

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def service(database_url: str) -> Iterator[ServiceProcess]:
    with running_service(
        database_url,
        MAX_HEADER_BYTES="16384",
        MAX_HEADER_COUNT="50",
        HEADER_TIMEOUT_SECONDS="1",
        BODY_READ_TIMEOUT_SECONDS="30",
        BODY_DEADLINE_SECONDS="1",
        KEEPALIVE_TIMEOUT_SECONDS="1",
        MAX_CONNECTIONS="64",
        MAX_CONCURRENT_REQUESTS="2",
        OFFLINE_TOKEN_DELAY_MS="500",
    ) as started:
        yield started


def _connect(service: ServiceProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", service.port), timeout=30)
    return sock


def _response(sock: socket.socket) -> tuple[int, bytes]:
    """The status and body of the one response the server sends before closing."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _trickle_until_answered(
    sock: socket.socket, start: bytes, piece: bytes, *, most: int = 600
) -> tuple[int, bytes]:
    """Send `start`, then `piece` every 0.1 s until the server answers (at most `most` pieces)."""
    sock.sendall(start)
    for _ in range(most):
        readable, _, _ = select.select([sock], [], [], 0.1)
        if readable:
            return _response(sock)
        sock.sendall(piece)
    raise AssertionError("the server never answered a trickled request")


def _send_huge_head(service: ServiceProcess, size: int, results: list[int]) -> None:
    """A request whose one header line is `size` bytes, sent in 64 KiB pieces until refused."""
    with _connect(service) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ")
        sent = 0
        piece = b"a" * 65536
        try:
            while sent < size:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
                sock.sendall(piece)
                sent += len(piece)
            results.append(_response(sock)[0])
        except (ConnectionResetError, BrokenPipeError):
            results.append(-1)  # refused and closed before the response could be read


def _healthy(service: ServiceProcess) -> bool:
    return httpx.get(f"{service.base_url}/healthz", timeout=30).status_code == 200


def test_huge_header_lines_are_431_and_cost_no_memory(service: ServiceProcess) -> None:
    process = psutil.Process(service.pid)
    before = process.memory_info().rss
    results: list[int] = []
    senders = [threading.Thread(target=_send_huge_head, args=(service, 50 * MiB, results)) for _ in range(4)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(timeout=120)
    grown = process.memory_info().rss - before
    # Each refused (431, or reset when the refusal overtook what was still being sent).
    assert len(results) == 4 and all(status in (431, -1) for status in results), results
    # Four 50 MB header lines: refused after 16 KiB each, so far less than one of them is held.
    assert grown < 20 * MiB, f"RSS grew by {grown / MiB:.1f} MiB"
    assert _healthy(service)


def test_a_head_over_the_limit_is_431(service: ServiceProcess) -> None:
    with _connect(service) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 20_000 + b"\r\n\r\n")
        status, body = _response(sock)
    assert status == 431
    assert "MAX_HEADER_BYTES" in json.loads(body)["error"]["message"]
    # A large body sent with its small head in one piece is the body's business, not the head's.
    payload = json.dumps({"metadata": {"k": "v" * 12_000}, "title": "x" * 300}).encode()
    with _connect(service) as sock:
        head = (
            "POST /threads HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n"
        )
        sock.sendall(head.encode() + payload)
        status, _ = _response(sock)
    assert status == 422  # the title is too long: answered by the app


def test_too_many_headers_are_431(service: ServiceProcess) -> None:
    headers = "".join(f"x-h{i}: v\r\n" for i in range(60))
    with _connect(service) as sock:
        sock.sendall(f"GET /healthz HTTP/1.1\r\nhost: x\r\n{headers}\r\n".encode())
        status, body = _response(sock)
    assert status == 431
    assert "MAX_HEADER_COUNT" in json.loads(body)["error"]["message"]


def test_a_trickled_head_is_408(service: ServiceProcess) -> None:
    with _connect(service) as sock:
        status, body = _trickle_until_answered(sock, b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ", b"a")
    assert status == 408
    assert json.loads(body)["error"]["code"] == "request_timeout"


def test_a_trickled_body_is_408_although_every_byte_arrives_in_time(service: ServiceProcess) -> None:
    start = (
        b"POST /threads HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: 5000\r\n\r\n{"
    )
    with _connect(service) as sock:
        status, body = _trickle_until_answered(sock, start, b" ")
    assert status == 408
    assert json.loads(body)["error"]["code"] == "request_timeout"


def _server_holds(service: ServiceProcess, port: int) -> bool:
    """Whether the server process still has its end of our connection from `port` open."""
    return any(c.raddr and c.raddr[1] == port for c in psutil.Process(service.pid).net_connections("tcp"))


def test_a_request_refused_while_its_client_still_sends_ends_in_an_orderly_close(
    service: ServiceProcess,
) -> None:
    """A 408 (or 413, 431) goes out while the client is still sending its request. Closing then,
    with the client's bytes still coming, makes the kernel reset the connection, which can
    destroy the response before the client reads it (seen as a flaky "connection reset" under
    load). The server half-closes instead and keeps dropping what arrives until the client closes."""
    start = (
        b"POST /threads HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: 5000\r\n\r\n{"
    )
    with _connect(service) as sock:
        port = sock.getsockname()[1]
        sock.sendall(start)
        assert select.select([sock], [], [], 30)[0], "no answer within the body deadline"
        data = b""
        while b"request_timeout" not in data or not data.endswith(b"}"):
            data += sock.recv(65536)
        assert data.startswith(b"HTTP/1.1 408")
        # The client goes on sending; the server still holds its end and reads, so no reset comes.
        for _ in range(20):
            sock.sendall(b" " * 1000)
        assert sock.recv(1) == b"", "an orderly end of the response, not a reset"
        assert _server_holds(service, port), "the server closed with the client still sending"
    # Once the client closes, the server closes its end too (at once, not after a timeout).
    deadline = time.monotonic() + 1.5
    while _server_holds(service, port) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _server_holds(service, port)


def test_idle_connections_are_closed_and_never_starve_health_checks(service: ServiceProcess) -> None:
    process = psutil.Process(service.pid)
    idle = [_connect(service) for _ in range(300)]
    try:
        # Far more idle connections than MAX_CONNECTIONS: the oldest idle ones make room.
        assert _healthy(service)
        assert process.num_fds() < 64 + 100
        # Those that sent nothing are closed by the head timeout; none is kept forever.
        for sock in idle[-10:]:
            assert sock.recv(1) == b""
    finally:
        for sock in idle:
            sock.close()


def test_a_kept_alive_connection_is_closed_when_idle(service: ServiceProcess) -> None:
    with _connect(service) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        data = b""
        while b'"ok"' not in data:
            data += sock.recv(65536)
        assert sock.recv(1) == b""  # the server closed it after KEEPALIVE_TIMEOUT_SECONDS


def test_requests_beyond_the_concurrency_cap_are_503(service: ServiceProcess) -> None:
    streams = []
    with httpx.Client(base_url=service.base_url, timeout=60) as client:
        try:
            for i in range(2):
                stream = client.stream(
                    "POST",
                    f"/threads/cap-{i}-{time.monotonic_ns()}/messages",
                    json={"content": "Who committed the latest malware threat?"},
                    headers={"accept": "text/event-stream"},
                )
                response = stream.__enter__()
                streams.append(stream)
                assert response.status_code == 200
            refused = httpx.get(f"{service.base_url}/threads", timeout=30)
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "server_busy"
            assert refused.headers["retry-after"] == "1"
            assert _healthy(service)
            assert httpx.get(f"{service.base_url}/metrics", timeout=30).status_code == 200
        finally:
            for stream in streams:
                stream.__exit__(None, None, None)

"""Clients that misbehave: leave mid-stream, send their body too slowly, or send 10 MB. Each gets
a clear answer (or none, having left), memory stays bounded, and the thread stays consistent."""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
import socket
import struct
import threading
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.conftest import make_settings, real_server, unique
from tests.faults.consistency import ThreadLedger, assert_thread_consistent, read_transcript
from tests.faults.processes import ServiceProcess, running_service

QUESTION = "Who committed the latest malware threat?"
WHOLE_TURN = 6  # the question, two tool calls with their results, the answer


async def raw_request(
    base_url: str, head: str, body: bytes = b""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head.encode() + body)
    await writer.drain()
    return reader, writer


def request_head(method: str, path: str, **headers: str) -> str:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return "\r\n".join(lines) + "\r\n\r\n"


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """The whole answer of a server that closes the connection after it (Connection: close)."""
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := await reader.read(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def wait_idle(http: httpx.AsyncClient, thread_id: str) -> None:
    """Until no turn runs on the thread (the turns the clients left still finish or fail)."""
    for _ in range(600):  # at most ~30 s
        response = await http.get(f"/threads/{thread_id}")
        if response.status_code == 404 or response.json()["status"] == "idle":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"thread {thread_id} stayed busy")


# -- clients that leave ---------------------------------------------------------------------


async def test_clients_leaving_mid_stream_leave_whole_turns_and_free_threads(database_url: str) -> None:
    settings = make_settings(database_url, model={"offline_token_delay_ms": 30})
    leave_after = {"run_start": 1, "tool_call": 1, "tool_result": 2, "token": 3}

    async with real_server(settings) as base_url, httpx.AsyncClient(base_url=base_url, timeout=60) as http:

        async def leave_stream_after(event: str, count: int) -> tuple[str, list[str]]:
            thread_id = unique(f"leave-{event}")
            seen: list[str] = []
            async with http.stream(
                "POST", f"/threads/{thread_id}/messages?stream=true", json={"content": QUESTION}
            ) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        seen.append(line.split(":", 1)[1].strip())
                    if seen.count(event) >= count:
                        break  # the connection closes here, mid-turn
            return thread_id, seen

        async def abort_after_sending() -> tuple[str, list[str]]:
            # Sends a whole JSON request, then resets the connection without reading a byte.
            thread_id = unique("abort")
            body = json.dumps({"content": QUESTION}).encode()
            _, writer = await raw_request(
                base_url,
                request_head("POST", f"/threads/{thread_id}/messages", Content_Length=str(len(body))),
                body,
            )
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()
            return thread_id, []

        left = await asyncio.gather(
            *(leave_stream_after(event, count) for event, count in leave_after.items()),
            *(leave_stream_after("token", 1) for _ in range(3)),
            abort_after_sending(),
        )

        async def check(thread_id: str, seen: list[str]) -> None:
            assert "done" not in seen and "error" not in seen, seen
            await wait_idle(http, thread_id)
            ledger = ThreadLedger(uncertain=[QUESTION])
            contents = await assert_thread_consistent(http, thread_id, ledger)
            transcript = await read_transcript(http, thread_id) if contents else []
            assert len(transcript) in (0, WHOLE_TURN), transcript  # the whole turn, or nothing
            follow = await http.post(f"/threads/{thread_id}/messages", json={"content": "hello again"})
            assert follow.status_code == 200, follow.text  # and the thread is free

        await asyncio.gather(*(check(thread_id, seen) for thread_id, seen in left))


# -- clients that send slowly ---------------------------------------------------------------


async def test_stalled_body_gets_408_and_the_server_stays_healthy(database_url: str) -> None:
    settings = make_settings(database_url, limits={"body_read_timeout_seconds": 1})
    async with real_server(settings) as base_url, httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        body = json.dumps({"content": "a message that never finishes arriving"}).encode()

        async def stall_after(sent: int) -> tuple[str, int, dict[str, str], bytes]:
            thread_id = unique(f"slow{sent}")
            reader, writer = await raw_request(
                base_url,
                request_head("POST", f"/threads/{thread_id}/messages", Content_Length=str(len(body))),
                body[:sent],
            )
            try:
                raw = await asyncio.wait_for(read_until_closed(reader), 30)
            finally:
                writer.close()
            return (thread_id, *parse_response(raw))

        stalled = [asyncio.create_task(stall_after(sent)) for sent in (0, 1, 5, len(body) - 1)]
        # While they stall, the server serves everyone else.
        healthy = await http.post(f"/threads/{unique()}/messages", json={"content": "hi"})
        assert healthy.status_code == 200, healthy.text
        for thread_id, status, headers, raw_body in await asyncio.gather(*stalled):
            assert status == 408, raw_body
            assert json.loads(raw_body)["error"]["code"] == "request_timeout"
            assert headers["content-type"] == "application/json"
            assert (await http.get(f"/threads/{thread_id}")).status_code == 404  # nothing was started
            retry = await http.post(f"/threads/{thread_id}/messages", json={"content": "hi"})
            assert retry.status_code == 200, retry.text
        assert (await http.get("/healthz")).status_code == 200


# -- clients that send too much -------------------------------------------------------------

PAYLOAD = 10 * 1024 * 1024


@pytest.fixture
def service(database_url: str) -> Iterator[ServiceProcess]:
    with running_service(database_url) as service:
        yield service


class PeakMemory:
    """The largest resident memory of a process (and its children) while sampling runs."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = self.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def rss(self) -> int:
        processes = [self.process, *self.process.children(recursive=True)]
        return sum(p.memory_info().rss for p in processes)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def offer_body(base_url: str, head: str, pieces: Iterator[bytes]) -> bytes:
    """Send `head`, then `pieces` until the server answers or closes; return its answer.

    Blocking sockets, in a worker thread: a server that refuses a body closes the connection
    with some of it unread, so it resets; asyncio streams then drop the answer already received,
    while a plain socket still reads it."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode())
        for piece in pieces:
            if select.select([sock], [], [], 0)[0]:
                break  # the answer is here: stop sending
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = []
        with contextlib.suppress(ConnectionResetError):
            while data := sock.recv(65536):
                answer.append(data)
    return b"".join(answer)


def huge_body() -> bytes:
    return b'{"content": "' + b"x" * (PAYLOAD - 16) + b'"}'


def pieces_of(body: bytes, *, chunked: bool) -> Iterator[bytes]:
    for start in range(0, len(body), 65536):
        piece = body[start : start + 65536]
        yield b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
    if chunked:
        yield b"0\r\n\r\n"


async def send_huge(base_url: str, path: str, *, chunked: bool) -> tuple[int, dict[str, str], bytes]:
    body = huge_body()
    framing = {"Transfer_Encoding": "chunked"} if chunked else {"Content_Length": str(len(body))}
    head = request_head("POST", path, **framing)
    return parse_response(
        await asyncio.to_thread(offer_body, base_url, head, pieces_of(body, chunked=chunked))
    )


@pytest.mark.slow
async def test_ten_megabytes_get_413_with_bounded_memory(service: ServiceProcess) -> None:
    async with httpx.AsyncClient(base_url=service.base_url, timeout=60) as http:
        thread_id = unique("big")
        first = await http.post(f"/threads/{thread_id}/messages", json={"content": "the one real turn"})
        assert first.status_code == 200, first.text
        ledger = ThreadLedger()
        ledger.record("the one real turn", first)
        before = await read_transcript(http, thread_id)
        for chunked in (False, True, False, True):  # warm up the paths the big requests take
            await send_huge(service.base_url, f"/threads/{thread_id}/messages", chunked=chunked)

        path = f"/threads/{thread_id}/messages"
        with PeakMemory(service.pid) as memory:
            baseline = memory.peak
            for chunked in (False, True):
                status, headers, body = await send_huge(service.base_url, path, chunked=chunked)
                assert status == 413 and json.loads(body)["error"]["code"] == "payload_too_large", body
                assert headers["content-type"] == "application/json"
        grown = memory.peak - baseline
        assert grown < PAYLOAD // 2, f"the server's memory grew by {grown} bytes for a refused body"

        # The thread is as it was: no turn recorded, not busy, and it takes the next turn.
        await assert_thread_consistent(http, thread_id, ledger)
        assert await read_transcript(http, thread_id) == before
        assert (await http.get("/healthz")).status_code == 200
        after = await http.post(f"/threads/{thread_id}/messages", json={"content": "still here"})
        assert after.status_code == 200, after.text

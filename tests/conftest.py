"""Test fixtures: a fresh real PostgreSQL database per session, and the app with its lifespan.

Database: TEST_DATABASE_URL if set, else the server on 127.0.0.1:5432 when it answers, else the
embedded PostgreSQL the service itself uses. A new database is created for the session and
dropped at the end.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from asgi_lifespan import LifespanManager
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from app.main import create_app
from app.settings import (
    AuthSettings,
    DatabaseSettings,
    GraphSettings,
    LakebaseSettings,
    LimitSettings,
    MemorySettings,
    ModelSettings,
    RetentionSettings,
    RunSettings,
    ServerSettings,
    Settings,
    ToolSettings,
)

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session", autouse=True)
def mlflow_in_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Traces a test asks for (`x-mlflow-return-trace-id`, also what the fuzzers may send) go to
    a store of this session, never to the working directory."""
    patch = pytest.MonkeyPatch()
    store = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    yield
    patch.undo()


@pytest.fixture(scope="session", autouse=True)
def long_term_memory_off_by_default() -> Iterator[None]:
    """The session server may lack pgvector (the local PostgreSQL 15 does): tests, and the
    processes they start, run with long-term memory off unless they turn it on with a database
    from `vector_database_url`."""
    patch = pytest.MonkeyPatch()
    patch.setenv("LONG_TERM_MEMORY", "false")
    yield
    patch.undo()


def _has_pgvector(url: str) -> bool:
    with psycopg.connect(url, connect_timeout=2) as conn:
        row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    return row is not None


@pytest.fixture(scope="session")
def vector_admin_url(admin_url: str) -> Iterator[str]:
    """A maintenance database on a server with pgvector: the session server when it has it,
    else the embedded PostgreSQL (which ships pgvector)."""
    if _has_pgvector(admin_url):
        yield admin_url
        return
    try:
        yield from _embedded_server("lma-test-pgv-")
    except _EmbeddedDidNotStart as exc:  # only where the embedded server cannot run at all
        pytest.skip(f"no PostgreSQL with pgvector: the embedded server did not start ({exc.__cause__})")


@pytest.fixture(scope="session")
def vector_database_url(vector_admin_url: str) -> Iterator[str]:
    """A fresh database with pgvector available (long-term memory tests)."""
    with scratch_database(vector_admin_url) as url:
        yield url


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    """A URL to a maintenance database on a server the tests may create databases on."""
    explicit = os.environ.get("TEST_DATABASE_URL")
    if explicit:
        yield explicit
        return
    if _reachable(LOCAL_SERVER):
        yield LOCAL_SERVER
        return
    yield from _embedded_server("lma-test-pg-")


class _EmbeddedDidNotStart(RuntimeError):
    pass


def _embedded_server(prefix: str) -> Iterator[str]:
    """The URL of an embedded PostgreSQL in a temporary folder, stopped and removed after."""
    from app.memory.embedded import start_embedded

    folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp" if os.geteuid() == 0 else None))
    try:
        server = start_embedded(folder / "pgdata")
    except Exception as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise _EmbeddedDidNotStart() from exc
    try:
        yield server.uri
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A new empty database on the test server, dropped afterwards (for tests that need their
    own demo data or schema state, apart from the session database)."""
    name = f"lma_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(admin_url)
    params["dbname"] = name
    try:
        yield make_conninfo(**params)  # type: ignore[arg-type]
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(admin_url: str) -> Iterator[str]:
    with scratch_database(admin_url) as url:
        yield url


def make_settings(database_url: str | None, **groups: Any) -> Settings:
    """Settings for a test app: the session database plus any group overrides (as dicts)."""
    values: dict[str, Any] = {"url": database_url, "pool_min_size": 1, "pool_max_size": 8}
    values.update(groups.pop("database", {}))
    settings = Settings(
        database=DatabaseSettings(**values),
        lakebase=LakebaseSettings(**groups.pop("lakebase", {})),
        auth=AuthSettings(**groups.pop("auth", {})),
        model=ModelSettings(**groups.pop("model", {})),
        runs=RunSettings(**groups.pop("runs", {})),
        limits=LimitSettings(**groups.pop("limits", {})),
        server=ServerSettings(**groups.pop("server", {})),
        retention=RetentionSettings(**groups.pop("retention", {})),
        tools=ToolSettings(**groups.pop("tools", {})),
        graphs=GraphSettings(**groups.pop("graphs", {})),
        memory=MemorySettings(**groups.pop("memory", {})),
    )
    assert not groups, f"unknown settings groups: {sorted(groups)}"
    return settings


@asynccontextmanager
async def running_app(
    settings: Settings, *, workspace: Any | None = None
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """The app with its lifespan running, and a client that talks to it over ASGI."""
    app = create_app(settings, workspace=workspace)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
            yield app, client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def real_server(settings: Settings) -> AsyncIterator[str]:
    """The app served by uvicorn on 127.0.0.1 (for what ASGI transport cannot show: disconnects)."""
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(600):
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(make_settings(database_url)) as (_, c):
        yield c


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@contextmanager
def one_worker_at_a_time(name: str) -> Iterator[None]:
    """Held by one test process at a time (the suite runs in pytest-xdist workers): for what
    must not run twice at once on this machine, such as apt-get or `npm ci` into one folder."""
    lock_file = Path(tempfile.gettempdir()) / f"lma-tests-{name}.lock"
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def system_tool(command: str, apt_package: str) -> str:
    """The path of a system tool a test needs: installed with apt-get when missing and we are
    root on Debian (as in CI), else the test is skipped saying why."""
    found = shutil.which(command)
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(
            f"{command} is missing and cannot be installed here (needs root and apt-get): {apt_package}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with one_worker_at_a_time("apt"):
        for step in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", apt_package],
        ):
            if shutil.which(command):
                break  # another worker installed it meanwhile
            done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                pytest.skip(f"could not install {apt_package} with apt-get: {done.stderr.strip()[-500:]}")
    found = shutil.which(command)
    if not found:
        pytest.skip(f"{apt_package} was installed but {command} is still not on PATH")
    return found


def latest_malware(database_url: str) -> tuple[str, str]:
    """The source IP and user of the latest Malware threat in the sample data (the demo's answer)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT t.source_ip, u.user_name FROM cyber_threat_detection t"
            " JOIN user_info u ON u.ip_address = t.source_ip"
            " WHERE t.threat_type = 'Malware' ORDER BY t.event_timestamp DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def scalar(conn: psycopg.Connection[Any], query: str, params: Sequence[Any] = ()) -> Any:
    """The first column of the one row `query` returns (a count, a key)."""
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def user_input(content: Any) -> dict[str, Any]:
    """A run's input through `langgraph-sdk`: one user message."""
    return {"messages": [{"role": "user", "content": content}]}

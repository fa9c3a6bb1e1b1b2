"""deploy/grants.sql gives a non-superuser role exactly what the service needs once an admin
has created the tables (`init-db`), and DB_MIGRATE=false refuses to start on missing tables."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from app.memory.schema import SchemaNotReady
from tests.conftest import make_settings, running_app, unique

ROOT = Path(__file__).resolve().parents[2]


def _log_model_script() -> Any:
    spec = importlib.util.spec_from_file_location("log_model", ROOT / "deploy" / "log_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LOG_MODEL = _log_model_script()


def run_psql_script(url: str, path: Path, variables: dict[str, str]) -> None:
    """Apply a psql script whose only psql feature is :"name" identifier variables, as the
    bundle's job does (deploy/log_model.py)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in LOG_MODEL.psql_statements(path.read_text(), variables):
            conn.execute(statement)


@contextmanager
def _login_role(database_url: str) -> Iterator[str]:
    """A role like a service principal's: it may log in, and nothing else."""
    role = f"lma_sp_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(sql.Identifier(role))
        )
    try:
        yield role
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture
def service_role(database_url: str) -> Iterator[str]:
    with _login_role(database_url) as role:
        yield role


async def _turn_as(database_url: str, role: str, schema: str) -> None:
    """The service runs a turn as `role` with DB_MIGRATE=false (rows only)."""
    settings = make_settings(
        as_role(database_url, role),
        database={"schema_name": schema, "migrate": False, "load_sample_data": False},
    )
    async with running_app(settings) as (_, client):
        thread_id = unique()
        first = await client.post(
            f"/threads/{thread_id}/messages", json={"content": "Who committed the latest malware threat?"}
        )
        assert first.status_code == 200, first.text
        assert "committed by" in first.json()["messages"][-1]["content"]
        assert (await client.get(f"/threads/{thread_id}/history")).status_code == 200
        assert (await client.delete(f"/threads/{thread_id}")).status_code == 204


def as_role(database_url: str, role: str) -> str:
    params = conninfo_to_dict(database_url)
    params["user"] = role
    params.pop("password", None)
    return make_conninfo(**params)  # type: ignore[arg-type]


async def test_least_privilege_role_runs_the_service(database_url: str, service_role: str) -> None:
    schema = f"granted_{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "DATABASE_URL": database_url, "DB_SCHEMA": schema}
    subprocess.run(
        [sys.executable, "-m", "app.cli", "load-sample-data"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    run_psql_script(database_url, ROOT / "deploy" / "grants.sql", {"schema": schema, "role": service_role})

    await _turn_as(database_url, service_role, schema)

    with (
        psycopg.connect(as_role(database_url, service_role), autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(sql.SQL("CREATE TABLE {}.intruder (x int)").format(sql.Identifier(schema)))


async def test_migrate_off_refuses_to_start_without_tables(database_url: str) -> None:
    settings = make_settings(database_url, database={"schema_name": "never_initialised", "migrate": False})
    with pytest.raises(SchemaNotReady, match="init-db"):
        async with running_app(settings):
            pass


async def test_the_bundle_job_prepares_the_memory_and_grants_the_other_identities(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What `log_model.py --grant-role A --grant-role B` does before logging: the tables created
    # as the job's identity (here the test's admin), then the App's and the endpoint's roles
    # granted their rows; both then run the service without creating anything.
    schema = f"job_{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DB_SCHEMA", schema)
    with _login_role(database_url) as app_role, _login_role(database_url) as endpoint_role:
        assert LOG_MODEL.parse_args(["--grant-role", app_role, "--grant-role", ""]).grant_role == [app_role]
        await asyncio.to_thread(LOG_MODEL.prepare_memory, [app_role, endpoint_role])
        for role in (app_role, endpoint_role):
            await _turn_as(database_url, role, schema)

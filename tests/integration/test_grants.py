"""deploy/grants.sql gives a non-superuser role exactly what the service needs once an admin
has created the tables (`init-db`), and DB_MIGRATE=false refuses to start on missing tables."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from app.memory.schema import SchemaNotReady
from tests.conftest import make_settings, running_app, unique

ROOT = Path(__file__).resolve().parents[2]


def run_psql_script(url: str, path: Path, variables: dict[str, str]) -> None:
    """Apply a psql script whose only psql feature is :"name" identifier variables."""
    text = re.sub(r"^\s*--.*$", "", path.read_text(), flags=re.MULTILINE)
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in (s.strip() for s in text.split(";")):
            if not statement:
                continue
            for name, value in variables.items():
                statement = statement.replace(f':"{name}"', sql.Identifier(value).as_string(conn))
            conn.execute(statement.encode())


@pytest.fixture
def service_role(database_url: str) -> Iterator[str]:
    role = f"lma_sp_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(sql.Identifier(role))
        )
    yield role
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


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

    settings = make_settings(
        as_role(database_url, service_role),
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

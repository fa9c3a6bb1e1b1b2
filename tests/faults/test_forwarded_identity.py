"""AUTH_MODE=databricks: the port must be reachable only through the Databricks Apps proxy, so
`serve` refuses a non-loopback address outside Apps unless told the headers can be trusted; and
an email is one owner however it is spelled, including rows stored before that rule."""

from __future__ import annotations

import uuid

import httpx
import psycopg
import pytest

from app.lifespan import open_resources
from tests.conftest import make_settings, real_server, scratch_database
from tests.faults.processes import run_cli, running_service


@pytest.mark.slow
def test_serve_refuses_a_public_address_outside_databricks_apps() -> None:
    done = run_cli(["serve", "--host", "0.0.0.0"], AUTH_MODE="databricks")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("configuration error:") and "TRUST_FORWARDED_HEADERS" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "env",
    [
        {"TRUST_FORWARDED_HEADERS": "true"},
        {"DATABRICKS_APP_NAME": "lma", "DATABRICKS_APP_PORT": "8000"},
    ],
    ids=["trusted-by-the-operator", "inside-databricks-apps"],
)
def test_serve_starts_on_a_public_address_when_the_proxy_is_the_only_way_in(
    database_url: str, env: dict[str, str]
) -> None:
    # PORT wins over DATABRICKS_APP_PORT in the environment the helper sets.
    with running_service(database_url, "--host", "0.0.0.0", AUTH_MODE="databricks", **env) as service:
        response = httpx.get(f"{service.base_url}/threads", headers={"x-forwarded-email": "a@corp.example"})
        assert response.status_code == 200


async def test_an_email_is_one_owner_however_it_is_spelled(database_url: str) -> None:
    thread_id = f"t-{uuid.uuid4().hex[:8]}"
    settings = make_settings(database_url, auth={"mode": "databricks"})
    async with real_server(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        created = await client.post(
            "/threads", json={"thread_id": thread_id}, headers={"x-forwarded-email": "Alice@Corp.Example"}
        )
        assert created.status_code == 201
        for spelling in ("alice@corp.example", "ALICE@CORP.EXAMPLE"):
            found = await client.get(f"/threads/{thread_id}", headers={"x-forwarded-email": spelling})
            assert found.status_code == 200
        other = await client.get(f"/threads/{thread_id}", headers={"x-forwarded-email": "bob@corp.example"})
        assert other.status_code == 404


async def test_the_migration_merges_spellings_without_losing_a_thread(admin_url: str) -> None:
    with scratch_database(admin_url) as url:
        settings = make_settings(url, database={"load_sample_data": False})
        async with open_resources(settings):
            pass
        rows = [("alice@corp.example", "t1"), ("Alice@Corp.example", "t1"), ("ALICE@corp.example", "t1")]
        rows += [("Bob@Corp.example", "t2"), ("api-owner", "t3"), ("Api-Owner", "t3")]
        with psycopg.connect(url) as conn:
            conn.cursor().executemany(
                "INSERT INTO lma_threads (owner, thread_id, thread_key) VALUES (%s, %s, gen_random_uuid())",
                rows,
            )
            # From migration 5 on (the later ones are idempotent), so 5 runs again.
            conn.execute("DELETE FROM lma_migrations WHERE v >= 5")
        async with open_resources(settings):
            pass
        with psycopg.connect(url) as conn:
            stored = conn.execute(
                "SELECT owner, thread_id FROM lma_threads ORDER BY owner, thread_id"
            ).fetchall()
        assert len(stored) == len(rows)
        owners = {owner for owner, _ in stored}
        assert owners == {"alice@corp.example", "bob@corp.example", "api-owner", "Api-Owner"}
        alice = sorted(t for o, t in stored if o == "alice@corp.example")
        assert alice[0] == "t1" and len(set(alice)) == 3 and all(t.startswith("t1:") for t in alice[1:])

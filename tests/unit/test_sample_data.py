"""The synthetic demo data: deterministic, consistent, and loaded idempotently."""

from __future__ import annotations

from collections import Counter

import httpx
import psycopg
from psycopg_pool import AsyncConnectionPool

from app.agent.sample_data import THREAT_TYPES, generate, load_sample_data


def test_generate_is_deterministic() -> None:
    assert generate() == generate()
    assert generate(seed=3) == generate(seed=3)
    assert generate(seed=3) != generate()


def test_default_sizes() -> None:
    users, threats = generate()
    assert len(users) == 20
    assert len(threats) == 100


def test_ids_are_unique() -> None:
    users, threats = generate()
    assert len({t.threat_id for t in threats}) == len(threats)
    assert len({u.user_id for u in users}) == len(users)
    assert len({u.ip_address for u in users}) == len(users)
    assert len({u.user_name for u in users}) == len(users)
    assert len({u.email for u in users}) == len(users)


def test_every_threat_comes_from_a_known_user() -> None:
    users, threats = generate()
    ips = {u.ip_address for u in users}
    for threat in threats:
        assert threat.source_ip in ips, threat


def test_every_threat_type_occurs() -> None:
    _, threats = generate()
    counts = Counter(t.threat_type for t in threats)
    assert set(counts) == set(THREAT_TYPES)


def test_event_timestamps_are_unique() -> None:
    _, threats = generate()
    stamps = [t.event_timestamp for t in threats]
    assert len(set(stamps)) == len(stamps)
    # In particular, "the latest" of each type is never a tie.
    for kind in THREAT_TYPES:
        of_kind = sorted((t.event_timestamp for t in threats if t.threat_type == kind), reverse=True)
        assert len(of_kind) == 1 or of_kind[0] > of_kind[1]


def test_other_sizes() -> None:
    users, threats = generate(users=5, threats=10)
    assert len(users) == 5 and len(threats) == 10
    assert {t.source_ip for t in threats} <= {u.ip_address for u in users}


def _counts(database_url: str) -> tuple[int, int]:
    with psycopg.connect(database_url) as conn:
        users = conn.execute("SELECT count(*) FROM user_info").fetchone()
        threats = conn.execute("SELECT count(*) FROM cyber_threat_detection").fetchone()
    assert users is not None and threats is not None
    return users[0], threats[0]


async def test_loading_twice_inserts_nothing(client: httpx.AsyncClient, database_url: str) -> None:
    # The `client` fixture's lifespan has loaded the data already.
    assert (await client.get("/readyz")).status_code == 200
    assert _counts(database_url) == (20, 100)
    async with AsyncConnectionPool(database_url, kwargs={"autocommit": True}, min_size=1, open=False) as pool:
        assert await load_sample_data(pool) == 0
        assert await load_sample_data(pool) == 0
    assert _counts(database_url) == (20, 100)


async def test_loaded_rows_match_the_generated_rows(client: httpx.AsyncClient, database_url: str) -> None:
    users, threats = generate()
    with psycopg.connect(database_url) as conn:
        stored_users = conn.execute(
            "SELECT user_id, user_name, ip_address FROM user_info ORDER BY user_id"
        ).fetchall()
        stored_threats = conn.execute(
            "SELECT threat_id, threat_type, source_ip FROM cyber_threat_detection ORDER BY threat_id"
        ).fetchall()
    assert stored_users == [(u.user_id, u.user_name, u.ip_address) for u in users]
    assert stored_threats == [(t.threat_id, t.threat_type, t.source_ip) for t in threats]

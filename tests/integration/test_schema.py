"""DB_SCHEMA / LAKEBASE_SCHEMA: every table, ours and the checkpointer's, lives in that schema."""

from __future__ import annotations

import psycopg

from tests.conftest import make_settings, running_app, unique


async def test_all_tables_live_in_the_configured_schema(database_url: str) -> None:
    settings = make_settings(database_url, database={"schema_name": "agent_memory"})
    async with running_app(settings) as (_, client):
        response = await client.post(
            f"/threads/{unique()}/messages", json={"content": "Who committed the latest malware threat?"}
        )
        assert response.status_code == 200
    with psycopg.connect(database_url) as conn:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'agent_memory'"
            ).fetchall()
        }
    assert {
        "checkpoints",
        "checkpoint_blobs",
        "checkpoint_writes",
        "lma_threads",
        "lma_messages",
        "lma_runs",
        "cyber_threat_detection",
        "user_info",
    } <= tables

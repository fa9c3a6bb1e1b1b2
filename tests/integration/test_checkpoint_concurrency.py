"""Checkpoint I/O of different threads overlaps in the database (no process-wide lock).

A trigger makes every checkpoint insert wait on an advisory lock the test holds, so a write
that reaches the database parks there, visible in pg_stat_activity. With our saver both
threads' writes park at once; with the stock saver's instance lock only one ever gets there.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from app.agent.graph import build_graph
from app.agent.offline_model import OfflineChatModel
from app.agent.tools import build_local_tools
from app.memory.checkpointer import PooledPostgresSaver
from app.memory.pool import open_database
from app.settings import DatabaseSettings
from tests.conftest import make_settings, running_app

LOCK = 4_242_424


@pytest.fixture
async def gated_checkpoints(database_url: str) -> Any:
    async with running_app(make_settings(database_url)):
        pass  # make sure the tables exist
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE OR REPLACE FUNCTION lma_test_gate() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$ BEGIN PERFORM pg_advisory_xact_lock_shared({LOCK}); RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER lma_test_gate BEFORE INSERT ON checkpoints"
            " FOR EACH ROW EXECUTE FUNCTION lma_test_gate()"
        )
        try:
            yield
        finally:
            conn.execute("DROP TRIGGER IF EXISTS lma_test_gate ON checkpoints")
            conn.execute("DROP FUNCTION IF EXISTS lma_test_gate()")


def _parked(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
    ).fetchone()
    return int(row[0]) if row else 0


async def _parked_writes(database_url: str, saver_class: type[AsyncPostgresSaver]) -> int:
    """Most checkpoint inserts seen waiting at the gate at once while two threads run a turn."""
    settings = DatabaseSettings(url=database_url, pool_min_size=4, pool_max_size=8)
    async with open_database(settings) as database:
        saver = saver_class(database.pool)  # type: ignore[arg-type]
        graph = build_graph(
            model=OfflineChatModel(),
            tools=build_local_tools(database.pool),
            system_prompt="",
            checkpointer=saver,
        )
        with psycopg.connect(database_url, autocommit=True) as gate:
            gate.execute("SELECT pg_advisory_lock(%s)", (LOCK,))
            turns = [
                asyncio.create_task(
                    graph.ainvoke(
                        {"messages": [HumanMessage("hello")]},
                        {"configurable": {"thread_id": str(uuid.uuid4())}},
                        durability="exit",
                    )
                )
                for _ in range(2)
            ]
            most = 0
            for _ in range(60):  # up to 3 s
                most = max(most, await asyncio.to_thread(_parked, gate))
                if most == 2:
                    break
                await asyncio.sleep(0.05)
            gate.execute("SELECT pg_advisory_unlock(%s)", (LOCK,))
            await asyncio.gather(*turns)
    return most


async def test_two_threads_write_checkpoints_at_the_same_time(
    database_url: str, gated_checkpoints: Any
) -> None:
    assert await _parked_writes(database_url, PooledPostgresSaver) == 2


async def test_stock_saver_serialises_them(database_url: str, gated_checkpoints: Any) -> None:
    """Why the subclass exists: the stock saver never lets the second write reach the database."""
    assert await _parked_writes(database_url, AsyncPostgresSaver) == 1

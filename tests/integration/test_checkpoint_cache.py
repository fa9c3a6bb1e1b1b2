"""The saver answers a turn's checkpoint loads from what it wrote, exactly as the table would,
and stages a turn's checkpoint rows (in the stock layout) for the turn's commit to write.

A fresh saver over the same database has nothing kept, so it reads the table: comparing the two
is comparing the kept copy with the database's answer.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import psycopg
import pytest
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from app.agent.graph import build_graph
from app.agent.offline_model import OfflineChatModel
from app.agent.tools import build_local_tools
from app.memory.checkpointer import HEAD_KEY, STAGE_KEY, PooledPostgresSaver, StagedCheckpoints
from app.memory.pool import Database, open_database
from app.settings import DatabaseSettings
from tests.conftest import make_settings, running_app, unique


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    async with running_app(make_settings(database_url)):
        pass  # the tables and the sample data exist
    async with open_database(DatabaseSettings(url=database_url)) as database:
        yield database


async def _turn(
    saver: PooledPostgresSaver, database: Database, configurable: dict[str, Any], text: str
) -> str:
    graph = build_graph(
        model=OfflineChatModel(),
        tools=build_local_tools(database.pool),
        system_prompt="",
        checkpointer=saver,
    )
    config: RunnableConfig = {"configurable": configurable}
    checkpoint_id = ""
    # Given a list of stream modes, langgraph's astream yields (mode, payload) pairs, though it is
    # annotated as yielding `dict[str, Any] | Any`.
    stream = cast(
        AsyncIterator[tuple[str, Any]],
        graph.astream(
            {"messages": [HumanMessage(text)]}, config, stream_mode=["checkpoints"], durability="exit"
        ),
    )
    async for mode, payload in stream:
        assert mode == "checkpoints"
        checkpoint_id = payload["config"]["configurable"]["checkpoint_id"]
    return checkpoint_id


async def test_kept_head_is_what_the_table_returns(database: Database) -> None:
    saver = PooledPostgresSaver(database.pool)
    thread = str(uuid.uuid4())
    first = await _turn(
        saver, database, {"thread_id": thread, HEAD_KEY: None}, "Who committed the latest malware threat?"
    )
    head = await _turn(saver, database, {"thread_id": thread, HEAD_KEY: first}, "What was their IP address?")

    kept = await saver.aget_tuple({"configurable": {"thread_id": thread, HEAD_KEY: head}})
    stored = await PooledPostgresSaver(database.pool).aget_tuple(
        {"configurable": {"thread_id": thread, "checkpoint_id": head}}
    )
    assert kept is not None and stored is not None
    assert kept.config == stored.config
    assert kept.checkpoint == stored.checkpoint
    assert kept.metadata == stored.metadata
    assert kept.parent_config == stored.parent_config
    assert kept.parent_config is not None and kept.parent_config["configurable"]["checkpoint_id"] == first
    assert kept.pending_writes == stored.pending_writes == []


async def test_a_loaded_head_can_be_advanced_without_changing_the_kept_copy(database: Database) -> None:
    saver = PooledPostgresSaver(database.pool)
    thread = str(uuid.uuid4())
    head = await _turn(saver, database, {"thread_id": thread, HEAD_KEY: None}, "hello")
    config: RunnableConfig = {"configurable": {"thread_id": thread, HEAD_KEY: head}}
    loaded = await saver.aget_tuple(config)
    assert loaded is not None
    loaded.checkpoint["channel_versions"]["messages"] = "mutated"
    loaded.checkpoint["channel_values"].clear()
    again = await saver.aget_tuple(config)
    assert again is not None and again.checkpoint["channel_versions"]["messages"] != "mutated"
    assert again.checkpoint["channel_values"]["messages"]


async def test_the_latest_checkpoint_is_the_registry_head_not_the_newest_row(database: Database) -> None:
    thread = str(uuid.uuid4())
    writer = PooledPostgresSaver(database.pool)
    head = await _turn(writer, database, {"thread_id": thread, HEAD_KEY: None}, "hello")
    # A newer row the registry never recorded, like the partial checkpoint of a crashed turn.
    newest = await _turn(writer, database, {"thread_id": thread, HEAD_KEY: head}, "hello again")

    reader = PooledPostgresSaver(database.pool)
    latest = await reader.aget_tuple({"configurable": {"thread_id": thread, HEAD_KEY: head}})
    assert latest is not None and latest.checkpoint["id"] == head
    stock_latest = await reader.aget_tuple({"configurable": {"thread_id": thread}})
    assert stock_latest is not None and stock_latest.checkpoint["id"] == newest


async def test_a_thread_without_a_head_starts_fresh_despite_leftover_rows(database: Database) -> None:
    saver = PooledPostgresSaver(database.pool)
    thread = str(uuid.uuid4())
    await _turn(saver, database, {"thread_id": thread}, "a turn that never completed")
    assert await saver.aget_tuple({"configurable": {"thread_id": thread, HEAD_KEY: None}}) is None
    fresh = await _turn(saver, database, {"thread_id": thread, HEAD_KEY: None}, "hello")
    saved = await PooledPostgresSaver(database.pool).aget_tuple(
        {"configurable": {"thread_id": thread, "checkpoint_id": fresh}}
    )
    assert saved is not None and saved.parent_config is None


async def test_pending_writes_added_later_are_read_from_the_table(database: Database) -> None:
    saver = PooledPostgresSaver(database.pool)
    thread = str(uuid.uuid4())
    head = await _turn(saver, database, {"thread_id": thread, HEAD_KEY: None}, "hello")
    await saver.aput_writes(
        {"configurable": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": head}},
        [("messages", [HumanMessage("pending")])],
        task_id="task-1",
    )
    loaded = await saver.aget_tuple({"configurable": {"thread_id": thread, HEAD_KEY: head}})
    assert loaded is not None and loaded.pending_writes is not None
    assert [(task, channel) for task, channel, _ in loaded.pending_writes] == [("task-1", "messages")]


async def test_a_staged_checkpoint_is_not_written_and_its_rows_are_the_stock_layout(
    database: Database,
) -> None:
    saver = PooledPostgresSaver(database.pool)
    thread = str(uuid.uuid4())
    stage = StagedCheckpoints()
    head = await _turn(
        saver,
        database,
        {"thread_id": thread, HEAD_KEY: None, STAGE_KEY: stage},
        "Who committed the latest malware threat?",
    )
    assert stage.last_id == head
    config: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_id": head}}
    assert await PooledPostgresSaver(database.pool).aget_tuple(config) is None, "nothing written yet"

    # The stock saver's own statements take the staged rows as they are...
    async with database.pool.connection() as conn, conn.cursor() as cur:
        await cur.executemany(saver.UPSERT_CHECKPOINT_BLOBS_SQL, stage.blobs)
        await cur.executemany(saver.UPSERT_CHECKPOINTS_SQL, stage.checkpoints)
    # ...and read back, they are the checkpoint the run made.
    kept = await saver.aget_tuple(config)
    stored = await AsyncPostgresSaver(database.pool).aget_tuple(config)  # type: ignore[arg-type]
    assert kept is not None and stored is not None
    assert (stored.checkpoint, stored.metadata, stored.parent_config) == (
        kept.checkpoint,
        kept.metadata,
        kept.parent_config,
    )
    assert [m.type for m in stored.checkpoint["channel_values"]["messages"]] == [
        "human",
        "ai",
        "tool",
        "ai",
        "tool",
        "ai",
    ]


async def test_each_turn_writes_one_checkpoint_in_its_commit(
    database_url: str,
) -> None:
    thread_id = unique()
    async with running_app(make_settings(database_url)) as (_, client):
        for text in ("Who committed the latest malware threat?", "What was their IP address?"):
            assert (
                await client.post(f"/threads/{thread_id}/messages", json={"content": text})
            ).status_code == 200
        history = (await client.get(f"/threads/{thread_id}/history")).json()
    with psycopg.connect(database_url) as conn:
        key, head = conn.execute(
            "SELECT thread_key::text, head_checkpoint_id FROM lma_threads WHERE thread_id = %s", (thread_id,)
        ).fetchone() or (None, None)
    assert key is not None
    async with open_database(DatabaseSettings(url=database_url)) as database:
        stock = AsyncPostgresSaver(database.pool)  # type: ignore[arg-type]
        saved = [t async for t in stock.alist({"configurable": {"thread_id": key}})]
    assert saved[0].checkpoint["id"] == head
    assert len(saved) == 2 and saved[0].parent_config is not None
    assert saved[0].parent_config["configurable"]["checkpoint_id"] == saved[1].checkpoint["id"]
    assert {c["checkpoint_id"] for c in history["checkpoints"]} == {t.checkpoint["id"] for t in saved}
    assert saved[0].checkpoint["channel_values"]["messages"][-1].content.startswith("Their IP address")

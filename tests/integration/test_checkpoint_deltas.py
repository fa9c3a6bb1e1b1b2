"""Checkpoints that store a list's new version as what it appends read back exactly as the stock
saver's: the same graph, driven by the same random programs (appends, removals, rewrites,
overwrites, forks, state updates, interrupts), runs on our saver and on the stock
`AsyncPostgresSaver`, each on its own database, and every read must be equal, from the saver
that wrote the thread (values kept in memory) and from a fresh one (values read from the table).
"""

from __future__ import annotations

import operator
from collections.abc import AsyncIterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Annotated, Any, TypedDict

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, RemoveMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import REMOVE_ALL_MESSAGES, add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, Overwrite, interrupt
from psycopg_pool import AsyncConnectionPool

from app.memory.blob_deltas import DELTA_PREFIX
from app.memory.checkpointer import STAGE_KEY, PooledPostgresSaver, StagedCheckpoints
from tests.conftest import scratch_database, unique


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    notes: Annotated[list[str], operator.add]
    turns: int


def respond(state: State) -> dict[str, Any]:
    """Answers the last message: "rewrite ..." replaces the whole conversation with a summary
    (and overwrites the notes), "ask ..." waits for a human's answer (an interrupt)."""
    messages = state["messages"]
    text = str(messages[-1].content)
    if text.startswith("rewrite"):
        return {
            "messages": [
                RemoveMessage(id=REMOVE_ALL_MESSAGES),
                AIMessage(f"summary of {len(messages)}", id=f"s-{text}"),
            ],
            "notes": Overwrite([f"reset by {text}"]),
        }
    if text.startswith("ask"):
        answer = interrupt(f"confirm {text}")
        return {"messages": [AIMessage(f"{text}: {answer}", id=f"a-{text}")], "notes": [str(answer)]}
    return {
        "messages": [AIMessage(f"re: {text}", id=f"a-{text}")],
        "notes": [text],
        "turns": state.get("turns", 0) + 1,
    }


Graph = CompiledStateGraph[State, None, State, State]


def build(saver: BaseCheckpointSaver[Any]) -> Graph:
    builder = StateGraph(State)
    builder.add_node("respond", respond)
    builder.add_edge(START, "respond")
    builder.add_edge("respond", END)
    return builder.compile(checkpointer=saver)


@dataclass
class Databases:
    ours: AsyncConnectionPool[Any]
    stock: AsyncConnectionPool[Any]
    ours_url: str
    stock_url: str


@pytest.fixture(scope="module")
async def databases(admin_url: str) -> AsyncIterator[Databases]:
    with scratch_database(admin_url) as ours_url, scratch_database(admin_url) as stock_url:
        kwargs = {"autocommit": True, "prepare_threshold": 0}
        async with (
            AsyncConnectionPool(ours_url, kwargs=kwargs, min_size=1, max_size=4, open=False) as ours,
            AsyncConnectionPool(stock_url, kwargs=kwargs, min_size=1, max_size=4, open=False) as stock,
        ):
            await ours.open(wait=True)
            await stock.open(wait=True)
            await PooledPostgresSaver(ours).setup()
            await AsyncPostgresSaver(stock).setup()  # type: ignore[arg-type]
            yield Databases(ours, stock, ours_url, stock_url)


def _view_of(snapshot: Any) -> tuple[Any, ...]:
    """What a state snapshot says, less what differs by nature (checkpoint ids, timestamps)."""
    metadata = snapshot.metadata or {}
    return (
        snapshot.values,
        snapshot.next,
        metadata.get("source"),
        metadata.get("step"),
        [i.value for i in snapshot.interrupts],
        snapshot.parent_config is None,
    )


async def views(graph: Graph, config: RunnableConfig) -> list[tuple[Any, ...]]:
    """The latest state, the whole history, and a 3-checkpoint page before the second."""
    latest = _view_of(await graph.aget_state(config))
    history = [s async for s in graph.aget_state_history(config)]
    page: list[Any] = []
    if len(history) > 1:
        page = [s async for s in graph.aget_state_history(config, before=history[1].config, limit=3)]
    return [latest, *map(_view_of, history), ("page",), *map(_view_of, page)]


Step = tuple[str, int]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("say"), st.integers(1, 3)),
        st.tuples(st.just("remove"), st.integers(0, 40)),
        st.tuples(st.just("rewrite"), st.just(0)),
        st.tuples(st.just("fork"), st.integers(0, 40)),
        st.tuples(st.just("update"), st.just(0)),
        st.tuples(st.just("ask"), st.just(0)),
    ),
    min_size=1,
    max_size=20,
)


async def run_step(graph: Graph, thread: str, number: int, step: Step, durability: Any) -> None:
    """One step of a program, the same on either saver (every id is derived from `number`)."""
    kind, arg = step
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    state = await graph.aget_state(config)
    if state.next and kind in ("say", "ask"):
        await graph.ainvoke(Command(resume=f"yes {number}"), config, durability=durability)
    elif kind in ("say", "ask", "rewrite"):
        word = {"say": "hello", "ask": "ask", "rewrite": "rewrite"}[kind]
        said: State = {
            "messages": [
                HumanMessage(f"{word} {number}.{i}", id=f"h-{number}.{i}") for i in range(max(arg, 1))
            ]
        }
        await graph.ainvoke(said, config, durability=durability)
    elif kind == "remove" and state.values.get("messages"):
        gone = state.values["messages"][arg % len(state.values["messages"])]
        await graph.aupdate_state(config, {"messages": [RemoveMessage(id=gone.id)]})
    elif kind == "update" and state.values:
        added = AIMessage(f"noted {number}", id=f"u-{number}")
        await graph.aupdate_state(config, {"messages": [added], "notes": [f"u{number}"]}, as_node="respond")
    elif kind == "fork":
        history = [s async for s in graph.aget_state_history(config)]
        if history:
            base = history[arg % len(history)].config
            forked: State = {"messages": [HumanMessage(f"fork {number}", id=f"f-{number}")]}
            await graph.ainvoke(forked, base, durability=durability)


@settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    program=steps, snapshot_every=st.sampled_from([2, 3, 50]), durability=st.sampled_from(["sync", "exit"])
)
async def test_every_read_equals_the_stock_savers(
    databases: Databases, program: list[Step], snapshot_every: int, durability: str
) -> None:
    thread = unique("prop")
    ours = build(PooledPostgresSaver(databases.ours, snapshot_every=snapshot_every))
    stock = build(AsyncPostgresSaver(databases.stock))
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    for number, step in enumerate(program):
        await run_step(ours, thread, number, step, durability)
        await run_step(stock, thread, number, step, durability)
        expected = await views(stock, config)
        assert await views(ours, config) == expected, f"after step {number} {step}, kept values"
    # A saver that kept nothing reads every value from the table.
    fresh = build(PooledPostgresSaver(databases.ours, snapshot_every=snapshot_every))
    assert await views(fresh, config) == await views(stock, config), "read from the table"
    if any(a[0] == b[0] == "say" for a, b in pairwise(program)):
        assert _delta_rows(databases.ours_url, thread) > 0, "a turn that only appends is stored as a delta"


def _delta_rows(url: str, thread: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM checkpoint_blobs WHERE thread_id = %s AND type LIKE %s",
            (thread, DELTA_PREFIX + "%"),
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_a_thread_the_stock_saver_began_reads_the_same_when_ours_continues_it(
    databases: Databases,
) -> None:
    thread = unique("mixed")
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    began = build(AsyncPostgresSaver(databases.ours))
    stock = build(AsyncPostgresSaver(databases.stock))
    for number in range(4):
        for graph in (began, stock):
            await run_step(graph, thread, number, ("say", 1), "sync")
    assert _delta_rows(databases.ours_url, thread) == 0
    ours = build(PooledPostgresSaver(databases.ours, snapshot_every=3))
    for number, step in enumerate([("say", 2), ("update", 0), ("say", 1), ("fork", 5), ("say", 1)], start=4):
        for graph in (ours, stock):
            await run_step(graph, thread, number, step, "sync")
    assert _delta_rows(databases.ours_url, thread) > 0, "ours stored deltas over the stock rows"
    expected = await views(stock, config)
    assert await views(ours, config) == expected
    assert await views(build(PooledPostgresSaver(databases.ours)), config) == expected


def _blob_bytes(url: str, thread: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            # Before compression (which short repetitive test messages flatter).
            "SELECT coalesce(sum(octet_length(blob)), 0) FROM checkpoint_blobs WHERE thread_id = %s",
            (thread,),
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_a_long_thread_stores_its_messages_in_linear_space(databases: Databases) -> None:
    thread = unique("long")
    ours = build(PooledPostgresSaver(databases.ours, snapshot_every=20))
    stock = build(AsyncPostgresSaver(databases.stock))
    for number in range(80):
        for graph in (ours, stock):
            await run_step(graph, thread, number, ("say", 1), "exit")
    ours_bytes, stock_bytes = (
        _blob_bytes(databases.ours_url, thread),
        _blob_bytes(databases.stock_url, thread),
    )
    # 80 versions: the stock saver stores 80 lists of up to 160 messages, ours 4 snapshots and
    # 76 deltas of 2 messages each.
    assert stock_bytes > 8 * ours_bytes, (stock_bytes, ours_bytes)
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    assert await views(build(PooledPostgresSaver(databases.ours)), config) == await views(stock, config)


async def test_compacting_a_thread_writes_what_it_keeps_whole(databases: Databases) -> None:
    thread = unique("compact")
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    saver = PooledPostgresSaver(databases.ours)
    ours = build(saver)
    for number in range(6):
        await run_step(ours, thread, number, ("say", 1), "sync")
    before = (await ours.aget_state(config)).values
    assert _delta_rows(databases.ours_url, thread) > 0
    await saver.aprune([thread], strategy="keep_latest")
    assert _delta_rows(databases.ours_url, thread) == 0, "the kept head no longer needs older rows"
    assert (await build(PooledPostgresSaver(databases.ours)).aget_state(config)).values == before
    # The thread goes on from its kept head, with deltas again.
    await run_step(ours, thread, 6, ("say", 1), "sync")
    after = (await build(PooledPostgresSaver(databases.ours)).aget_state(config)).values
    assert [m.id for m in after["messages"]] == [m.id for m in before["messages"]] + ["h-6.0", "a-hello 6.0"]
    assert _delta_rows(databases.ours_url, thread) > 0


async def test_versions_are_short_for_new_threads_and_keep_the_width_of_older_ones(
    databases: Databases,
) -> None:
    ours, stock = PooledPostgresSaver(databases.ours), AsyncPostgresSaver(databases.stock)
    first = ours.get_next_version(None, None)
    assert len(first) == 21 and first.startswith("000000000001.")
    chain = [first]
    for _ in range(12):
        chain.append(ours.get_next_version(chain[-1], None))
    assert chain == sorted(chain) and int(chain[-1].split(".")[0]) == 13
    # A thread the stock saver began goes on in its width, so versions still sort by number.
    old = stock.get_next_version(stock.get_next_version(None, None), None)
    following = ours.get_next_version(old, None)
    assert len(following.split(".")[0]) == 32 and following > old
    assert int(following.split(".")[0]) == 3


async def test_a_turn_extends_only_rows_that_are_written_or_staged_with_it(databases: Databases) -> None:
    """A staged turn's rows exist once its commit writes them: until then another turn's
    checkpoint may not be a delta over them (if that commit fails, the base never exists)."""
    thread = unique("staged")
    saver = PooledPostgresSaver(databases.ours)
    graph = build(saver)
    await run_step(graph, thread, 0, ("say", 1), "sync")

    def staged_turn(stage: StagedCheckpoints, parent: str | None) -> RunnableConfig:
        configurable: dict[str, Any] = {"thread_id": thread, STAGE_KEY: stage}
        if parent:
            configurable["checkpoint_id"] = parent
        return {"configurable": configurable}

    def message_blobs(stage: StagedCheckpoints) -> list[str]:
        return [blob_type for _, _, channel, _, blob_type, _ in stage.blobs if channel == "messages"]

    second = StagedCheckpoints()
    said: State = {"messages": [HumanMessage("hello 1", id="h-1")]}
    await graph.ainvoke(said, staged_turn(second, None), durability="exit")
    assert message_blobs(second)[-1].startswith(DELTA_PREFIX), "over the written first turn"
    assert second.last_id is not None

    third = StagedCheckpoints()
    said = {"messages": [HumanMessage("hello 2", id="h-2")]}
    await graph.ainvoke(said, staged_turn(third, second.last_id), durability="exit")
    assert not message_blobs(third)[-1].startswith(DELTA_PREFIX), "the second turn is not written"

    second.committed = True  # as RunStore.complete marks it once its statement wrote the rows
    fourth = StagedCheckpoints()
    said = {"messages": [HumanMessage("hello 3", id="h-3")]}
    await graph.ainvoke(said, staged_turn(fourth, second.last_id), durability="exit")
    assert message_blobs(fourth)[-1].startswith(DELTA_PREFIX)

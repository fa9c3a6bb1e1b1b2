"""Users' own graphs served beside the built-in agent: the example graph end to end through
`langgraph-sdk` and the native API, graph binding of threads, factories, and clear start-up
errors for graphs that cannot be served."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from app.agent.graph_loader import GraphLoadError
from app.api.protocol import PREFIX
from app.lifespan import open_resources
from app.memory.blob_deltas import DELTA_PREFIX
from app.memory.checkpointer import PooledPostgresSaver
from app.memory.pool import open_database
from app.settings import DatabaseSettings
from tests.conftest import make_settings, real_server, scalar, unique, user_input

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = f"support={ROOT / 'examples' / 'support_agent.py'}:graph"


async def wait(sdk: LangGraphClient, thread_id: str, assistant: str, content: str) -> dict[str, Any]:
    values = await sdk.runs.wait(thread_id, assistant, input=user_input(content))
    assert isinstance(values, dict)
    return values


@pytest.fixture
async def served(database_url: str) -> AsyncIterator[tuple[str, LangGraphClient]]:
    async with real_server(make_settings(database_url, graphs={"graphs": EXAMPLE})) as url:
        client = get_client(url=url + PREFIX)
        try:
            yield url, client
        finally:
            await client.aclose()


async def test_the_example_graph_keeps_its_own_state_across_turns(
    served: tuple[str, LangGraphClient],
) -> None:
    url, sdk = served
    assert sorted(a["graph_id"] for a in await sdk.assistants.search()) == ["agent", "support"]
    graph = await sdk.assistants.get_graph("support")
    assert {"model", "tools"} <= {n["id"] for n in graph["nodes"]}
    thread_id = (await sdk.threads.create())["thread_id"]
    first = await wait(sdk, thread_id, "support", "open a ticket: printer on floor 3 is jammed")
    assert len(first["tickets"]) == 1 and first["tickets"][0].startswith("T-")
    assert first["messages"][-1]["content"].startswith(f"Done: opened {first['tickets'][0]}")
    second = await wait(sdk, thread_id, "support", "how many tickets?")
    assert second["messages"][-1]["content"] == "You have opened 1 ticket(s) on this thread."
    assert second["tickets"] == first["tickets"]  # the state came back from our checkpointer
    state = await sdk.threads.get_state(thread_id)
    assert state["values"] == second
    history = await sdk.threads.get_history(thread_id)
    assert len(history) == 2 and history[1]["values"] == first
    # The native API sees the same thread: its transcript, its runs.
    async with httpx.AsyncClient(base_url=url) as client:
        transcript = (await client.get(f"/threads/{thread_id}/messages")).json()["messages"]
        runs = (await client.get(f"/threads/{thread_id}/runs")).json()
    assert [m["role"] for m in transcript] == ["user", "assistant", "tool", "assistant", "user", "assistant"]
    assert [m["id"] for m in transcript] == [m["id"] for m in second["messages"]]
    assert {r["assistant_id"] for r in runs} == {(await sdk.assistants.get("support"))["assistant_id"]}


async def test_a_thread_stays_on_its_graph_and_streams(served: tuple[str, LangGraphClient]) -> None:
    _, sdk = served
    thread_id = (await sdk.threads.create())["thread_id"]
    parts = [
        p
        async for p in sdk.runs.stream(
            thread_id,
            "support",
            input=user_input("open a ticket: VPN drops"),
            stream_mode=["updates", "messages-tuple"],
        )
    ]
    assert parts[0].event == "metadata" and parts[-1].event == "end"
    assert {"model", "tools"} <= {next(iter(p.data)) for p in parts if p.event == "updates"}
    with pytest.raises(httpx.HTTPStatusError) as other:
        await wait(sdk, thread_id, "agent", "Who committed the latest malware threat?")
    assert other.value.response.status_code == 409
    assert "graph_mismatch" in other.value.response.text
    with pytest.raises(httpx.HTTPStatusError) as unknown:
        await wait(sdk, thread_id, "nope", "hi")
    assert unknown.value.response.status_code == 404


async def test_a_factory_and_a_langgraph_json_are_served(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "echo.py").write_text(
        "from typing import Annotated\n"
        "from langchain_core.messages import AIMessage\n"
        "from langgraph.graph import StateGraph, START, MessagesState\n"
        "def make(config):\n"
        "    prefix = config['configurable'].get('prefix', 'echo')\n"
        "    def reply(state: MessagesState):\n"
        "        return {'messages': [AIMessage(f\"{prefix}: {state['messages'][-1].content}\")]}\n"
        "    builder = StateGraph(MessagesState)\n"
        "    builder.add_node('reply', reply)\n"
        "    builder.add_edge(START, 'reply')\n"
        "    return builder\n"
    )
    (tmp_path / "langgraph.json").write_text('{"graphs": {"echo": "./echo.py:make"}}')
    settings = make_settings(database_url, graphs={"config": str(tmp_path / "langgraph.json")})
    async with real_server(settings) as url:
        sdk = get_client(url=url + PREFIX)
        try:
            thread_id = (await sdk.threads.create())["thread_id"]
            values = await wait(sdk, thread_id, "echo", "hello")
            assert values["messages"][-1]["content"] == "echo: hello"
            again = await wait(sdk, thread_id, "echo", "twice")
            assert [m["content"] for m in again["messages"]] == [
                "hello",
                "echo: hello",
                "twice",
                "echo: twice",
            ]
        finally:
            await sdk.aclose()


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("boom.py:graph", "failed to import: RuntimeError: no model configured"),
        ("boom.py:missing", "failed to import"),
        ("plain.py:nothing", "has no attribute 'nothing'"),
        ("plain.py:number", "is a int"),
        ("absent.py:graph", "does not exist"),
        ("plain.py", "is not 'path/to/file.py:attribute'"),
    ],
)
async def test_a_graph_that_cannot_be_served_stops_the_start_naming_the_file(
    database_url: str, tmp_path: Path, source: str, expected: str
) -> None:
    (tmp_path / "boom.py").write_text("raise RuntimeError('no model configured')\n")
    (tmp_path / "plain.py").write_text("number = 3\n")
    path, _, attr = source.partition(":")
    spec = f"bad={tmp_path / path}:{attr}" if attr else f"bad={tmp_path / path}"
    with pytest.raises(GraphLoadError) as failure:
        async with open_resources(make_settings(database_url, graphs={"graphs": spec})):
            pass
    assert expected in str(failure.value)
    if "exist" not in expected and ":" in source:
        assert str(tmp_path / path) in str(failure.value)


async def test_what_a_node_writes_to_the_stream_reaches_the_client(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "progress.py").write_text(
        "from langchain_core.messages import AIMessage\n"
        "from langgraph.config import get_stream_writer\n"
        "from langgraph.graph import StateGraph, START, MessagesState\n"
        "def work(state: MessagesState):\n"
        "    write = get_stream_writer()\n"
        "    for done in (50, 100):\n"
        "        write({'progress': done})\n"
        "    return {'messages': [AIMessage('finished')]}\n"
        "builder = StateGraph(MessagesState)\n"
        "builder.add_node('work', work)\n"
        "builder.add_edge(START, 'work')\n"
        "graph = builder.compile()\n"
    )
    settings = make_settings(database_url, graphs={"graphs": f"progress={tmp_path / 'progress.py'}:graph"})
    async with real_server(settings) as url:
        sdk = get_client(url=url + PREFIX)
        try:
            thread_id = (await sdk.threads.create())["thread_id"]
            parts = [
                p
                async for p in sdk.runs.stream(
                    thread_id,
                    "progress",
                    input=user_input("go"),
                    stream_mode=["custom", "updates"],
                )
            ]
            assert [p.data for p in parts if p.event == "custom"] == [{"progress": 50}, {"progress": 100}]
            run_id = parts[0].data["run_id"]
            async with httpx.AsyncClient(base_url=url) as client:
                native = (await client.get(f"/threads/{thread_id}/runs/{run_id}/stream")).text
            assert native.count("event: custom") == 2
        finally:
            await sdk.aclose()


async def test_a_thread_of_a_graph_no_longer_served_is_still_listed_and_read(
    database_url: str, served: tuple[str, LangGraphClient]
) -> None:
    _, sdk = served
    thread_marker = unique()
    thread_id = (await sdk.threads.create(metadata={"orphan": thread_marker}))["thread_id"]
    await wait(sdk, thread_id, "support", "open a ticket: laptop fan is loud")
    # The same database, served without that graph (its configuration changed).
    async with real_server(make_settings(database_url)) as url:
        plain = get_client(url=url + PREFIX)
        try:
            found = await plain.threads.search(metadata={"orphan": thread_marker})
            assert [t["thread_id"] for t in found] == [thread_id]
            values = found[0]["values"]
            assert (
                values is not None and values["messages"][0]["content"] == "open a ticket: laptop fan is loud"
            )
            state = await plain.threads.get_state(thread_id)
            assert isinstance(state["values"], dict) and len(state["values"]["messages"]) == 4
            with pytest.raises(httpx.HTTPStatusError) as gone:
                await wait(plain, thread_id, "support", "again")
            assert gone.value.response.status_code == 404
        finally:
            await plain.aclose()


async def test_update_state_goes_through_the_hosted_graphs_reducers(
    served: tuple[str, LangGraphClient],
) -> None:
    _, sdk = served
    thread_id = (await sdk.threads.create())["thread_id"]
    first = await wait(sdk, thread_id, "support", "open a ticket: badge reader broken")
    await sdk.threads.update_state(thread_id, {"tickets": ["T-MANUAL"]}, as_node="tools")
    state = await sdk.threads.get_state(thread_id)
    assert isinstance(state["values"], dict)
    assert state["values"]["tickets"] == [*first["tickets"], "T-MANUAL"]  # operator.add, as the graph says
    with pytest.raises(httpx.HTTPStatusError) as bad:
        await sdk.threads.update_state(thread_id, {"tickets": ["x"]}, as_node="no-such-node")
    assert bad.value.response.status_code == 422


async def test_a_hosted_graphs_conversation_is_stored_as_deltas_and_reads_back_whole(
    served: tuple[str, LangGraphClient], database_url: str
) -> None:
    _, sdk = served
    thread_id = (await sdk.threads.create())["thread_id"]
    for content in ("hello", "open a ticket: monitor flickers", "how many tickets?", "thanks"):
        last = await wait(sdk, thread_id, "support", content)
    assert len(last["messages"]) == 10
    with psycopg.connect(database_url) as conn:
        key_sql = "SELECT thread_key::text FROM lma_threads WHERE thread_id = %s"
        thread_key = scalar(conn, key_sql, [thread_id])
        kinds = conn.execute(
            "SELECT channel, type LIKE %s FROM checkpoint_blobs WHERE thread_id = %s",
            (DELTA_PREFIX + "%", thread_key),
        ).fetchall()
    # The first turn's list is whole; each later turn stores only what it appended.
    assert sorted(kinds).count(("messages", True)) == 3, kinds
    # A saver that kept nothing (another replica) reads the same conversation from the table.
    async with open_database(DatabaseSettings(url=database_url)) as database:
        reader = PooledPostgresSaver(database.pool)
        stored = await reader.aget_tuple({"configurable": {"thread_id": thread_key}})
    assert stored is not None
    messages = stored.checkpoint["channel_values"]["messages"]
    assert [m.id for m in messages] == [m["id"] for m in last["messages"]]
    assert (await sdk.threads.get_state(thread_id))["values"] == last

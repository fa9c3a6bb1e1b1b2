"""The Agent Protocol through the official `langgraph-sdk` client, over real HTTP."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import Thread

from app.api.protocol import PREFIX
from tests.conftest import make_settings, real_server, unique, user_input

QUESTION = "Who committed the latest malware threat?"
ASK = user_input(QUESTION)


@pytest.fixture
async def sdk(database_url: str) -> AsyncIterator[LangGraphClient]:
    async with real_server(make_settings(database_url, model={"offline_token_delay_ms": 5})) as url:
        client = get_client(url=url + PREFIX)
        try:
            yield client
        finally:
            await client.aclose()


async def wait(sdk: LangGraphClient, thread_id: str | None, content: Any) -> dict[str, Any]:
    """`runs.wait` with one user message; the thread's values after it."""
    values = await (
        sdk.runs.wait(None, "agent", input=user_input(content))
        if thread_id is None
        else sdk.runs.wait(thread_id, "agent", input=user_input(content))
    )
    assert isinstance(values, dict)
    return values


def contents_of(values: Any) -> list[dict[str, Any]]:
    assert isinstance(values, dict)
    messages: list[dict[str, Any]] = values["messages"]
    return messages


def contents(values: Any) -> list[tuple[str, Any]]:
    return [(m["type"], m["content"]) for m in values["messages"]]


async def test_assistants_info_and_ok(sdk: LangGraphClient) -> None:
    found = await sdk.assistants.search()
    assert [a["graph_id"] for a in found] == ["agent"]
    assistant = await sdk.assistants.get("agent")
    assert (
        assistant["assistant_id"]
        == found[0]["assistant_id"]
        == (await sdk.assistants.get(assistant["assistant_id"]))["assistant_id"]
    )
    graph = await sdk.assistants.get_graph("agent")
    assert {"agent", "tools"} <= {n["id"] for n in graph["nodes"]}
    schemas = await sdk.assistants.get_schemas("agent")
    assert schemas["input_schema"] is not None and "messages" in schemas["input_schema"]["properties"]
    assert await sdk.assistants.search(graph_id="other") == []
    with pytest.raises(httpx.HTTPStatusError) as missing:
        await sdk.assistants.get("nope")
    assert missing.value.response.status_code == 404
    info = await sdk.http.get("/info")
    assert info is not None and info["flags"]["assistants"] is True
    assert await sdk.http.get("/ok") == {"ok": True}


async def test_threads_create_get_update_search_delete(sdk: LangGraphClient) -> None:
    thread_id = unique()
    team = unique("team")  # a metadata value no other test uses: the database is shared
    created = await sdk.threads.create(thread_id=thread_id, metadata={"graph_id": "agent", "team": team})
    assert (
        created["thread_id"] == thread_id
        and created["status"] == "idle"
        and created["values"] == {"messages": []}
    )
    again = await sdk.threads.create(thread_id=thread_id, if_exists="do_nothing")
    assert again["thread_id"] == thread_id
    with pytest.raises(httpx.HTTPStatusError) as exists:
        await sdk.threads.create(thread_id=thread_id)
    assert exists.value.response.status_code == 409
    await wait(sdk, thread_id, QUESTION)
    updated = await sdk.threads.update(thread_id, metadata={"priority": "high"})
    assert updated["metadata"] == {"graph_id": "agent", "team": team, "priority": "high"}
    found = await sdk.threads.search(metadata={"team": team}, limit=5)
    assert [t["thread_id"] for t in found] == [thread_id]
    assert contents(found[0]["values"])[0] == ("human", QUESTION)
    assert await sdk.threads.search(metadata={"team": unique("team")}) == []
    assert [t["thread_id"] for t in await sdk.threads.search(metadata={"team": team}, status="idle")] == [
        thread_id
    ]
    await sdk.threads.delete(thread_id)
    with pytest.raises(httpx.HTTPStatusError) as gone:
        await sdk.threads.get(thread_id)
    assert gone.value.response.status_code == 404


async def test_wait_state_and_history(sdk: LangGraphClient) -> None:
    thread = await sdk.threads.create()
    thread_id = thread["thread_id"]
    assert (await sdk.threads.get_state(thread_id))["values"] == {}
    first = await wait(sdk, thread_id, QUESTION)
    assert first["messages"][-1]["type"] == "ai" and "Malware" in first["messages"][-1]["content"]
    second = await wait(sdk, thread_id, [{"type": "text", "text": "What was their IP address?"}])
    assert contents(second)[: len(first["messages"])] == contents(first)
    state = await sdk.threads.get_state(thread_id)
    assert contents(state["values"]) == contents(second) and list(state["next"]) == []
    history = await sdk.threads.get_history(thread_id, limit=10)
    # Per turn, newest first: its checkpoint, then the state holding its question (its parent).
    assert [len(h["values"]["messages"]) for h in history if isinstance(h["values"], dict)] == [
        len(second["messages"]),
        len(first["messages"]) + 1,
        len(first["messages"]),
        1,
    ]
    assert history[0]["checkpoint"]["checkpoint_id"] == state["checkpoint"]["checkpoint_id"]
    for newer, older_state in itertools.pairwise(history):
        parent = newer["parent_checkpoint"]
        assert parent is not None and parent["checkpoint_id"] == older_state["checkpoint"]["checkpoint_id"]
    assert history[-1]["parent_checkpoint"] is None
    older = await sdk.threads.get_state(thread_id, checkpoint_id=history[2]["checkpoint"]["checkpoint_id"])
    assert contents(older["values"]) == contents(first)
    asked = await sdk.threads.get_state(thread_id, checkpoint_id=history[1]["checkpoint"]["checkpoint_id"])
    assert contents(asked["values"]) == [*contents(first), ("human", "What was their IP address?")]
    thread_less = await wait(sdk, None, "hello")
    assert thread_less["messages"][0]["content"] == "hello"


async def test_stream_modes_and_resume(sdk: LangGraphClient) -> None:
    thread_id = (await sdk.threads.create())["thread_id"]
    parts = [
        p
        async for p in sdk.runs.stream(
            thread_id, "agent", input=ASK, stream_mode=["values", "messages-tuple", "updates"]
        )
    ]
    events = [p.event for p in parts]
    assert events[0] == "metadata" and events[-1] == "end"
    run_id = parts[0].data["run_id"]
    tokens = "".join(
        p.data[0]["content"] for p in parts if p.event == "messages" and p.data[0]["type"] == "AIMessageChunk"
    )
    values = [p.data for p in parts if p.event == "values"]
    assert values[0]["messages"][-1]["content"] == QUESTION  # the input, with its saved id
    final = values[-1]["messages"]
    assert final[-1]["content"] == tokens and "Malware" in tokens
    state = await sdk.threads.get_state(thread_id)
    assert [m["id"] for m in contents_of(state["values"])] == [m["id"] for m in final]
    assert {"agent", "tools"} <= {next(iter(p.data)) for p in parts if p.event == "updates"}
    # Joined again after it ended, from the start and after an event id: the same frames.
    joined = [
        p
        async for p in sdk.runs.join_stream(
            thread_id, run_id, stream_mode=["values", "messages-tuple", "updates"]
        )
    ]
    assert [(p.event, p.data) for p in joined] == [(p.event, p.data) for p in parts]
    middle = next(p.id for p in parts[len(parts) // 2 :] if p.id)
    resumed = [
        p
        async for p in sdk.runs.join_stream(thread_id, run_id, stream_mode=["updates"], last_event_id=middle)
    ]
    assert resumed[0].event == "metadata" and resumed[-1].event == "end"
    assert [p.data for p in resumed if p.event == "updates"] == [
        p.data
        for p in parts[parts.index(next(x for x in parts if x.id == middle)) + 1 :]
        if p.event == "updates"
    ]
    with pytest.raises(httpx.HTTPStatusError) as bad:
        async for _ in sdk.runs.stream(thread_id, "agent", input=ASK, stream_mode="debug-ish"):  # type: ignore[arg-type]
            pass
    assert bad.value.response.status_code == 422


async def test_background_runs_join_list_get_cancel(sdk: LangGraphClient) -> None:
    thread_id = (await sdk.threads.create())["thread_id"]
    run = await sdk.runs.create(thread_id, "agent", input=ASK, metadata={"from": "sdk"})
    assert run["status"] in ("pending", "running") and run["metadata"] == {"from": "sdk"}
    values = await sdk.runs.join(thread_id, run["run_id"])
    assert "Malware" in values["messages"][-1]["content"]
    got = await sdk.runs.get(thread_id, run["run_id"])
    assert got["status"] == "success"
    assert [r["run_id"] for r in await sdk.runs.list(thread_id)] == [run["run_id"]]
    slow = await sdk.runs.create(thread_id, "agent", input=ASK)
    queued = await sdk.runs.create(thread_id, "agent", input=ASK, multitask_strategy="enqueue")
    await sdk.runs.cancel(thread_id, slow["run_id"], wait=True)
    assert (await sdk.runs.get(thread_id, slow["run_id"]))["status"] == "interrupted"
    await sdk.runs.join(thread_id, queued["run_id"])
    assert (await sdk.runs.get(thread_id, queued["run_id"]))["status"] == "success"
    await sdk.runs.delete(thread_id, slow["run_id"])
    assert {r["run_id"] for r in await sdk.runs.list(thread_id)} == {run["run_id"], queued["run_id"]}
    with pytest.raises(httpx.HTTPStatusError) as missing:
        await sdk.runs.create(unique(), "agent", input=ASK)  # if_not_exists defaults to reject
    assert missing.value.response.status_code == 404
    created = await sdk.runs.create(unique(), "agent", input=ASK, if_not_exists="create")
    assert created["status"] in ("pending", "running", "success")


async def test_resumed_stream_values_hold_the_whole_conversation(sdk: LangGraphClient) -> None:
    thread_id = (await sdk.threads.create())["thread_id"]
    run = await sdk.runs.create(thread_id, "agent", input=ASK)
    await sdk.runs.join(thread_id, run["run_id"])
    run_id = run["run_id"]
    whole = [p async for p in sdk.runs.join_stream(thread_id, run_id, stream_mode="values")]
    # useStream rejoins a run with Last-Event-ID `-1`: from the first event, as LangGraph's server.
    from_start = [
        p async for p in sdk.runs.join_stream(thread_id, run_id, stream_mode="values", last_event_id="-1")
    ]
    assert [(p.event, p.data) for p in from_start] == [(p.event, p.data) for p in whole]
    middle = len(whole) // 2
    resumed = [
        p
        async for p in sdk.runs.join_stream(
            thread_id, run_id, stream_mode="values", last_event_id=whole[middle].id
        )
    ]
    assert [(p.event, p.data) for p in resumed[1:]] == [(p.event, p.data) for p in whole[middle + 1 :]]
    assert contents(resumed[-2].data)[0] == ("human", QUESTION)


async def test_location_headers_resolve_against_the_clients_base_url(sdk: LangGraphClient) -> None:
    """The SDKs rejoin a dropped stream at `base URL + Location` with no modes of their own, so
    the headers name paths relative to the protocol's root, and the stream's its modes."""
    http = sdk.http.client
    thread_id = (await sdk.threads.create())["thread_id"]
    body = {"assistant_id": "agent", "input": ASK, "stream_mode": ["values", "messages-tuple"]}
    async with http.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as started:
        assert started.status_code == 200
        location, run_path = started.headers["location"], started.headers["content-location"]
        first = "".join([chunk async for chunk in started.aiter_text()])
    run = await http.get(run_path)
    assert run.status_code == 200 and run.json()["status"] == "success"
    async with http.stream("GET", location) as rejoined:
        assert rejoined.status_code == 200
        again = "".join([chunk async for chunk in rejoined.aiter_text()])

    def events(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.startswith("event:")]

    assert events(again) == events(first) and "event: end" in events(first)


async def test_a_forked_stream_renders_the_conversation_of_its_branch(sdk: LangGraphClient) -> None:
    """Regenerate and edit (runs from a turn's input state) stream the conversation of their
    branch, not the one they replace."""
    thread_id = (await sdk.threads.create())["thread_id"]
    first = await wait(sdk, thread_id, QUESTION)
    await wait(sdk, thread_id, "What was their IP address?")
    parent = (await sdk.threads.get_history(thread_id, limit=1))[0]["parent_checkpoint"]
    assert parent is not None
    edited: dict[str, Any] = {"messages": [{"role": "user", "content": "And the latest phishing threat?"}]}
    for given, question in (
        (None, "What was their IP address?"),
        (edited, "And the latest phishing threat?"),
    ):
        parts = [
            p
            async for p in sdk.runs.stream(
                thread_id, "agent", input=given, stream_mode="values", checkpoint=parent
            )
        ]
        streamed = [p.data for p in parts if p.event == "values"][-1]
        assert contents(streamed) == contents((await sdk.threads.get_state(thread_id))["values"])
        assert contents(streamed)[: len(first["messages"]) + 1] == [*contents(first), ("human", question)]


def first_seen(history: list[Any], message_id: str) -> Any:
    """The oldest state holding a message (how `useStream` finds where a message first appeared)."""
    return next(
        h for h in reversed(history) if message_id in {m["id"] for m in h["values"].get("messages", [])}
    )


async def test_regenerate_and_edit_as_chat_clients_do(sdk: LangGraphClient) -> None:
    thread_id = (await sdk.threads.create())["thread_id"]
    await wait(sdk, thread_id, QUESTION)
    second = await wait(sdk, thread_id, "What was their IP address?")
    history = await sdk.threads.get_history(thread_id, limit=10)
    assert [h["next"] for h in history] == [[], ["agent"], [], ["agent"]]
    answer = second["messages"][-1]
    # Regenerate: re-run from the parent of the state where the answer first appeared, no input.
    parent = first_seen(history, answer["id"])["parent_checkpoint"]
    assert parent["checkpoint_id"].endswith("~input")
    regenerated = await sdk.runs.wait(thread_id, "agent", input=None, checkpoint=parent)
    assert isinstance(regenerated, dict)
    assert (
        contents(regenerated)[:-1] == contents(second)[:-1]
        and regenerated["messages"][-1]["id"] != answer["id"]
    )
    assert regenerated["messages"][-1]["content"] == answer["content"]  # the offline model is deterministic
    # The same question (same id), a new answer: the two answers are siblings of one input state.
    assert regenerated["messages"][-2]["id"] == second["messages"][-2]["id"]
    history = await sdk.threads.get_history(thread_id, limit=10)
    newest = first_seen(history, regenerated["messages"][-1]["id"])
    assert newest["parent_checkpoint"] == parent
    assert [h["checkpoint"]["checkpoint_id"] for h in history].count(parent["checkpoint_id"]) == 1
    # Edit the second question: run from the parent of the state where it first appeared.
    question = second["messages"][-2]
    assert question["type"] == "human"
    history = await sdk.threads.get_history(thread_id, limit=10)
    before_question = first_seen(history, question["id"])["parent_checkpoint"]
    edited = await sdk.runs.wait(
        thread_id,
        "agent",
        input=user_input("Who committed the latest phishing threat?"),
        checkpoint=before_question,
    )
    assert isinstance(edited, dict)
    kept = len(second["messages"]) - 2  # the first turn
    assert contents(edited)[:kept] == contents(second)[:kept]
    assert edited["messages"][kept]["content"] == "Who committed the latest phishing threat?"
    assert "Phishing" in edited["messages"][-1]["content"]
    # The first branch is still there to read.
    old = await sdk.threads.get_state(
        thread_id, checkpoint_id=first_seen(history, answer["id"])["checkpoint"]["checkpoint_id"]
    )
    assert contents(old["values"]) == contents(second)
    # Regenerate the edited question's answer: a child of the edited turn's input state.
    history = await sdk.threads.get_history(thread_id, limit=20)
    edited_parent = first_seen(history, edited["messages"][-1]["id"])["parent_checkpoint"]
    again = await sdk.runs.wait(thread_id, "agent", input=None, checkpoint=edited_parent)
    assert isinstance(again, dict) and contents(again) == contents(edited)
    history = await sdk.threads.get_history(thread_id, limit=20)
    assert first_seen(history, again["messages"][-1]["id"])["parent_checkpoint"] == edited_parent


async def test_regenerating_the_first_answer_starts_the_thread_over(sdk: LangGraphClient) -> None:
    thread_id = (await sdk.threads.create())["thread_id"]
    first = await wait(sdk, thread_id, QUESTION)
    history = await sdk.threads.get_history(thread_id)
    parent = first_seen(history, first["messages"][-1]["id"])["parent_checkpoint"]
    again = await sdk.runs.wait(thread_id, "agent", input=None, checkpoint=parent)
    assert isinstance(again, dict)
    assert contents(again) == contents(first)
    assert again["messages"][0]["id"] == first["messages"][0]["id"]  # the same question
    assert again["messages"][-1]["id"] != first["messages"][-1]["id"]  # a new answer
    # Two answers to one question: two first turns on two branches, under one input state.
    history = await sdk.threads.get_history(thread_id)
    assert [h["parent_checkpoint"] for h in history if h["next"] == []] == [parent, parent]
    assert len(history) == 3


async def test_a_copied_thread_has_the_whole_history_and_goes_its_own_way(sdk: LangGraphClient) -> None:
    thread_id = (await sdk.threads.create(metadata={"team": "soc"}))["thread_id"]
    await wait(sdk, thread_id, QUESTION)
    second = await wait(sdk, thread_id, "What was their IP address?")
    # langgraph-sdk annotates `threads.copy` as returning None; it returns the new thread.
    copy = cast(Thread, await sdk.threads.copy(thread_id))
    assert copy["thread_id"] != thread_id and copy["metadata"] == {"team": "soc"}
    assert contents(copy["values"]) == contents(second)
    original_history = await sdk.threads.get_history(thread_id)
    copied_history = await sdk.threads.get_history(copy["thread_id"])
    assert [h["checkpoint"]["checkpoint_id"] for h in copied_history] == [
        h["checkpoint"]["checkpoint_id"] for h in original_history
    ]
    # The copy goes on from its head, and forks like the original; the original is untouched.
    follow = await wait(sdk, copy["thread_id"], "thanks")
    assert contents(follow)[: len(second["messages"])] == contents(second)
    regenerated = await sdk.runs.wait(
        copy["thread_id"], "agent", input=None, checkpoint=copied_history[0]["parent_checkpoint"]
    )
    assert isinstance(regenerated, dict) and contents(regenerated) == contents(second)
    assert contents((await sdk.threads.get_state(thread_id))["values"]) == contents(second)


async def test_a_scheduled_run_waits_its_time(sdk: LangGraphClient, database_url: str) -> None:
    thread_id = (await sdk.threads.create())["thread_id"]
    run = await sdk.runs.create(thread_id, "agent", input=ASK, after_seconds=1)
    assert run["status"] == "pending"
    values = await sdk.runs.join(thread_id, run["run_id"])
    assert "Malware" in values["messages"][-1]["content"]
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT started_at >= created_at + interval '1 second', status FROM lma_runs WHERE run_id = %s",
            (run["run_id"],),
        ).fetchone()
    assert row == (True, "success")


async def test_update_state_adds_messages_as_a_node_would(sdk: LangGraphClient) -> None:
    thread_id = (await sdk.threads.create())["thread_id"]
    first = await wait(sdk, thread_id, QUESTION)
    note = {"type": "ai", "content": "Escalate to the SOC on-call."}
    updated = await sdk.threads.update_state(thread_id, {"messages": [note]}, as_node="agent")
    state = await sdk.threads.get_state(thread_id)
    assert state["checkpoint"]["checkpoint_id"] == updated["checkpoint"]["checkpoint_id"]
    assert contents(state["values"]) == [*contents(first), ("ai", "Escalate to the SOC on-call.")]
    # The next turn goes on from it, and the native transcript has it.
    after = await wait(sdk, thread_id, "thanks")
    assert contents(after)[: len(first["messages"]) + 1] == contents(state["values"])
    with pytest.raises(httpx.HTTPStatusError) as bad:
        await sdk.threads.update_state(thread_id, {"messages": [{"type": "nonsense"}]})
    assert bad.value.response.status_code == 422


async def test_values_kept_between_turns_equal_the_state_read_afresh(sdk: LangGraphClient) -> None:
    """A protocol turn answers and streams the conversation it kept after the thread's last one
    (plus its own messages): whatever mix of waits, streams and forks, that is the state."""
    thread_id = (await sdk.threads.create())["thread_id"]

    async def state() -> Any:
        return (await sdk.threads.get_state(thread_id))["values"]

    assert await wait(sdk, thread_id, QUESTION) == await state()
    parent = (await sdk.threads.get_history(thread_id, limit=1))[0]["parent_checkpoint"]
    assert await wait(sdk, thread_id, "What was their IP address?") == await state()
    for fork in (None, parent, None):
        parts = [
            p
            async for p in sdk.runs.stream(
                thread_id, "agent", input=ASK, stream_mode=["values", "messages-tuple"], checkpoint=fork
            )
        ]
        streamed = [p.data for p in parts if p.event == "values"]
        fresh = await state()
        assert contents(streamed[-1]) == contents(fresh)
        assert await wait(sdk, thread_id, "What was their IP address?") == await state()

"""Human in the loop through the Agent Protocol, with the official `langgraph-sdk` over real
HTTP: a paused thread as LangGraph's server shows it, and `command: {resume}` in the shapes
LangChain's middleware, today's agent-chat-ui and the agent inbox send."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import Command

from app.api.protocol import PREFIX
from tests.conftest import make_settings, real_server, unique, user_input

ASK = user_input("Who committed the latest malware threat?")


@pytest.fixture
async def sdk(database_url: str) -> AsyncIterator[LangGraphClient]:
    settings = make_settings(database_url, tools={"approval": ["get_user_info"]})
    async with real_server(settings) as url:
        client = get_client(url=url + PREFIX)
        try:
            yield client
        finally:
            await client.aclose()


async def paused_thread(sdk: LangGraphClient) -> tuple[str, dict[str, Any]]:
    """A thread whose demo question paused before get_user_info; its interrupt."""
    thread_id = unique()
    await sdk.threads.create(thread_id=thread_id)
    values = await sdk.runs.wait(thread_id, "agent", input=ASK)
    assert isinstance(values, dict)
    (interrupt,) = values["__interrupt__"]
    assert interrupt["value"]["action_requests"][0]["name"] == "get_user_info"
    assert values["messages"][-1]["tool_calls"][0]["name"] == "get_user_info"
    return thread_id, interrupt


async def test_a_paused_thread_looks_as_on_langgraphs_server(sdk: LangGraphClient) -> None:
    thread_id, interrupt = await paused_thread(sdk)
    thread = await sdk.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    ((task_id, interrupts),) = thread["interrupts"].items()
    assert interrupts == [{"value": interrupt["value"], "id": interrupt["id"]}] and task_id
    state = await sdk.threads.get_state(thread_id)
    assert state["next"] == ["approve"]
    (task,) = state["tasks"]
    assert task["name"] == "approve" and task["id"] == task_id and task["interrupts"] == interrupts
    assert state["interrupts"] == interrupts
    history = await sdk.threads.get_history(thread_id, limit=2)
    assert history[0]["tasks"][0]["interrupts"] == interrupts
    found = await sdk.threads.search(status="interrupted", limit=100)
    assert thread_id in {t["thread_id"] for t in found}
    idle = await sdk.threads.search(status="idle", limit=100)
    assert thread_id not in {t["thread_id"] for t in idle}


@pytest.mark.parametrize(
    "resume",
    [
        pytest.param({"decisions": [{"type": "approve"}]}, id="middleware"),
        pytest.param([{"type": "accept", "args": None}], id="agent-inbox"),
        pytest.param({"decision": "approve"}, id="ours"),
    ],
)
async def test_command_resume_approves_in_every_shape(sdk: LangGraphClient, resume: Any) -> None:
    thread_id, _ = await paused_thread(sdk)
    values = await sdk.runs.wait(thread_id, "agent", command=Command(resume=resume))
    assert isinstance(values, dict) and "__interrupt__" not in values
    assert "committed by" in values["messages"][-1]["content"]
    assert (await sdk.threads.get(thread_id))["status"] == "idle"


async def test_a_streamed_resume_and_a_streamed_pause(sdk: LangGraphClient) -> None:
    thread_id = unique()
    await sdk.threads.create(thread_id=thread_id)
    paused = [
        (part.event, part.data)
        async for part in sdk.runs.stream(thread_id, "agent", input=ASK, stream_mode=["values", "updates"])
    ]
    interrupts = [
        data["__interrupt__"] for event, data in paused if event == "values" and "__interrupt__" in data
    ]
    updates = [
        data["__interrupt__"] for event, data in paused if event == "updates" and "__interrupt__" in data
    ]
    assert len(interrupts) == 1 and interrupts == updates
    (interrupt,) = interrupts[0]
    resumed = [
        (part.event, part.data)
        async for part in sdk.runs.stream(
            thread_id,
            "agent",
            command=Command(resume={"decisions": [{"type": "reject", "message": "not needed"}]}),
            stream_mode="values",
        )
    ]
    final = [data for event, data in resumed if event == "values"][-1]
    assert "did not approve" in final["messages"][-2]["content"]
    assert "not needed" in final["messages"][-2]["content"]
    # A second resume of the same interrupt: it is no longer pending.
    with pytest.raises(httpx.HTTPStatusError) as again:
        await sdk.runs.wait(
            thread_id, "agent", command=Command(resume={interrupt["id"]: {"decision": "approve"}})
        )
    assert again.value.response.status_code == 409


async def test_new_input_on_a_waiting_thread_leaves_the_interrupt_as_langgraph_does(
    sdk: LangGraphClient,
) -> None:
    thread_id, _ = await paused_thread(sdk)
    values = await sdk.runs.wait(thread_id, "agent", input=user_input("What was their IP address?"))
    assert isinstance(values, dict) and "__interrupt__" not in values
    assert (await sdk.threads.get(thread_id))["status"] == "idle"


async def test_unsupported_commands_and_malformed_resumes_are_422(sdk: LangGraphClient) -> None:
    thread_id, _ = await paused_thread(sdk)
    for command in (
        Command(goto="agent"),
        Command(resume={"decisions": [{"type": "approve"}, {"type": "approve"}]}),
        Command(resume={"decisions": [{"type": "edit", "edited_action": {"name": "other", "args": {}}}]}),
    ):
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await sdk.runs.wait(thread_id, "agent", command=command)
        assert refused.value.response.status_code == 422
    assert (await sdk.threads.get(thread_id))["status"] == "interrupted"
    with pytest.raises(httpx.HTTPStatusError) as missing:
        await sdk.runs.wait(unique(), "agent", command=Command(resume={"decision": "approve"}))
    assert missing.value.response.status_code == 404

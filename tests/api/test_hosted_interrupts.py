"""A hosted graph's own `interrupt()`: its value surfaces as the pause, and the value a resume
sends (native `resume` or the protocol's `command`) is what `interrupt()` returns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.schema import Command

from app.api.protocol import PREFIX
from tests.conftest import make_settings, real_server, unique, user_input

GRAPH = """
import operator
from typing import Annotated

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt
from typing_extensions import TypedDict


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    sent: Annotated[list[str], operator.add]


def draft(state: State) -> dict:
    return {"messages": [AIMessage(content="Draft: " + state["messages"][-1].content)]}


def review(state: State) -> dict:
    answer = interrupt({"question": "Send this reply?", "draft": state["messages"][-1].content})
    if answer == "yes":
        return {"messages": [AIMessage(content="Sent.")], "sent": [state["messages"][-1].content]}
    return {"messages": [AIMessage(content=f"Not sent: {answer}")]}


builder = StateGraph(State)
builder.add_node("draft", draft)
builder.add_node("review", review)
builder.add_edge(START, "draft")
builder.add_edge("draft", "review")
builder.add_edge("review", END)
graph = builder.compile()
"""


@pytest.fixture
async def served(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    source = tmp_path / "reviewed.py"
    source.write_text(GRAPH)
    async with real_server(make_settings(database_url, graphs={"graphs": f"reviewed={source}:graph"})) as url:
        yield url


async def test_a_graphs_own_interrupt_pauses_and_resumes_with_the_value_sent(served: str) -> None:
    sdk = get_client(url=served + PREFIX)
    try:
        thread_id = (await sdk.threads.create())["thread_id"]
        values = await sdk.runs.wait(thread_id, "reviewed", input=user_input("the printer is fixed"))
        assert isinstance(values, dict)
        (interrupt,) = values["__interrupt__"]
        assert interrupt["value"] == {"question": "Send this reply?", "draft": "Draft: the printer is fixed"}
        state = await sdk.threads.get_state(thread_id)
        assert state["next"] == ["review"] and state["tasks"][0]["interrupts"][0]["id"] == interrupt["id"]
        resumed = await sdk.runs.wait(thread_id, "reviewed", command=Command(resume="yes"))
        assert isinstance(resumed, dict) and "__interrupt__" not in resumed
        assert resumed["messages"][-1]["content"] == "Sent."
        assert resumed["sent"] == ["Draft: the printer is fixed"]
        assert (await sdk.threads.get(thread_id))["status"] == "idle"
    finally:
        await sdk.aclose()


async def test_the_native_api_resumes_a_hosted_graph_with_any_json(served: str) -> None:
    async with httpx.AsyncClient(base_url=served, timeout=30) as http:
        sdk = get_client(url=served + PREFIX)
        try:
            thread_id = (await sdk.threads.create())["thread_id"]
            await sdk.runs.wait(thread_id, "reviewed", input=user_input("the badge reader works"))
        finally:
            await sdk.aclose()
        thread = (await http.get(f"/threads/{thread_id}")).json()
        assert thread["status"] == "interrupted"
        assert thread["interrupts"][0]["value"]["question"] == "Send this reply?"
        answer: dict[str, Any] = (
            await http.post(f"/threads/{thread_id}/messages", json={"resume": "wait until Monday"})
        ).json()
        assert [m["content"] for m in answer["messages"]] == ["Not sent: wait until Monday"]
        assert answer["interrupts"] == []
        missing = await http.post(f"/threads/{unique()}/messages", json={"resume": "yes"})
        assert missing.status_code == 404

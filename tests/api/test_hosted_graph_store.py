"""A hosted graph gets the long-term store in its nodes (`get_store()`), as on LangGraph's own
server, scoped to the run's owner: what one owner's run saves, another owner's run never reads,
and the store routes show the same items."""

from __future__ import annotations

from pathlib import Path

import httpx
from langgraph_sdk import get_client

from app.api.protocol import PREFIX
from tests.conftest import make_settings, real_server, user_input

GRAPH = """
from langchain_core.messages import AIMessage
from langgraph.config import get_store
from langgraph.graph import END, START, MessagesState, StateGraph


async def note(state: MessagesState) -> dict:
    store = get_store()
    text = state["messages"][-1].content
    if text.startswith("note "):
        await store.aput(("notes",), "latest", {"content": text[5:]})
        return {"messages": [AIMessage("noted")]}
    item = await store.aget(("notes",), "latest")
    return {"messages": [AIMessage(item.value["content"] if item else "nothing noted")]}


builder = StateGraph(MessagesState)
builder.add_node("note", note)
builder.add_edge(START, "note")
builder.add_edge("note", END)
graph = builder
"""


async def _ask(url: str, key: str, content: str) -> str:
    sdk = get_client(url=url + PREFIX, api_key=key)
    try:
        thread_id = (await sdk.threads.create())["thread_id"]
        values = await sdk.runs.wait(thread_id, "notes", input=user_input(content))
    finally:
        await sdk.aclose()
    assert isinstance(values, dict)
    return str(values["messages"][-1]["content"])


async def test_a_hosted_graphs_nodes_get_the_owners_store(vector_database_url: str, tmp_path: Path) -> None:
    source = tmp_path / "notes_graph.py"
    source.write_text(GRAPH)
    settings = make_settings(
        vector_database_url,
        auth={"mode": "api_key", "api_keys": "key-a:ann,key-b:ben"},
        memory={"enabled": True},
        graphs={"graphs": f"notes={source}:graph"},
    )
    async with real_server(settings) as url:
        assert await _ask(url, "key-a", "note the badge reader on floor 2 is broken") == "noted"
        assert await _ask(url, "key-a", "what did I note?") == "the badge reader on floor 2 is broken"
        assert await _ask(url, "key-b", "what did I note?") == "nothing noted"
        async with httpx.AsyncClient(base_url=url, headers={"x-api-key": "key-a"}) as http:
            item = await http.get("/store/items", params={"namespace": "notes", "key": "latest"})
        assert item.json()["value"] == {"content": "the badge reader on floor 2 is broken"}

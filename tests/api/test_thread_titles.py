"""POST /threads/{id}/title: a short title from the first question and answer, written by a real
chat model (here langchain-openai against tests/fakes.py's FakeChatServer), or made from the
question offline and whenever the model fails."""

from __future__ import annotations

import httpx

from tests.conftest import make_settings, running_app, unique
from tests.fakes import FakeChatServer, Reply
from tests.integration.test_llm_providers import API_KEY, openai_model, routine

GREETED = "Hi! Can you please tell me who is behind the latest ransomware threat? It is for a report."


async def first_turn(client: httpx.AsyncClient, content: str) -> str:
    thread_id = unique("titled")
    response = await client.post(f"/threads/{thread_id}/messages", json={"content": content})
    assert response.status_code == 200, response.text
    return thread_id


async def test_offline_the_title_is_the_question_without_its_greeting(client: httpx.AsyncClient) -> None:
    thread_id = await first_turn(client, GREETED)
    response = await client.post(f"/threads/{thread_id}/title")
    assert response.status_code == 200, response.text
    assert response.json()["title"] == "Who is behind the latest ransomware threat?"
    assert (await client.get(f"/threads/{thread_id}")).json()["title"] == response.json()["title"]


async def test_a_thread_without_an_exchange_has_nothing_to_title(client: httpx.AsyncClient) -> None:
    created = await client.post("/threads", json={"title": "kept"})
    thread_id = created.json()["thread_id"]
    response = await client.post(f"/threads/{thread_id}/title")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_exchange"
    assert (await client.get(f"/threads/{thread_id}")).json()["title"] == "kept"
    missing = await client.post(f"/threads/{unique()}/title")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "thread_not_found"


async def test_a_real_model_writes_the_title_from_the_first_exchange(database_url: str) -> None:
    script = [*routine("Ransomware"), Reply(text='Title: "Ransomware on the finance laptops."')]
    async with (
        FakeChatServer(script, api_key=API_KEY) as server,
        running_app(make_settings(database_url, model=openai_model(server))) as (_, client),
    ):
        thread_id = await first_turn(client, GREETED)
        response = await client.post(f"/threads/{thread_id}/title")
        answer = (await client.get(f"/threads/{thread_id}/messages")).json()["messages"][-1]["content"]
    assert response.status_code == 200, response.text
    assert response.json()["title"] == "Ransomware on the finance laptops"
    assert server.violations == []
    asked = server.requests[-1]
    assert asked.roles == ["system", "user"] and "tools" not in asked.body
    assert GREETED in asked.messages[1]["content"] and answer in asked.messages[1]["content"]


async def test_a_failing_model_leaves_the_title_to_the_question(database_url: str) -> None:
    script = [*routine("Ransomware"), Reply(status=500, error="overloaded")]
    async with FakeChatServer(script, api_key=API_KEY) as server:
        settings = make_settings(database_url, model={**openai_model(server), "max_retries": 0})
        async with running_app(settings) as (_, client):
            thread_id = await first_turn(client, GREETED)
            response = await client.post(f"/threads/{thread_id}/title")
    assert response.status_code == 200, response.text
    assert response.json()["title"] == "Who is behind the latest ransomware threat?"

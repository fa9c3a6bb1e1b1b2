"""`POST /invocations`: the ResponsesAgent protocol over HTTP, on the same threads and memory as
the rest of the API, with identity from the transport."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import make_settings, running_app, unique

Q1 = "Who committed the latest malware threat?"
Q2 = "What was their IP address?"


def _ask(content: str, **fields: Any) -> dict[str, Any]:
    return {"input": [{"role": "user", "content": content}], **fields}


def _answer(body: dict[str, Any]) -> str:
    messages = [item for item in body["output"] if item["type"] == "message"]
    return "".join(part["text"] for part in messages[-1]["content"])


async def _invoke(client: httpx.AsyncClient, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    response = await client.post("/invocations", json=body, **kwargs)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _data_frames(text: str) -> list[str]:
    frames = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = [line[5:].lstrip(" ") for line in block.split("\n") if line.startswith("data:")]
        if data:
            frames.append("\n".join(data))
    return frames


def _assert_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    error = response.json()["error"]
    assert error["code"] == code
    message: str = error["message"]
    return message


async def test_two_turns_on_one_thread_share_memory_with_the_threads_api(client: httpx.AsyncClient) -> None:
    thread = unique()
    first = await _invoke(client, _ask(Q1, custom_inputs={"thread_id": thread}))
    assert first["object"] == "response" and first["status"] == "completed"
    assert first["custom_outputs"]["thread_id"] == thread
    types = [item["type"] for item in first["output"]]
    assert types == [
        "function_call",
        "function_call_output",
        "function_call",
        "function_call_output",
        "message",
    ]
    assert json.loads(first["output"][0]["arguments"]) == {"threat_type": "Malware"}
    assert first["output"][1]["call_id"] == first["output"][0]["call_id"]

    second = await _invoke(client, _ask(Q2, custom_inputs={"thread_id": thread}))
    assert _answer(second).startswith("Their IP address is")
    assert second["custom_outputs"]["checkpoint_id"] != first["custom_outputs"]["checkpoint_id"]

    # The same thread, seen through the threads API.
    transcript = (await client.get(f"/threads/{thread}/messages")).json()["messages"]
    assert [m["content"] for m in transcript if m["role"] == "user"] == [Q1, Q2]
    assert transcript[-1]["content"] == _answer(second)


async def test_thread_id_from_custom_inputs_then_conversation_id_then_new(client: httpx.AsyncClient) -> None:
    thread, conversation = unique(), unique("conv")
    both = await _invoke(
        client, _ask("hi", custom_inputs={"thread_id": thread}, context={"conversation_id": conversation})
    )
    assert both["custom_outputs"]["thread_id"] == thread
    by_conversation = await _invoke(client, _ask("hi", context={"conversation_id": conversation}))
    assert by_conversation["custom_outputs"]["thread_id"] == conversation
    fresh = await _invoke(client, _ask("hi"))
    new_id = fresh["custom_outputs"]["thread_id"]
    assert uuid.UUID(new_id).version == 4
    assert (await client.get(f"/threads/{new_id}")).status_code == 200


async def test_a_resent_history_adds_only_the_new_user_message(client: httpx.AsyncClient) -> None:
    """Chat front ends resend the conversation; on a named thread memory already has it."""
    thread = unique()
    first = await _invoke(client, _ask(Q1, custom_inputs={"thread_id": thread}))
    body = {
        "input": [
            {"role": "user", "content": Q1},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": _answer(first)}],
            },
            {"role": "user", "content": [{"type": "input_text", "text": Q2}]},
        ],
        "custom_inputs": {"thread_id": thread},
    }
    second = await _invoke(client, body)
    assert _answer(second).startswith("Their IP address is")
    transcript = (await client.get(f"/threads/{thread}/messages")).json()["messages"]
    assert [m["content"] for m in transcript if m["role"] == "user"] == [Q1, Q2]


async def test_stream_sends_text_deltas_items_and_done(client: httpx.AsyncClient) -> None:
    thread = unique()
    async with client.stream(
        "POST", "/invocations", json=_ask(Q1, custom_inputs={"thread_id": thread}, stream=True)
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join([chunk async for chunk in response.aiter_text()])
    frames = _data_frames(text)
    assert frames[-1] == "[DONE]"
    events = [json.loads(f) for f in frames[:-1]]
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    items = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [i["type"] for i in items][-1] == "message"
    assert deltas and "".join(d["delta"] for d in deltas) == items[-1]["content"][0]["text"]
    assert all(e["custom_outputs"]["thread_id"] == thread for e in events if "custom_outputs" in e)
    completed = events[-1]
    assert completed["type"] == "response.completed"
    assert completed["response"]["output"][-1]["content"] == items[-1]["content"]
    assert completed["custom_outputs"]["run_id"] == response.headers["x-run-id"]


@pytest.mark.parametrize(
    ("body", "status", "code", "says"),
    [
        ({}, 422, "invalid_input", "input"),
        ({"input": []}, 422, "invalid_input", "input"),
        ({"input": "hello"}, 422, "invalid_input", "input"),
        ({"input": [{"role": "assistant", "content": "hi"}]}, 422, "invalid_input", "'user'"),
        ({"input": [{"role": "robot", "content": "hi"}]}, 422, "invalid_input", "role"),
        ({"input": [{"role": "user", "content": "  "}]}, 422, "invalid_input", "empty"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
            422,
            "invalid_input",
            "text",
        ),
        (_ask("hi", custom_inputs={"thread_id": "a b"}), 422, "invalid_input", "custom_inputs.thread_id"),
        (_ask("hi", custom_inputs={"thread_id": 7}), 422, "invalid_input", "custom_inputs.thread_id"),
        (_ask("hi", context={"conversation_id": "x" * 200}), 422, "invalid_input", "conversation_id"),
    ],
)
async def test_bad_requests_get_a_clear_4xx(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, code: str, says: str
) -> None:
    message = _assert_error(await client.post("/invocations", json=body), status, code)
    assert says in message


async def test_malformed_json_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/invocations", content=b"{not json", headers={"content-type": "application/json"}
    )
    _assert_error(response, 400, "malformed_json")


async def test_busy_thread_is_a_409(database_url: str) -> None:
    async with running_app(make_settings(database_url, model={"offline_token_delay_ms": 40})) as (_, client):
        thread = unique()
        first = asyncio.create_task(
            client.post("/invocations", json=_ask(Q1, custom_inputs={"thread_id": thread}))
        )
        for _ in range(500):
            state = await client.get(f"/threads/{thread}")
            if state.status_code == 200 and state.json()["status"] == "busy":
                break
            await asyncio.sleep(0.01)
        second = await client.post("/invocations", json=_ask(Q2, custom_inputs={"thread_id": thread}))
        _assert_error(second, 409, "thread_busy")
        assert second.headers["retry-after"]
        assert (await first).status_code == 200


async def test_identity_comes_from_the_transport_not_the_body(database_url: str) -> None:
    settings = make_settings(database_url, auth={"mode": "api_key", "api_keys": "ka:alice,kb:bob"})
    async with running_app(settings) as (_, client):
        _assert_error(await client.post("/invocations", json=_ask("hi")), 401, "unauthorized")
        thread = unique()
        body = _ask(Q1, custom_inputs={"thread_id": thread}, context={"user_id": "bob"})
        await _invoke(client, body, headers={"X-API-Key": "ka"})
        assert (await client.get(f"/threads/{thread}", headers={"X-API-Key": "ka"})).status_code == 200
        assert (await client.get(f"/threads/{thread}", headers={"X-API-Key": "kb"})).status_code == 404

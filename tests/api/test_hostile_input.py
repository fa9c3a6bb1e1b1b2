"""Hostile input is a 4xx before anything is written, never a 500: metadata nested deep or with
many keys, lone surrogates in any string field, cursors carrying a NUL."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest

from app.errors import InvalidInput
from app.services.storable import CLIPPED
from app.serving.responses import ResponsesRequest, request_user
from tests.conftest import make_settings, real_server, unique

LONE = "\\ud800"  # a JSON escape that decodes to an unpaired surrogate


@pytest.fixture(scope="module")
async def http(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        real_server(make_settings(database_url)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield client


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


async def _raw(http: httpx.AsyncClient, method: str, path: str, body: str) -> httpx.Response:
    return await http.request(
        method, path, content=body.encode(), headers={"content-type": "application/json"}
    )


async def test_deep_metadata_is_refused_before_it_is_written(http: httpx.AsyncClient) -> None:
    thread_id = unique()
    response = await http.post("/threads", json={"thread_id": thread_id, "metadata": _nested(300)})
    assert response.status_code == 422
    assert "MAX_METADATA_DEPTH" in response.json()["error"]["message"]
    assert (await http.get(f"/threads/{thread_id}")).status_code == 404
    created = await http.post("/threads", json={"thread_id": thread_id, "metadata": _nested(3)})
    assert created.status_code == 201
    patched = await http.patch(f"/threads/{thread_id}", json={"metadata": {"deep": _nested(300)}})
    assert patched.status_code == 422
    assert (await http.get("/threads")).status_code == 200


async def test_deep_run_metadata_is_refused_and_a_stored_one_still_lists(
    http: httpx.AsyncClient, database_url: str
) -> None:
    thread_id = unique()
    refused = await http.post(
        f"/threads/{thread_id}/messages", json={"content": "hi", "metadata": _nested(300)}
    )
    assert refused.status_code == 422 and "nested deeper" in refused.json()["error"]["message"]
    done = await http.post(f"/threads/{thread_id}/messages", json={"content": "hi", "metadata": _nested(3)})
    assert done.status_code == 200
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE lma_runs SET metadata = %s::jsonb WHERE run_id = %s",
            (json.dumps(_nested(400)), done.json()["run_id"]),
        )
    listing = await http.get(f"/threads/{thread_id}/runs")
    assert listing.status_code == 200, listing.text
    assert CLIPPED in json.dumps(listing.json()[0]["metadata"])


async def test_the_agent_protocol_routes_check_metadata_too(http: httpx.AsyncClient) -> None:
    thread_id = unique()
    deep = await http.post("/lg/threads", json={"thread_id": thread_id, "metadata": _nested(300)})
    assert deep.status_code == 422 and "MAX_METADATA_DEPTH" in deep.json()["error"]["message"]
    assert (await http.post("/lg/threads", json={"thread_id": thread_id})).status_code == 200
    patched = await http.patch(f"/lg/threads/{thread_id}", json={"metadata": {"k": _nested(300)}})
    assert patched.status_code == 422
    run = await http.post(
        f"/lg/threads/{thread_id}/runs/wait",
        json={"input": {"messages": [{"role": "user", "content": "hi"}]}, "metadata": _nested(300)},
    )
    assert run.status_code == 422
    for path, body in (
        ("/lg/threads", '{"metadata": {"k": "' + LONE + '"}}'),
        ("/lg/threads/search", '{"metadata": {"k": "' + LONE + '"}}'),
        (
            f"/lg/threads/{thread_id}/runs/wait",
            '{"input": {"messages": []}, "metadata": {"' + LONE + '": 1}}',
        ),
    ):
        response = await _raw(http, "POST", path, body)
        assert response.status_code == 422, (path, response.text)
    assert (await http.post("/lg/threads/search", json={})).status_code == 200


async def test_metadata_with_too_many_keys_is_refused(http: httpx.AsyncClient) -> None:
    many = {"k": [{str(i): i} for i in range(300)]}
    response = await http.post("/threads", json={"metadata": many})
    assert response.status_code == 422
    assert "MAX_METADATA_KEYS" in response.json()["error"]["message"]


async def test_a_body_nested_past_the_parsers_stack_is_a_4xx(http: httpx.AsyncClient) -> None:
    depth = 100_000
    body = '{"metadata": ' + '{"a":' * depth + "{}" + "}" * depth + "}"
    response = await _raw(http, "POST", "/threads", body)
    assert 400 <= response.status_code < 500, response.text


async def test_a_row_stored_too_deep_still_lists(http: httpx.AsyncClient, database_url: str) -> None:
    thread_id = unique()
    assert (await http.post("/threads", json={"thread_id": thread_id})).status_code == 201
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE lma_threads SET metadata = %s::jsonb WHERE thread_id = %s",
            (json.dumps(_nested(400)), thread_id),
        )
    listing = await http.get("/threads", params={"limit": 200})
    assert listing.status_code == 200, listing.text
    shown = next(t for t in listing.json()["threads"] if t["thread_id"] == thread_id)
    assert CLIPPED in json.dumps(shown["metadata"])
    assert (await http.get(f"/threads/{thread_id}")).status_code == 200


SURROGATE_BODIES = [
    ("POST", "/threads", '{"title": "x' + LONE + '"}'),
    ("POST", "/threads", '{"metadata": {"k' + LONE + '": 1}}'),
    ("POST", "/threads", '{"metadata": {"k": "v' + LONE + '"}}'),
    ("POST", "/threads", '{"metadata": {"k": ["v' + LONE + '"]}}'),
    ("PATCH", "/threads/{thread}", '{"title": "' + LONE + '"}'),
    ("PATCH", "/threads/{thread}", '{"metadata": {"' + LONE + '": "v"}}'),
    ("POST", "/threads/{thread}/messages", '{"content": "hi ' + LONE + '"}'),
    ("POST", "/threads/{thread}/messages", '{"messages": [{"role": "user", "content": "' + LONE + '"}]}'),
    ("POST", "/threads/{thread}/messages", '{"content": "hi", "checkpoint_id": "' + LONE + '"}'),
    ("POST", "/threads/{thread}/messages", '{"content": "hi", "metadata": {"k": "' + LONE + '"}}'),
    ("POST", "/threads/{thread}/messages", '{"content": "hi", "metadata": {"' + LONE + '": 1}}'),
    ("PUT", "/threads/{thread}/feedback/{run}", '{"rating": "up", "comment": "' + LONE + '"}'),
    ("POST", "/invocations", '{"input": [{"role": "user", "content": "hi ' + LONE + '"}]}'),
    (
        "POST",
        "/invocations",
        '{"input": [{"role": "user", "content": [{"type": "input_text", "text": "' + LONE + '"}]}]}',
    ),
    ("POST", "/invocations", '{"input": [{"role": "user", "content": "hi"}], "custom_inputs":'
     ' {"thread_id": "' + LONE + '"}}'),
    ("POST", "/invocations", '{"input": [{"role": "user", "content": "hi"}], "context":'
     ' {"conversation_id": "' + LONE + '"}}'),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body"), SURROGATE_BODIES)
async def test_a_lone_surrogate_in_any_string_field_is_422(
    http: httpx.AsyncClient, method: str, path: str, body: str
) -> None:
    thread_id, run_id = unique(), ""
    if "{run}" in path:
        turn = await http.post(f"/threads/{thread_id}/messages", json={"content": "hi"})
        run_id = turn.json()["run_id"]
    elif "{thread}" in path:
        assert (await http.post("/threads", json={"thread_id": thread_id})).status_code == 201
    response = await _raw(http, method, path.format(thread=thread_id, run=run_id), body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_input"


async def test_a_nul_in_a_cursor_is_422_and_not_logged_as_an_outage(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    thread_id = unique()
    assert (await http.post("/threads", json={"thread_id": thread_id})).status_code == 201
    for value in (["2025-01-01T00:00:00+00:00", "a\u0000b"], [1, "x\ud800"]):
        cursor = base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
        caplog.clear()
        with caplog.at_level(logging.INFO):
            for path in ("/threads", f"/threads/{thread_id}/messages", f"/threads/{thread_id}/history"):
                response = await http.get(path, params={"before": cursor})
                assert response.status_code == 422, (path, response.text)
        assert not [r for r in caplog.records if "unavailable" in r.getMessage()]


def test_a_lone_surrogate_in_the_serving_user_is_refused() -> None:
    request = ResponsesRequest.model_validate(
        {"input": [{"role": "user", "content": "hi"}], "context": {"user_id": "bob\ud800"}}
    )
    with pytest.raises(InvalidInput):
        request_user(request)


@pytest.mark.parametrize(
    "path",
    [
        "/threads/{thread}/state?checkpoint_id=%ED%A0%80",
        "/threads/{thread}/history?before=%ED%A0%80",
        "/threads/%ED%A0%80",
        "/threads?before=%ED%A0%80",
    ],
)
async def test_an_encoded_surrogate_in_the_url_is_a_4xx(http: httpx.AsyncClient, path: str) -> None:
    thread_id = unique()
    assert (await http.post("/threads", json={"thread_id": thread_id})).status_code == 201
    response = await http.get(path.format(thread=thread_id))
    assert 400 <= response.status_code < 500, response.text

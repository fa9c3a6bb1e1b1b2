"""Every bad input gets a clear 4xx with the error body {"error": {"code", "message"}}, never a 500."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import make_settings, running_app, unique


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is a client error with the service's error body; returns the `error` object."""
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


def cursor(value: Any) -> str:
    """A cursor encoded the way the service encodes them, holding a value it never issues."""
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.fixture(scope="module")
async def limited(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An app with small limits, shared by the tests of this module that need them."""
    settings = make_settings(
        database_url,
        limits={
            "max_content_chars": 50,
            "max_messages_per_request": 3,
            "max_body_bytes": 2048,
            "max_metadata_bytes": 100,
        },
    )
    async with running_app(settings) as (_, c):
        yield c


@pytest.fixture(scope="module")
async def thread_with_turn(database_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    """A client and a thread that has one completed turn (and so a checkpoint)."""
    async with running_app(make_settings(database_url)) as (_, c):
        thread_id = unique("err")
        sent = await c.post(f"/threads/{thread_id}/messages", json={"content": "hello"})
        assert sent.status_code == 200, sent.text
        yield c, thread_id, sent.json()["checkpoint_id"]


# --- thread ids in the path -------------------------------------------------------------------

BAD_THREAD_IDS = [
    pytest.param("a%20b", id="space"),
    pytest.param("%20", id="only-space"),
    pytest.param("x" * 129, id="129-chars"),
    pytest.param("t%C3%A9", id="unicode"),
    pytest.param("t%00", id="nul"),
    pytest.param("t%0A", id="trailing-newline"),
    pytest.param("a%2Fb", id="encoded-slash"),
    pytest.param("t%3Bdrop", id="semicolon"),
]


@pytest.mark.parametrize("thread_id", BAD_THREAD_IDS)
@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PATCH", "", {"title": "x"}),
        ("DELETE", "", None),
        ("GET", "/messages", None),
        ("POST", "/messages", {"content": "hello"}),
        ("GET", "/history", None),
        ("GET", "/state", None),
    ],
)
async def test_invalid_thread_id_is_rejected(
    client: httpx.AsyncClient, thread_id: str, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    response = await client.request(method, f"/threads/{thread_id}{suffix}", json=body)
    assert response.status_code < 500, response.text
    # An encoded slash may decode into a path that no route matches: a 404 is fine then.
    assert response.status_code in (404, 422), response.text
    error = assert_error(response, response.status_code)
    if response.status_code == 422:
        assert error["code"] == "invalid_input"
        assert "thread_id" in error["message"] or "NUL" in error["message"]


@pytest.mark.parametrize("path", ["/threads/a/b", "/threads//messages", "/threads/a/b/messages"])
async def test_unroutable_thread_paths_are_404(client: httpx.AsyncClient, path: str) -> None:
    assert_error(await client.get(path), 404, "not_found")


async def test_thread_id_of_128_chars_is_fine(client: httpx.AsyncClient) -> None:
    thread_id = "x" * 120 + unique("")[1:9]
    assert len(thread_id) == 128
    assert (await client.post(f"/threads/{thread_id}/messages", json={"content": "hi"})).status_code == 200


async def test_create_thread_with_invalid_id_is_422(client: httpx.AsyncClient) -> None:
    for thread_id in ["a b", "x" * 129, "té", "", "a/b", "t\n"]:
        assert_error(await client.post("/threads", json={"thread_id": thread_id}), 422, "invalid_input")


# --- POST /threads/{id}/messages: the body ------------------------------------------------------


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"/threads/{unique()}/messages",
        content=b'{"content": "hello"',
        headers={"content-type": "application/json"},
    )
    assert_error(response, 400, "malformed_json")


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"hello"', b"42", b"null", b"true"])
async def test_non_object_json_is_422(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post(
        f"/threads/{unique()}/messages", content=raw, headers={"content-type": "application/json"}
    )
    assert_error(response, 422, "invalid_input")


async def test_non_json_content_type_is_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"/threads/{unique()}/messages", content=b"hello", headers={"content-type": "text/plain"}
    )
    assert_error(response, response.status_code)
    assert response.status_code in (400, 415, 422)


async def test_empty_body_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"/threads/{unique()}/messages", content=b"", headers={"content-type": "application/json"}
    )
    assert_error(response, 422, "invalid_input")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"content": ""}, id="empty-content"),
        pytest.param({"content": "   \n\t "}, id="whitespace-content"),
        pytest.param({"content": "hello", "messages": [{"role": "user", "content": "hi"}]}, id="both"),
        pytest.param({}, id="neither"),
        pytest.param({"content": None}, id="content-null"),
        pytest.param({"messages": []}, id="empty-messages"),
        pytest.param(
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
            id="last-not-user",
        ),
        pytest.param({"messages": [{"role": "system", "content": "be brief"}]}, id="only-system"),
        pytest.param({"messages": [{"role": "wizard", "content": "hi"}]}, id="unknown-role"),
        pytest.param({"messages": [{"role": "tool", "content": "hi"}]}, id="tool-role"),
        pytest.param({"messages": [{"role": "user"}]}, id="message-without-content"),
        pytest.param({"messages": [{"role": "user", "content": "hi", "name": "x"}]}, id="message-extra"),
        pytest.param({"messages": [{"role": "user", "content": ""}]}, id="message-empty-content"),
        pytest.param({"messages": "hello"}, id="messages-not-list"),
        pytest.param({"content": 42}, id="content-not-string"),
        pytest.param({"content": ["a"]}, id="content-list"),
        pytest.param({"content": "a\u0000b"}, id="nul-content"),
        pytest.param({"messages": [{"role": "user", "content": "a\u0000b"}]}, id="nul-message"),
        pytest.param({"content": "hello", "checkpoint_id": "a\u0000b"}, id="nul-checkpoint"),
        pytest.param({"content": "hello", "checkpoint_id": "c" * 65}, id="long-checkpoint"),
        pytest.param({"content": "hello", "extra": 1}, id="unknown-field"),
        pytest.param({"content": "hello", "thread_id": "other"}, id="thread-id-in-body"),
    ],
)
async def test_invalid_turn_body_is_422(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    thread_id = unique()
    response = await client.post(f"/threads/{thread_id}/messages", json=body)
    assert_error(response, 422, "invalid_input")
    # Nothing was run or created by a rejected request.
    assert_error(await client.get(f"/threads/{thread_id}"), 404, "thread_not_found")


async def test_content_over_the_limit_is_422(limited: httpx.AsyncClient) -> None:
    thread_id = unique()
    ok = await limited.post(f"/threads/{thread_id}/messages", json={"content": "x" * 50})
    assert ok.status_code == 200, ok.text
    error = assert_error(
        await limited.post(f"/threads/{thread_id}/messages", json={"content": "x" * 51}), 422, "invalid_input"
    )
    assert "MAX_CONTENT_CHARS" in error["message"]
    long_message = {"messages": [{"role": "system", "content": "y" * 51}, {"role": "user", "content": "hi"}]}
    assert_error(
        await limited.post(f"/threads/{thread_id}/messages", json=long_message), 422, "invalid_input"
    )


async def test_too_many_messages_is_422(limited: httpx.AsyncClient) -> None:
    messages = [{"role": "user", "content": f"m{i}"} for i in range(4)]
    error = assert_error(
        await limited.post(f"/threads/{unique()}/messages", json={"messages": messages}), 422, "invalid_input"
    )
    assert "MAX_MESSAGES_PER_REQUEST" in error["message"]
    ok = await limited.post(f"/threads/{unique()}/messages", json={"messages": messages[:3]})
    assert ok.status_code == 200, ok.text


async def test_too_many_messages_default_limit(client: httpx.AsyncClient) -> None:
    messages = [{"role": "user", "content": f"m{i}"} for i in range(21)]
    assert_error(await client.post(f"/threads/{unique()}/messages", json={"messages": messages}), 422)


async def test_unknown_checkpoint_on_existing_thread_is_404(
    thread_with_turn: tuple[httpx.AsyncClient, str, str],
) -> None:
    client, thread_id, _ = thread_with_turn
    for checkpoint_id in ["no-such-checkpoint", "1f0c3a3e-7b51-6d2c-8005-2b6c1c7f9e10"]:
        response = await client.post(
            f"/threads/{thread_id}/messages", json={"content": "hello", "checkpoint_id": checkpoint_id}
        )
        assert_error(response, 404, "checkpoint_not_found")
    # The thread is untouched.
    assert (await client.get(f"/threads/{thread_id}")).json()["turn_count"] == 1


async def test_checkpoint_of_another_thread_is_404(
    thread_with_turn: tuple[httpx.AsyncClient, str, str],
) -> None:
    client, _, checkpoint_id = thread_with_turn
    other = unique()
    assert (await client.post(f"/threads/{other}/messages", json={"content": "hi"})).status_code == 200
    response = await client.post(
        f"/threads/{other}/messages", json={"content": "hello", "checkpoint_id": checkpoint_id}
    )
    assert_error(response, 404, "checkpoint_not_found")


async def test_checkpoint_on_missing_thread_is_404(
    thread_with_turn: tuple[httpx.AsyncClient, str, str],
) -> None:
    client, _, checkpoint_id = thread_with_turn
    thread_id = unique()
    response = await client.post(
        f"/threads/{thread_id}/messages", json={"content": "hello", "checkpoint_id": checkpoint_id}
    )
    assert_error(response, 404, "thread_not_found")
    assert_error(await client.get(f"/threads/{thread_id}"), 404, "thread_not_found")


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("has space", id="space"),
        pytest.param("k" * 256, id="256-chars"),
        pytest.param("k" * 300, id="300-chars"),
        pytest.param("tab\there", id="tab"),
        pytest.param("caf\u00e9", id="non-ascii"),
    ],
)
async def test_invalid_idempotency_key_is_422(client: httpx.AsyncClient, key: str) -> None:
    thread_id = unique()
    response = await client.post(
        f"/threads/{thread_id}/messages",
        json={"content": "hello"},
        headers={b"Idempotency-Key": key.encode()},
    )
    error = assert_error(response, 422, "invalid_input")
    assert "Idempotency-Key" in error["message"]
    assert_error(await client.get(f"/threads/{thread_id}"), 404, "thread_not_found")


async def test_idempotency_key_of_255_printable_chars_is_fine(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"/threads/{unique()}/messages", json={"content": "hello"}, headers={"Idempotency-Key": "k" * 255}
    )
    assert response.status_code == 200, response.text


# --- body size ----------------------------------------------------------------------------------


async def test_body_over_the_limit_is_413(limited: httpx.AsyncClient) -> None:
    thread_id = unique()
    body = json.dumps({"content": "x" * 10_000}).encode()
    response = await limited.post(
        f"/threads/{thread_id}/messages", content=body, headers={"content-type": "application/json"}
    )
    error = assert_error(response, 413, "payload_too_large")
    assert "MAX_BODY_BYTES" in error["message"]
    assert_error(await limited.get(f"/threads/{thread_id}"), 404, "thread_not_found")


async def test_body_over_the_limit_on_other_routes_is_413(limited: httpx.AsyncClient) -> None:
    big = {"thread_id": unique(), "metadata": {"blob": "x" * 10_000}}
    assert_error(await limited.post("/threads", json=big), 413, "payload_too_large")
    assert_error(await limited.patch(f"/threads/{unique()}", json={"title": "y" * 10_000}), 413)


async def test_chunked_body_over_the_limit_is_413(limited: httpx.AsyncClient) -> None:
    thread_id = unique()

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"content": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    request = limited.build_request(
        "POST",
        f"/threads/{thread_id}/messages",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert "content-length" not in request.headers
    response = await limited.send(request)
    assert_error(response, 413, "payload_too_large")
    assert_error(await limited.get(f"/threads/{thread_id}"), 404, "thread_not_found")


async def test_chunked_body_under_the_limit_is_accepted(limited: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"content": '
        yield b'"hello"}'

    request = limited.build_request(
        "POST",
        f"/threads/{unique()}/messages",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert "content-length" not in request.headers
    response = await limited.send(request)
    assert response.status_code == 200, response.text


# --- reading threads ----------------------------------------------------------------------------


async def test_unknown_thread_is_404_everywhere(client: httpx.AsyncClient) -> None:
    thread_id = unique()
    for method, suffix in [
        ("GET", ""),
        ("DELETE", ""),
        ("GET", "/messages"),
        ("GET", "/history"),
        ("GET", "/state"),
    ]:
        assert_error(await client.request(method, f"/threads/{thread_id}{suffix}"), 404, "thread_not_found")
    assert_error(await client.patch(f"/threads/{thread_id}", json={"title": "x"}), 404, "thread_not_found")


async def test_state_of_unknown_checkpoint_is_404(
    thread_with_turn: tuple[httpx.AsyncClient, str, str],
) -> None:
    client, thread_id, _ = thread_with_turn
    response = await client.get(f"/threads/{thread_id}/state", params={"checkpoint_id": "nope"})
    assert_error(response, 404, "checkpoint_not_found")
    assert_error(await client.get(f"/threads/{thread_id}/state", params={"checkpoint_id": "c" * 65}), 422)


async def test_state_of_thread_without_turns_is_404(client: httpx.AsyncClient) -> None:
    thread_id = unique()
    assert (await client.post("/threads", json={"thread_id": thread_id})).status_code == 201
    assert_error(await client.get(f"/threads/{thread_id}/state"), 404, "checkpoint_not_found")


async def test_state_with_nul_checkpoint_id_is_4xx(
    thread_with_turn: tuple[httpx.AsyncClient, str, str],
) -> None:
    client, thread_id, _ = thread_with_turn
    response = await client.get(f"/threads/{thread_id}/state", params={"checkpoint_id": "a\u0000b"})
    assert response.status_code in (404, 422), response.text
    assert_error(response, response.status_code)


GARBAGE_CURSORS = [
    pytest.param("garbage", id="garbage"),
    pytest.param("!!!", id="not-base64"),
    pytest.param("%%%", id="percent"),
    pytest.param("x" * 513, id="too-long"),
    pytest.param(cursor({"a": 1}), id="object"),
    pytest.param(cursor(1.5), id="float"),
    pytest.param(cursor(None), id="null"),
]


@pytest.mark.parametrize("before", GARBAGE_CURSORS)
async def test_garbage_thread_list_cursor_is_422(client: httpx.AsyncClient, before: str) -> None:
    response = await client.get("/threads", params={"before": before})
    if before == cursor(None):  # decodes to "no cursor": the first page
        assert response.status_code == 200, response.text
        return
    assert_error(response, 422, "invalid_input")


@pytest.mark.parametrize(
    "before",
    [
        pytest.param(cursor(["not a date", "t"]), id="bad-date"),
        pytest.param(cursor([]), id="empty-list"),
        pytest.param(cursor(42), id="int"),
        pytest.param(cursor("2025-01-01"), id="string"),
    ],
)
async def test_thread_list_cursor_of_the_wrong_shape_is_422(client: httpx.AsyncClient, before: str) -> None:
    assert_error(await client.get("/threads", params={"before": before}), 422, "invalid_input")


async def test_thread_list_cursor_with_nul_is_not_500(client: httpx.AsyncClient) -> None:
    before = cursor(["2025-01-01T00:00:00+00:00", "a\u0000b"])
    response = await client.get("/threads", params={"before": before})
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert_error(response, 422, "invalid_input")


@pytest.mark.parametrize("before", [*GARBAGE_CURSORS, pytest.param(cursor("a-string"), id="string")])
async def test_garbage_message_cursor_is_422(
    thread_with_turn: tuple[httpx.AsyncClient, str, str], before: str
) -> None:
    client, thread_id, _ = thread_with_turn
    response = await client.get(f"/threads/{thread_id}/messages", params={"before": before})
    if before == cursor(None):
        assert response.status_code == 200, response.text
        return
    assert_error(response, 422, "invalid_input")


async def test_boolean_message_cursor_is_422(thread_with_turn: tuple[httpx.AsyncClient, str, str]) -> None:
    """`true` is not a seq this service issues (bool is an int subclass in Python)."""
    client, thread_id, _ = thread_with_turn
    response = await client.get(f"/threads/{thread_id}/messages", params={"before": cursor(True)})
    assert_error(response, 422, "invalid_input")


@pytest.mark.parametrize(
    "before",
    [
        pytest.param(cursor(10**30), id="huge-int"),
        pytest.param(cursor(-5), id="negative"),
    ],
)
async def test_odd_message_cursor_is_never_500(
    thread_with_turn: tuple[httpx.AsyncClient, str, str], before: str
) -> None:
    client, thread_id, _ = thread_with_turn
    response = await client.get(f"/threads/{thread_id}/messages", params={"before": before})
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert_error(response, 422, "invalid_input")


@pytest.mark.parametrize(
    "before", [*GARBAGE_CURSORS, pytest.param(cursor(7), id="int"), pytest.param(cursor([1]), id="list")]
)
async def test_garbage_history_cursor_is_422(
    thread_with_turn: tuple[httpx.AsyncClient, str, str], before: str
) -> None:
    client, thread_id, _ = thread_with_turn
    response = await client.get(f"/threads/{thread_id}/history", params={"before": before})
    if before == cursor(None):
        assert response.status_code == 200, response.text
        return
    assert_error(response, 422, "invalid_input")


async def test_history_cursor_with_nul_is_not_500(
    thread_with_turn: tuple[httpx.AsyncClient, str, str],
) -> None:
    client, thread_id, _ = thread_with_turn
    response = await client.get(f"/threads/{thread_id}/history", params={"before": cursor("a\u0000b")})
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert_error(response, 422, "invalid_input")


@pytest.mark.parametrize("limit", ["0", "-1", "100000", "1001", "abc", "1.5", ""])
@pytest.mark.parametrize("suffix", ["", "/messages", "/history"])
async def test_out_of_range_limit_is_422(
    thread_with_turn: tuple[httpx.AsyncClient, str, str], suffix: str, limit: str
) -> None:
    client, thread_id, _ = thread_with_turn
    path = f"/threads/{thread_id}{suffix}" if suffix else "/threads"
    assert_error(await client.get(path, params={"limit": limit}), 422, "invalid_input")


# --- creating and changing threads -------------------------------------------------------------


async def test_patch_title_over_200_chars_is_422(client: httpx.AsyncClient) -> None:
    thread_id = unique()
    assert (await client.post("/threads", json={"thread_id": thread_id, "title": "t"})).status_code == 201
    assert_error(await client.patch(f"/threads/{thread_id}", json={"title": "x" * 201}), 422, "invalid_input")
    assert_error(
        await client.patch(f"/threads/{thread_id}", json={"title": "a\u0000b"}), 422, "invalid_input"
    )
    assert_error(await client.patch(f"/threads/{thread_id}", json={"owner": "x"}), 422, "invalid_input")
    assert_error(await client.patch(f"/threads/{thread_id}", json={"metadata": [1]}), 422, "invalid_input")
    assert (await client.get(f"/threads/{thread_id}")).json()["title"] == "t"
    ok = await client.patch(f"/threads/{thread_id}", json={"title": "x" * 200})
    assert ok.status_code == 200, ok.text


async def test_create_with_title_over_200_chars_is_422(client: httpx.AsyncClient) -> None:
    assert_error(await client.post("/threads", json={"title": "x" * 201}), 422, "invalid_input")


async def test_create_existing_thread_is_409(client: httpx.AsyncClient) -> None:
    thread_id = unique()
    assert (await client.post("/threads", json={"thread_id": thread_id})).status_code == 201
    error = assert_error(await client.post("/threads", json={"thread_id": thread_id}), 409, "thread_exists")
    assert thread_id in error["message"]


async def test_create_thread_created_by_a_message_is_409(client: httpx.AsyncClient) -> None:
    thread_id = unique()
    assert (await client.post(f"/threads/{thread_id}/messages", json={"content": "hi"})).status_code == 200
    assert_error(await client.post("/threads", json={"thread_id": thread_id}), 409, "thread_exists")


async def test_metadata_over_the_limit_is_422(limited: httpx.AsyncClient) -> None:
    thread_id = unique()
    big = {"notes": "x" * 200}
    error = assert_error(
        await limited.post("/threads", json={"thread_id": thread_id, "metadata": big}), 422, "invalid_input"
    )
    assert "MAX_METADATA_BYTES" in error["message"]
    assert_error(await limited.get(f"/threads/{thread_id}"), 404, "thread_not_found")
    assert (
        await limited.post("/threads", json={"thread_id": thread_id, "metadata": {"a": 1}})
    ).status_code == 201
    assert_error(await limited.patch(f"/threads/{thread_id}", json={"metadata": big}), 422, "invalid_input")


async def test_metadata_with_nul_is_422(client: httpx.AsyncClient) -> None:
    for metadata in [{"k": "a\u0000b"}, {"a\u0000b": 1}]:
        assert_error(await client.post("/threads", json={"metadata": metadata}), 422, "invalid_input")


# --- routing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/threads/x/nope", "/api/threads"])
async def test_unknown_route_is_404(client: httpx.AsyncClient, path: str) -> None:
    assert_error(await client.get(path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/threads"), ("DELETE", "/threads"), ("PUT", "/threads/x"), ("DELETE", "/threads/x/messages")],
)
async def test_wrong_method_is_405(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path)
    assert_error(response, 405, "method_not_allowed")
    assert "allow" in response.headers

"""Identity comes from the transport only: API keys, or the headers Databricks Apps forwards.

Each owner has its own namespace of thread ids, and another owner's thread is indistinguishable
from one that does not exist (404, never 403), on every route.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import make_settings, running_app, unique

Headers = dict[str, str]


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    body = response.json()
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


async def _send(client: httpx.AsyncClient, thread_id: str, content: str, headers: Headers) -> dict[str, Any]:
    response = await client.post(f"/threads/{thread_id}/messages", json={"content": content}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _transcript(client: httpx.AsyncClient, thread_id: str, headers: Headers) -> list[tuple[str, str]]:
    response = await client.get(f"/threads/{thread_id}/messages", headers=headers)
    assert response.status_code == 200, response.text
    return [(m["role"], m["content"]) for m in response.json()["messages"]]


async def _listed(client: httpx.AsyncClient, headers: Headers) -> set[str]:
    response = await client.get("/threads", params={"limit": 1000}, headers=headers)
    assert response.status_code == 200, response.text
    return {t["thread_id"] for t in response.json()["threads"]}


async def assert_isolated(client: httpx.AsyncClient, owner: Headers, other: Headers) -> None:
    """`owner` has a thread "shared"; `other` cannot see or touch it, and keeps its own "shared"."""
    thread_id = "shared"
    created = await client.post("/threads", json={"thread_id": thread_id, "title": "Mine"}, headers=owner)
    assert created.status_code == 201, created.text
    first = await _send(client, thread_id, "Who committed the latest malware threat?", owner)
    before = await _transcript(client, thread_id, owner)
    assert len(before) == len(first["messages"]) == 6

    # The other owner sees nothing of it, on every route.
    for method, suffix in [
        ("GET", ""),
        ("GET", "/messages"),
        ("GET", "/history"),
        ("GET", "/state"),
        ("DELETE", ""),
    ]:
        response = await client.request(method, f"/threads/{thread_id}{suffix}", headers=other)
        assert_error(response, 404, "thread_not_found")
    assert_error(
        await client.patch(f"/threads/{thread_id}", json={"title": "Stolen"}, headers=other),
        404,
        "thread_not_found",
    )
    checkpoint = first["checkpoint_id"]
    assert_error(
        await client.get(f"/threads/{thread_id}/state", params={"checkpoint_id": checkpoint}, headers=other),
        404,
        "thread_not_found",
    )
    # Forking from the owner's checkpoint: the other's "shared" does not exist yet.
    assert_error(
        await client.post(
            f"/threads/{thread_id}/messages",
            json={"content": "What was their IP address?", "checkpoint_id": checkpoint},
            headers=other,
        ),
        404,
        "thread_not_found",
    )
    assert thread_id not in await _listed(client, other)
    assert thread_id in await _listed(client, owner)

    # The other owner's "shared" is a separate thread with the same id.
    mine = await client.post("/threads", json={"thread_id": thread_id, "title": "Theirs"}, headers=other)
    assert mine.status_code == 201, mine.text
    assert mine.json()["message_count"] == 0
    follow_up = await _send(client, thread_id, "What was their IP address?", other)
    # No memory leaks across owners: their thread knows nobody.
    assert "don't know" in follow_up["messages"][-1]["content"]
    await _send(client, thread_id, "hello", other)
    assert len(await _transcript(client, thread_id, other)) == 4
    # The other's thread's checkpoint is not usable on the owner's thread.
    assert_error(
        await client.post(
            f"/threads/{thread_id}/messages",
            json={"content": "hi", "checkpoint_id": follow_up["checkpoint_id"]},
            headers=owner,
        ),
        404,
        "checkpoint_not_found",
    )

    # The owner's thread is unchanged.
    assert await _transcript(client, thread_id, owner) == before
    got = (await client.get(f"/threads/{thread_id}", headers=owner)).json()
    assert got["title"] == "Mine" and got["turn_count"] == 1
    assert got["head_checkpoint_id"] == checkpoint
    assert (await client.get(f"/threads/{thread_id}", headers=other)).json()["title"] == "Theirs"

    # Each deletes only its own.
    assert (await client.delete(f"/threads/{thread_id}", headers=other)).status_code == 204
    assert (await client.get(f"/threads/{thread_id}", headers=owner)).status_code == 200
    assert (await client.delete(f"/threads/{thread_id}", headers=owner)).status_code == 204
    assert_error(await client.get(f"/threads/{thread_id}", headers=owner), 404, "thread_not_found")


# --- AUTH_MODE=api_key --------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def api_key_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    # Owner names unique to this run, so no other test's threads are in their namespaces.
    alice, bob = unique("alice"), unique("bob")
    settings = make_settings(database_url, auth={"mode": "api_key", "api_keys": f"key-a:{alice},key-b:{bob}"})
    async with running_app(settings) as (_, c):
        yield c


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="none"),
        pytest.param({"Authorization": "Bearer wrong"}, id="wrong-bearer"),
        pytest.param({"X-API-Key": "wrong"}, id="wrong-x-api-key"),
        pytest.param({"Authorization": "Bearer "}, id="empty-bearer"),
        pytest.param({"Authorization": "Basic key-a"}, id="basic-scheme"),
        pytest.param({"Authorization": "key-a"}, id="no-scheme"),
        pytest.param({"X-API-Key": ""}, id="empty-x-api-key"),
        pytest.param({"X-API-Key": "key-a "}, id="key-with-trailing-space"),
        pytest.param({"X-API-Key": "key-"}, id="key-prefix"),
        pytest.param({"X-API-Key": "key-a:alice"}, id="key-and-owner"),
        pytest.param({"X-Forwarded-Email": "alice@example.com"}, id="forwarded-header-ignored"),
    ],
)
async def test_api_key_mode_rejects_missing_or_wrong_keys(
    api_key_client: httpx.AsyncClient, headers: Headers
) -> None:
    for method, path in [("GET", "/threads"), ("POST", "/threads"), ("GET", "/threads/shared")]:
        body: dict[str, Any] | None = {} if method == "POST" else None
        response = await api_key_client.request(method, path, headers=headers, json=body)
        assert_error(response, 401, "unauthorized")
    response = await api_key_client.post(
        f"/threads/{unique()}/messages", json={"content": "hi"}, headers=headers
    )
    assert_error(response, 401, "unauthorized")


async def test_api_key_mode_accepts_bearer_and_x_api_key(api_key_client: httpx.AsyncClient) -> None:
    for headers in [
        {"Authorization": "Bearer key-a"},
        {"Authorization": "bearer key-a"},
        {"X-API-Key": "key-b"},
    ]:
        response = await api_key_client.get("/threads", headers=headers)
        assert response.status_code == 200, response.text


async def test_api_key_owners_are_isolated(api_key_client: httpx.AsyncClient) -> None:
    await assert_isolated(api_key_client, {"Authorization": "Bearer key-a"}, {"X-API-Key": "key-b"})


async def test_health_needs_no_key(api_key_client: httpx.AsyncClient) -> None:
    assert (await api_key_client.get("/healthz")).status_code == 200


# --- AUTH_MODE=databricks -----------------------------------------------------------------------


@pytest.fixture(scope="module")
async def databricks_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(make_settings(database_url, auth={"mode": "databricks"})) as (_, c):
        yield c


async def test_databricks_mode_requires_a_forwarded_identity(databricks_client: httpx.AsyncClient) -> None:
    for headers in [
        {},
        {"Authorization": "Bearer key-a"},
        {"X-API-Key": "key-a"},
        {"X-Forwarded-Email": ""},
        {"X-Forwarded-Email": "   "},
        {"X-Forwarded-User": "  "},
    ]:
        assert_error(await databricks_client.get("/threads", headers=headers), 401, "unauthorized")
        response = await databricks_client.post(
            f"/threads/{unique()}/messages", json={"content": "hi"}, headers=headers
        )
        assert_error(response, 401, "unauthorized")


async def test_databricks_email_identifies_the_owner_and_user_is_the_fallback(
    databricks_client: httpx.AsyncClient,
) -> None:
    name = unique("carol")
    email = f"{name}@example.com"
    thread_id = unique()
    created = await databricks_client.post(
        "/threads", json={"thread_id": thread_id}, headers={"X-Forwarded-Email": email}
    )
    assert created.status_code == 201, created.text
    # Email wins over user: the same email with any user is the same owner.
    seen = await databricks_client.get(
        f"/threads/{thread_id}", headers={"X-Forwarded-Email": email, "X-Forwarded-User": "someone-else"}
    )
    assert seen.status_code == 200, seen.text
    # The user header alone is the fallback identity: a different owner here.
    assert_error(
        await databricks_client.get(f"/threads/{thread_id}", headers={"X-Forwarded-User": name}),
        404,
        "thread_not_found",
    )
    by_user = await databricks_client.post(
        "/threads", json={"thread_id": thread_id}, headers={"X-Forwarded-User": name}
    )
    assert by_user.status_code == 201, by_user.text
    # An email equal to that user name is the same owner as the user header.
    same = await databricks_client.get(f"/threads/{thread_id}", headers={"X-Forwarded-Email": name})
    assert same.status_code == 200, same.text
    assert_error(
        await databricks_client.post(
            "/threads", json={"thread_id": thread_id}, headers={"X-Forwarded-User": name}
        ),
        409,
        "thread_exists",
    )


async def test_databricks_owners_are_isolated(databricks_client: httpx.AsyncClient) -> None:
    await assert_isolated(
        databricks_client,
        {"X-Forwarded-Email": f"{unique('dave')}@example.com"},
        {"X-Forwarded-Email": f"{unique('erin')}@example.com"},
    )


async def test_databricks_user_header_owners_are_isolated(databricks_client: httpx.AsyncClient) -> None:
    await assert_isolated(
        databricks_client, {"X-Forwarded-User": unique("frank")}, {"X-Forwarded-User": unique("grace")}
    )


# --- the body never names the owner -------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("POST", "", {"thread_id": "x", "owner": "alice"}),
        ("POST", "/messages", {"content": "hi", "owner": "alice"}),
        ("POST", "/messages", {"messages": [{"role": "user", "content": "hi", "owner": "alice"}]}),
        ("PATCH", "", {"title": "x", "owner": "alice"}),
    ],
)
async def test_owner_in_the_body_is_rejected(
    api_key_client: httpx.AsyncClient, method: str, suffix: str, body: dict[str, Any]
) -> None:
    bob = {"X-API-Key": "key-b"}
    thread_id = unique()
    path = "/threads" if method == "POST" and not suffix else f"/threads/{thread_id}{suffix}"
    if method == "PATCH":
        assert (
            await api_key_client.post("/threads", json={"thread_id": thread_id}, headers=bob)
        ).status_code == 201
    response = await api_key_client.request(method, path, json=body, headers=bob)
    assert_error(response, 422, "invalid_input")
    assert "owner" in response.json()["error"]["message"]
    # Nothing was created or changed, for the caller or for the owner named in the body.
    alice = {"X-API-Key": "key-a"}
    assert_error(await api_key_client.get(f"/threads/{thread_id}", headers=alice), 404, "thread_not_found")
    for headers in (alice, bob):
        assert "x" not in await _listed(api_key_client, headers)
    if method == "PATCH":
        assert (await api_key_client.get(f"/threads/{thread_id}", headers=bob)).json()["title"] is None
    elif suffix:
        assert_error(await api_key_client.get(f"/threads/{thread_id}", headers=bob), 404, "thread_not_found")


async def test_owner_in_the_body_is_rejected_without_auth(client: httpx.AsyncClient) -> None:
    response = await client.post("/threads", json={"owner": "alice"})
    assert_error(response, 422, "invalid_input")

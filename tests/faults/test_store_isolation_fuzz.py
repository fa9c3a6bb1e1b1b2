"""Store isolation between two owners (AUTH_MODE=api_key), fuzzed: random namespaces (wildcards,
LIKE and regex metacharacters, labels that spell the other owner or the storage root) and random
put / get / search / list / delete / delete-prefix sequences. Every answer is checked against a
model of what each owner stored: an owner never reads, finds, lists or deletes the other's items."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_settings, running_app

OWNERS = ("alice%_*", "bob")  # an owner with LIKE and wildcard characters in its name
KEYS = {"mode": "api_key", "api_keys": f"key-0:{OWNERS[0]},key-1:{OWNERS[1]}"}
KINDS = ("put", "put", "get", "search", "query", "list", "delete", "forget")

labels = st.one_of(
    st.sampled_from(["*", "%", "_", "owners", "alice%_*", "alice%25_%2A", "bob", "memories", "a\\b"]),
    st.text(st.characters(exclude_characters=".\x00"), min_size=1, max_size=12),
)
namespaces = st.lists(labels, min_size=1, max_size=3)
steps = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(0, 1), namespaces, st.sampled_from(["k1", "k2"])),
    min_size=6,
    max_size=14,
)


@pytest.fixture
async def client(vector_database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings_ = make_settings(vector_database_url, auth=KEYS, memory={"enabled": True})
    async with running_app(settings_) as (_, http):
        yield http


def _under(namespace: list[str], prefix: list[str]) -> bool:
    return namespace[: len(prefix)] == prefix


@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=steps)
async def test_two_owners_never_reach_each_others_items(client: httpx.AsyncClient, steps: list[Any]) -> None:
    run = uuid.uuid4().hex[:8]  # examples share the database: each one's items are its own
    stored: dict[tuple[int, tuple[str, ...], str], str] = {}  # (owner, namespace, key) -> marker
    for number, (kind, who, raw_ns, key) in enumerate(steps):
        ns = [f"r{run}", *raw_ns]
        headers = {"x-api-key": f"key-{who}"}
        marker = f"m-{run}-{number}-{who}"
        if kind == "put":
            response = await client.put(
                "/store/items",
                json={"namespace": ns, "key": key, "value": {"content": marker}},
                headers=headers,
            )
            assert response.status_code == 204, response.text
            stored[(who, tuple(ns), key)] = marker
        elif kind == "get":
            response = await client.get(
                "/store/items", params={"namespace": ".".join(ns), "key": key}, headers=headers
            )
            expected = stored.get((who, tuple(ns), key))
            if expected is None:
                assert response.status_code == 404, response.text
            else:
                assert response.json()["value"] == {"content": expected}
        elif kind in ("search", "query"):
            body: dict[str, Any] = {"namespace_prefix": ns[:1], "limit": 100}
            if kind == "query":
                body["query"] = marker
            response = await client.post("/store/items/search", json=body, headers=headers)
            assert response.status_code == 200, response.text
            found = {
                (tuple(i["namespace"]), i["key"], i["value"]["content"]) for i in response.json()["items"]
            }
            mine = {(n, k, m) for (o, n, k), m in stored.items() if o == who}
            assert found == mine
        elif kind == "list":
            response = await client.post("/store/namespaces", json={"prefix": ns[:1]}, headers=headers)
            listed = {tuple(n) for n in response.json()["namespaces"]}
            assert listed == {n for (o, n, _) in stored if o == who}
        elif kind == "delete":
            response = await client.request(
                "DELETE", "/store/items", json={"namespace": ns, "key": key}, headers=headers
            )
            assert response.status_code == 204, response.text
            stored.pop((who, tuple(ns), key), None)
        else:  # forget everything under the namespace
            response = await client.delete(
                "/store/namespaces", params={"prefix": ".".join(ns)}, headers=headers
            )
            gone = [s for s in stored if s[0] == who and _under(list(s[1]), ns)]
            assert response.json() == {"deleted": len(gone)}
            for item in gone:
                del stored[item]

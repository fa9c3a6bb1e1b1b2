"""The store routes through `langgraph-sdk`'s own `store` client over real HTTP, and their
answers to bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError

from tests.conftest import make_settings, real_server, running_app, unique

KEYS = {"mode": "api_key", "api_keys": "key-a:alice,key-b:bob"}
MEMORY_ON = {"enabled": True}


@pytest.fixture
async def store_url(vector_database_url: str) -> AsyncIterator[str]:
    async with real_server(make_settings(vector_database_url, auth=KEYS, memory=MEMORY_ON)) as url:
        yield url


async def test_the_sdk_store_client_puts_gets_searches_lists_and_deletes(store_url: str) -> None:
    alice = get_client(url=store_url, api_key="key-a").store
    ns = ["memories", unique("sdk")]
    await alice.put_item(ns, key="soc", value={"content": "the SOC escalation number is +44 20 7946 0000"})
    await alice.put_item(ns, key="office", value={"content": "I cover the London office"})
    await alice.put_item(ns, key="backups", value={"content": "Backups run every night at 2am"})
    await alice.put_item([*ns, "drafts"], key="d1", value={"content": "draft", "kind": "draft"}, index=False)

    got = await alice.get_item(ns, key="office")
    assert got["namespace"] == ns and got["value"] == {"content": "I cover the London office"}

    found = await alice.search_items(ns, query="who do I call to escalate an incident?", limit=1)
    assert [i["key"] for i in found["items"]] == ["soc"]
    assert found["items"][0]["score"] is not None and found["items"][0]["score"] > 0.1

    drafts = await alice.search_items(ns, filter={"kind": "draft"})
    assert [(i["namespace"], i["key"]) for i in drafts["items"]] == [([*ns, "drafts"], "d1")]

    listed = await alice.list_namespaces(prefix=ns)
    assert sorted(listed["namespaces"]) == [ns, [*ns, "drafts"]]
    assert (await alice.list_namespaces(prefix=ns, max_depth=2))["namespaces"] == [ns]

    await alice.delete_item(ns, key="office")
    with pytest.raises(NotFoundError):
        await alice.get_item(ns, key="office")


async def test_another_owner_sees_nothing_of_it_whatever_namespace_it_sends(store_url: str) -> None:
    alice = get_client(url=store_url, api_key="key-a").store
    bob = get_client(url=store_url, api_key="key-b").store
    ns = ["memories", unique("iso")]
    await alice.put_item(ns, key="secret", value={"content": "alice's secret"})

    with pytest.raises(NotFoundError):
        await bob.get_item(ns, key="secret")
    for prefix in ([], ["memories"], ns, ["owners"], ["owners", "alice"], ["*"]):
        assert (await bob.search_items(prefix, query="secret"))["items"] == []
        assert (await bob.list_namespaces(prefix=prefix or None))["namespaces"] == []
    await bob.delete_item(ns, key="secret")
    assert (await alice.get_item(ns, key="secret"))["value"] == {"content": "alice's secret"}


async def test_deleting_a_prefix_removes_all_of_the_callers_items_under_it(store_url: str) -> None:
    alice = get_client(url=store_url, api_key="key-a").store
    bob = get_client(url=store_url, api_key="key-b").store
    root = unique("forget")
    for n in range(3):
        await alice.put_item([root, f"s{n}"], key="k", value={"content": f"fact {n}"})
    await bob.put_item([root], key="k", value={"content": "bob's"})
    async with httpx.AsyncClient(base_url=store_url, headers={"x-api-key": "key-a"}) as http:
        deleted = await http.delete("/store/namespaces", params={"prefix": root})
    assert deleted.status_code == 200 and deleted.json() == {"deleted": 3}
    assert (await alice.search_items([root]))["items"] == []
    assert [i["value"] for i in (await bob.search_items([root]))["items"]] == [{"content": "bob's"}]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"namespace": ["a.b"], "key": "k", "value": {}}, "cannot contain '.'"),
        ({"namespace": [], "key": "k", "value": {}}, "at least one label"),
        ({"namespace": ["x" * 129], "key": "k", "value": {}}, "at most 128"),
        ({"namespace": ["a"] * 11, "key": "k", "value": {}}, "at most 10"),
        ({"namespace": ["a"], "key": "k" * 257, "value": {}}, "at most 256"),
        ({"namespace": ["a"], "key": "k", "value": {"content": "x" * 70_000}}, "MEMORY_MAX_VALUE_BYTES"),
        ({"namespace": ["a"], "key": "k", "value": {}, "ttl": -1}, "minutes"),
    ],
)
async def test_bad_items_are_refused_with_422(
    vector_database_url: str, body: dict[str, object], message: str
) -> None:
    async with running_app(make_settings(vector_database_url, memory=MEMORY_ON)) as (_, client):
        response = await client.put("/store/items", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_input"
    assert message in response.json()["error"]["message"]


async def test_bad_searches_are_refused_with_422(vector_database_url: str) -> None:
    async with running_app(make_settings(vector_database_url, memory=MEMORY_ON)) as (_, client):
        for body in (
            {"namespace_prefix": ["a"], "filter": {"n": {"$regex": "x"}}},
            {"namespace_prefix": ["a"], "query": "q" * 2001},
            {"namespace_prefix": ["a.b"]},
        ):
            response = await client.post("/store/items/search", json=body)
            assert response.status_code == 422, (body, response.text)


async def test_a_query_without_an_embedder_is_refused_but_filters_work(vector_database_url: str) -> None:
    memory = {"enabled": True, "embedding_provider": "none"}
    async with running_app(make_settings(vector_database_url, memory=memory)) as (_, client):
        ns = [unique("plain")]
        assert (
            await client.put("/store/items", json={"namespace": ns, "key": "k", "value": {"n": 1}})
        ).status_code == 204
        refused = await client.post("/store/items/search", json={"namespace_prefix": ns, "query": "n"})
        assert refused.status_code == 422 and "EMBEDDING_PROVIDER" in refused.json()["error"]["message"]
        found = await client.post("/store/items/search", json={"namespace_prefix": ns, "filter": {"n": 1}})
        assert [i["key"] for i in found.json()["items"]] == ["k"]


async def test_store_routes_say_when_long_term_memory_is_off(database_url: str) -> None:
    async with running_app(make_settings(database_url, memory={"enabled": False})) as (_, client):
        response = await client.get("/store/items", params={"namespace": "a", "key": "k"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "long_term_memory_off"

"""Owner isolation, fuzzed: random owners (Databricks Apps forwarded emails) and random thread
ids, the same ids under different owners, random sequences of create / send / get / list /
patch / delete / transcript / history / state. Every answer is compared with a model of who owns
what: no owner ever sees another owner's thread, messages, history, state or title."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_settings, running_app
from tests.faults.consistency import path_id, read_history, read_transcript

KINDS = ("create", "send", "get", "list", "patch", "delete", "messages", "history", "state")
# Writes weigh more, so the reads have something to find (and to leak).
WEIGHTED_KINDS = (*KINDS, "create", "send", "send", "patch")
THREAD_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"

scenarios = st.fixed_dictionaries(
    {
        "owners": st.lists(
            st.from_regex(r"[a-z0-9]{1,10}@[a-z]{1,8}\.(com|org)", fullmatch=True),
            min_size=2,
            max_size=4,
            unique=True,
        ),
        # Few ids, so different owners pick the same ones.
        "thread_ids": st.lists(
            st.one_of(
                st.from_regex(r"[A-Za-z0-9._:-]{1,128}", fullmatch=True),
                st.text(THREAD_ID_ALPHABET, min_size=100, max_size=128),  # long ids too
            ),
            min_size=1,
            max_size=3,
            unique=True,
        ),
        "steps": st.lists(
            st.tuples(st.sampled_from(WEIGHTED_KINDS), st.integers(0, 3), st.integers(0, 2)),
            min_size=8,
            max_size=16,
        ),
    }
)


@dataclass
class ModelThread:
    title: str | None
    contents: list[str] = field(default_factory=list)


@dataclass
class Model:
    """Who owns what, as the service must see it; and every marker each owner's thread holds."""

    threads: dict[tuple[str, str], ModelThread] = field(default_factory=dict)
    markers: dict[str, tuple[str, str]] = field(default_factory=dict)  # marker -> (owner, thread id)

    def of(self, owner: str) -> dict[str, ModelThread]:
        return {tid: thread for (o, tid), thread in self.threads.items() if o == owner}

    def foreign_markers(self, owner: str, thread_id: str | None) -> list[str]:
        """Markers this request must never show: other owners' (and, for a thread's own
        routes, other threads')."""
        return [
            marker
            for marker, (o, tid) in self.markers.items()
            if o != owner or (thread_id is not None and tid != thread_id)
        ]


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(make_settings(database_url, auth={"mode": "databricks"})) as (_, http):
        yield http


async def run_step(
    http: httpx.AsyncClient, model: Model, owner: str, thread_id: str, kind: str, marker: str
) -> httpx.Response:
    headers = {"X-Forwarded-Email": owner}
    url = f"/threads/{path_id(thread_id)}"
    key = (owner, thread_id)
    mine = model.threads.get(key)

    def missing(response: httpx.Response) -> None:
        assert response.status_code == 404, (kind, response.status_code, response.text)
        assert response.json()["error"]["code"] == "thread_not_found"

    if kind == "create":
        response = await http.post(
            "/threads", json={"thread_id": thread_id, "title": marker}, headers=headers
        )
        if mine is None:
            assert response.status_code == 201, response.text
            assert response.json()["title"] == marker and response.json()["message_count"] == 0
            model.threads[key] = ModelThread(title=marker)
            model.markers[marker] = key
        else:
            assert response.status_code == 409 and response.json()["error"]["code"] == "thread_exists"
    elif kind == "send":
        response = await http.post(f"{url}/messages", json={"content": marker}, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["thread_id"] == thread_id and body["messages"][0]["content"] == marker
        if mine is None:
            mine = model.threads[key] = ModelThread(title=None)
        mine.contents.append(marker)
        model.markers[marker] = key
    elif kind == "get":
        response = await http.get(url, headers=headers)
        if mine is None:
            missing(response)
        else:
            assert response.status_code == 200, response.text
            thread = response.json()
            assert (thread["thread_id"], thread["title"]) == (thread_id, mine.title)
            assert thread["turn_count"] == len(mine.contents)
    elif kind == "list":
        response = await http.get("/threads", params={"limit": 200}, headers=headers)
        assert response.status_code == 200, response.text
        listed = {t["thread_id"]: t["title"] for t in response.json()["threads"]}
        assert listed == {tid: t.title for tid, t in model.of(owner).items()}
    elif kind == "patch":
        response = await http.patch(url, json={"title": marker}, headers=headers)
        if mine is None:
            missing(response)
        else:
            assert response.status_code == 200 and response.json()["title"] == marker, response.text
            mine.title = marker
            model.markers[marker] = key
    elif kind == "delete":
        response = await http.delete(url, headers=headers)
        if mine is None:
            missing(response)
        else:
            assert response.status_code == 204, response.text
            del model.threads[key]
            model.markers = {m: k for m, k in model.markers.items() if k != key}
    elif kind in ("messages", "history"):
        response = await http.get(f"{url}/{kind}", headers=headers)
        if mine is None:
            missing(response)
        elif kind == "messages":
            transcript = await read_transcript(http, thread_id, headers)
            assert [m["content"] for m in transcript if m["role"] == "user"] == mine.contents
        else:
            assert len(await read_history(http, thread_id, headers)) == len(mine.contents)
    else:  # state
        response = await http.get(f"{url}/state", headers=headers)
        if mine is None or not mine.contents:  # no thread, or no checkpoint yet
            assert response.status_code == 404, response.text
            expected = "thread_not_found" if mine is None else "checkpoint_not_found"
            assert response.json()["error"]["code"] == expected
        else:
            assert response.status_code == 200, response.text
            messages = response.json()["messages"]
            assert [m["content"] for m in messages if m["role"] == "user"] == mine.contents
    return response


@settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    # One app for the whole test, on purpose; each example gets owners of its own.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios)
async def test_owners_never_see_each_others_threads(
    client: httpx.AsyncClient, scenario: dict[str, Any]
) -> None:
    namespace = uuid.uuid4().hex[:10]  # examples share the database, never an owner
    owners = [email.replace("@", f"+{namespace}@") for email in scenario["owners"]]
    thread_ids: list[str] = scenario["thread_ids"]
    model = Model()
    for number, (kind, owner_index, thread_index) in enumerate(scenario["steps"]):
        owner = owners[owner_index % len(owners)]
        thread_id = thread_ids[thread_index % len(thread_ids)]
        marker = f"<{kind} {namespace}-{number}>"
        response = await run_step(client, model, owner, thread_id, kind, marker)
        scoped_to = None if kind == "list" else thread_id
        for foreign in model.foreign_markers(owner, scoped_to):
            assert foreign not in response.text, f"{owner} saw {foreign!r} of {model.markers[foreign]}"
    # At the end every owner sees exactly their own threads, with their own transcripts.
    for owner in owners:
        await run_step(client, model, owner, thread_ids[0], "list", "")
        for thread_id in model.of(owner):
            await run_step(client, model, owner, thread_id, "messages", "")
            await run_step(client, model, owner, thread_id, "state", "")

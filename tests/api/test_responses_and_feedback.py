"""`POST /responses` (the alias of `/invocations` that MLflow's agent server and OpenAI's
Responses client use), MLflow trace ids on request, and feedback on a turn: stored, listed,
replaced, owner-scoped, counted in `/admin/stats` and gone with its thread."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pytest

from tests.conftest import make_settings, running_app, unique

Q1 = "Who committed the latest malware threat?"


def _ask(thread: str, **fields: Any) -> dict[str, Any]:
    return {"input": [{"role": "user", "content": Q1}], "custom_inputs": {"thread_id": thread}, **fields}


def _data_frames(text: str) -> list[str]:
    return [line[5:].strip() for line in text.replace("\r\n", "\n").split("\n") if line.startswith("data:")]


@pytest.fixture
def tracking(tmp_path: Path) -> Iterator[None]:
    """MLflow logging to a folder of this test, whatever the process was set up with."""
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)


async def test_responses_is_the_same_turn_as_invocations_on_the_same_thread(
    client: httpx.AsyncClient,
) -> None:
    thread = unique("resp")
    first = await client.post("/responses", json=_ask(thread))
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["custom_outputs"]["thread_id"] == thread and "metadata" not in body
    second = await client.post(
        "/invocations",
        json={
            "input": [{"role": "user", "content": "What was their IP address?"}],
            "custom_inputs": {"thread_id": thread},
        },
    )
    assert "IP address" in json.dumps(second.json()["output"])
    thread_view = (await client.get(f"/threads/{thread}")).json()
    assert thread_view["turn_count"] == 2
    bad = await client.post("/responses", json={"input": []})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_input"


async def test_a_trace_id_is_returned_when_asked_and_names_a_real_trace(
    client: httpx.AsyncClient, tracking: None
) -> None:
    by_header = await client.post(
        "/responses", json=_ask(unique("tr")), headers={"x-mlflow-return-trace-id": "true"}
    )
    by_option = await client.post(
        "/invocations", json=_ask(unique("tr"), databricks_options={"return_trace": True})
    )
    ids = []
    for response in (by_header, by_option):
        assert response.status_code == 200, response.text
        trace_id = response.json()["metadata"]["trace_id"]
        trace = mlflow.get_trace(trace_id, flush=True)
        assert trace is not None and trace.info.state.value == "OK"
        [root] = [s for s in trace.data.spans if s.parent_id is None]
        assert root.outputs["custom_outputs"] == response.json()["custom_outputs"]
        ids.append(trace_id)
    assert ids[0] != ids[1]

    streamed = await client.post(
        "/responses", json=_ask(unique("tr"), stream=True), headers={"x-mlflow-return-trace-id": "TRUE"}
    )
    frames = _data_frames(streamed.text)
    assert frames[-1] == "[DONE]"
    last = json.loads(frames[-2])
    assert set(last) == {"trace_id"}
    completed = json.loads(frames[-3])
    assert completed["type"] == "response.completed"
    trace = mlflow.get_trace(last["trace_id"], flush=True)
    assert trace is not None
    [root] = [s for s in trace.data.spans if s.parent_id is None]
    assert root.outputs["custom_outputs"] == completed["custom_outputs"]

    # Not asked (or asked with anything but true): no trace id, and no trace.
    plain = await client.post(
        "/responses", json=_ask(unique("tr")), headers={"x-mlflow-return-trace-id": "no"}
    )
    assert "metadata" not in plain.json()


async def _turn(client: httpx.AsyncClient, thread: str) -> str:
    response = await client.post(f"/threads/{thread}/messages", json={"content": Q1})
    assert response.status_code == 200, response.text
    run_id: str = response.json()["run_id"]
    return run_id


async def test_feedback_on_a_turn_is_stored_replaced_listed_and_counted(client: httpx.AsyncClient) -> None:
    before = (await client.get("/admin/stats")).json()["totals"]
    thread = unique("fb")
    run_id = await _turn(client, thread)

    up = await client.put(f"/threads/{thread}/feedback/{run_id}", json={"rating": "up"})
    assert up.status_code == 200, up.text
    assert up.json()["rating"] == "up" and up.json()["comment"] is None
    down = await client.put(
        f"/threads/{thread}/feedback/{run_id}", json={"rating": "down", "comment": "wrong user"}
    )
    assert down.json()["rating"] == "down" and down.json()["comment"] == "wrong user"
    listed = (await client.get(f"/threads/{thread}/feedback")).json()["feedback"]
    assert [(f["run_id"], f["rating"]) for f in listed] == [(run_id, "down")]

    other = unique("fb")
    await client.put(f"/threads/{other}/feedback/{await _turn(client, other)}", json={"rating": "up"})
    after = (await client.get("/admin/stats")).json()["totals"]
    assert after["feedback_down"] - before["feedback_down"] == 1
    assert after["feedback_up"] - before["feedback_up"] == 1

    # Deleting the thread deletes its feedback.
    assert (await client.delete(f"/threads/{thread}")).status_code == 204
    final = (await client.get("/admin/stats")).json()["totals"]
    assert final["feedback_down"] == before["feedback_down"]


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/threads/{thread}/feedback/{unknown}", {"rating": "up"}, 404, "turn_not_found"),
        ("/threads/nope-{thread}/feedback/{run}", {"rating": "up"}, 404, "thread_not_found"),
        ("/threads/{thread}/feedback/{run}", {"rating": "meh"}, 422, "invalid_input"),
        ("/threads/{thread}/feedback/{run}", {"rating": "up", "extra": 1}, 422, "invalid_input"),
        ("/threads/{thread}/feedback/not-a-uuid", {"rating": "up"}, 422, "invalid_input"),
    ],
)
async def test_bad_feedback_is_a_clear_4xx(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], status: int, code: str
) -> None:
    thread = unique("fb")
    run = await _turn(client, thread)
    url = path.format(thread=thread, run=run, unknown=uuid.uuid4())
    response = await client.put(url, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


async def test_another_owner_cannot_rate_or_read_a_thread_s_turns(database_url: str) -> None:
    settings = make_settings(database_url, auth={"mode": "api_key", "api_keys": "ka:alice,kb:bob"})
    async with running_app(settings) as (_, client):
        alice, bob = {"X-API-Key": "ka"}, {"X-API-Key": "kb"}
        thread = unique("fb")
        response = await client.post(f"/threads/{thread}/messages", json={"content": Q1}, headers=alice)
        run_id = response.json()["run_id"]
        denied = await client.put(
            f"/threads/{thread}/feedback/{run_id}", json={"rating": "down"}, headers=bob
        )
        assert denied.status_code == 404 and denied.json()["error"]["code"] == "thread_not_found"
        assert (await client.get(f"/threads/{thread}/feedback", headers=bob)).status_code == 404
        assert (await client.get(f"/threads/{thread}/feedback", headers=alice)).json() == {"feedback": []}


async def test_a_trace_id_without_mlflow_installed_is_a_501_and_runs_nothing(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in an install without the `serving` or `databricks` extra: `import mlflow` fails.
    monkeypatch.setitem(sys.modules, "mlflow", None)
    thread = unique("tr")
    response = await client.post(
        "/responses", json=_ask(thread), headers={"x-mlflow-return-trace-id": "true"}
    )
    assert response.status_code == 501, response.text
    assert response.json()["error"]["code"] == "tracing_unavailable"
    assert "serving" in response.json()["error"]["message"]
    assert (await client.get(f"/threads/{thread}")).status_code == 404

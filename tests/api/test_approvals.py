"""Human in the loop on the native API: TOOL_APPROVAL pauses a turn before a listed tool runs,
and a resume approves, edits, rejects or answers in the tool's place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest

from app.api.schemas import ThreadOut, TurnOut
from tests.api.test_run_strategies import until_streaming
from tests.conftest import latest_malware, make_settings, real_server, running_app, scalar, unique
from tests.sse import parse_sse

QUESTION = "Who committed the latest malware threat?"
APPROVAL = {"approval": ["get_user_info"]}


@pytest.fixture
async def approving(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(make_settings(database_url, tools=APPROVAL)) as (_, client):
        yield client


async def ask(client: httpx.AsyncClient, thread_id: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"/threads/{thread_id}/messages", json=body)
    assert response.status_code == 200, response.text
    TurnOut.model_validate(response.json())
    answer: dict[str, Any] = response.json()
    return answer


async def paused(client: httpx.AsyncClient, thread_id: str) -> dict[str, Any]:
    """Ask the demo question; the turn pauses before get_user_info. Returns its interrupt."""
    answer = await ask(client, thread_id, {"content": QUESTION})
    assert [m["role"] for m in answer["messages"]] == ["user", "assistant", "tool", "assistant"]
    request = answer["messages"][-1]["tool_calls"][0]
    assert request["name"] == "get_user_info"
    (interrupt,) = answer["interrupts"]
    assert isinstance(interrupt, dict)
    (action,) = interrupt["value"]["action_requests"]
    assert action["name"] == "get_user_info" and action["args"] == request["args"]
    assert action["id"] == request["id"] and "needs approval" in action["description"]
    assert interrupt["value"]["review_configs"] == [
        {"action_name": "get_user_info", "allowed_decisions": ["approve", "edit", "reject", "respond"]}
    ]
    assert interrupt["node"] == "approve"
    thread = ThreadOut.model_validate((await client.get(f"/threads/{thread_id}")).json())
    assert thread.status == "interrupted" and [i.id for i in thread.interrupts] == [interrupt["id"]]
    return interrupt


async def test_an_approved_call_runs_and_the_turn_completes(approving: httpx.AsyncClient) -> None:
    thread_id = unique()
    interrupt = await paused(approving, thread_id)
    answer = await ask(
        approving, thread_id, {"resume": {"decision": "approve"}, "interrupt_id": interrupt["id"]}
    )
    assert answer["interrupts"] == []
    assert [m["role"] for m in answer["messages"]] == ["tool", "assistant"]
    assert "committed by" in answer["messages"][-1]["content"]
    thread = (await approving.get(f"/threads/{thread_id}")).json()
    assert thread["status"] == "idle" and thread["interrupts"] == [] and thread["turn_count"] == 2
    transcript = (await approving.get(f"/threads/{thread_id}/messages")).json()["messages"]
    assert [m["role"] for m in transcript] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    # A follow-up is an ordinary turn with the whole conversation behind it.
    follow_up = await ask(approving, thread_id, {"content": "What was their IP address?"})
    assert "IP address is" in follow_up["messages"][-1]["content"]


async def test_a_rejected_call_does_not_run_and_the_model_answers_without_it(
    approving: httpx.AsyncClient,
) -> None:
    thread_id = unique()
    await paused(approving, thread_id)
    answer = await ask(
        approving, thread_id, {"resume": {"decision": "reject", "reason": "personal data, not needed"}}
    )
    tool, final = answer["messages"]
    assert (
        tool["role"] == "tool" and "did not approve" in tool["content"] and "personal data" in tool["content"]
    )
    assert "could not tell who is behind it" in final["content"] and "not approve" in final["content"]
    assert "committed by" not in final["content"]


async def test_an_edited_call_runs_with_the_reviewers_arguments(
    approving: httpx.AsyncClient, database_url: str
) -> None:
    thread_id = unique()
    await paused(approving, thread_id)
    answer = await ask(
        approving, thread_id, {"resume": {"decision": "edit", "args": {"source_ip": "10.0.0.1"}}}
    )
    tool = answer["messages"][0]
    assert tool["content"].startswith("Note: a reviewer changed this call's arguments")
    assert '"10.0.0.1"' in tool["content"]
    # The model's own call is kept as it asked (the transcript says what it wanted).
    transcript = (await approving.get(f"/threads/{thread_id}/messages")).json()["messages"]
    assert transcript[3]["tool_calls"][0]["args"] == {"source_ip": latest_malware(database_url)[0]}


async def test_a_respond_decision_answers_in_the_tools_place(approving: httpx.AsyncClient) -> None:
    thread_id = unique()
    await paused(approving, thread_id)
    answer = await ask(
        approving, thread_id, {"resume": {"decision": "respond", "text": "It is the red team."}}
    )
    assert answer["messages"][0]["content"] == "It is the red team."
    assert "red team" in answer["messages"][-1]["content"]


async def test_the_middleware_and_inbox_shapes_resume_too(approving: httpx.AsyncClient) -> None:
    for resume in (
        {"decisions": [{"type": "reject", "message": "no"}]},
        [{"type": "ignore", "args": None}],
    ):
        thread_id = unique()
        await paused(approving, thread_id)
        answer = await ask(approving, thread_id, {"resume": resume})
        assert "did not approve" in answer["messages"][0]["content"]
    thread_id = unique()
    await paused(approving, thread_id)
    answer = await ask(
        approving,
        thread_id,
        {
            "resume": [
                {"type": "edit", "args": {"action": "get_user_info", "args": {"source_ip": "10.9.9.9"}}}
            ]
        },
    )
    assert '"10.9.9.9"' in answer["messages"][0]["content"]


async def test_a_message_on_a_waiting_thread_is_refused_unless_it_abandons_the_call(
    approving: httpx.AsyncClient, database_url: str
) -> None:
    thread_id = unique()
    await paused(approving, thread_id)
    refused = await approving.post(f"/threads/{thread_id}/messages", json={"content": "Never mind."})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "thread_interrupted"
    # Refused before it started: no run of it is left behind, and the thread is free.
    runs = (await approving.get(f"/threads/{thread_id}/runs")).json()
    assert len(runs) == 1
    answer = await ask(
        approving, thread_id, {"content": "What was their IP address?", "abandon_interrupt": True}
    )
    assert answer["interrupts"] == []
    thread = (await approving.get(f"/threads/{thread_id}")).json()
    assert thread["status"] == "idle"
    # Nothing is left to resume now.
    again = await approving.post(f"/threads/{thread_id}/messages", json={"resume": {"decision": "approve"}})
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_interrupted"


async def test_a_second_resume_of_the_same_interrupt_is_409(approving: httpx.AsyncClient) -> None:
    thread_id = unique()
    interrupt = await paused(approving, thread_id)
    body = {"resume": {"decision": "approve"}, "interrupt_id": interrupt["id"]}
    await ask(approving, thread_id, body)
    second = await approving.post(f"/threads/{thread_id}/messages", json=body)
    assert second.status_code == 409 and second.json()["error"]["code"] == "not_interrupted"


async def test_a_cancelled_resume_leaves_the_call_waiting_and_a_second_resume_runs(
    database_url: str,
) -> None:
    """Stop during the resumed run: nothing of it is saved, the thread waits on the same
    interrupt (as before the decision), and the call can be decided again, otherwise."""
    settings = make_settings(database_url, tools=APPROVAL, model={"offline_token_delay_ms": 60})
    async with (
        real_server(settings) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        thread_id = unique()
        interrupt = await paused(client, thread_id)
        before = (await client.get(f"/threads/{thread_id}")).json()
        body = {"resume": {"decision": "approve"}, "interrupt_id": interrupt["id"], "background": True}
        started = await client.post(f"/threads/{thread_id}/messages", json=body)
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        await until_streaming(client, thread_id, run_id)
        cancelled = await client.post(f"/threads/{thread_id}/runs/{run_id}/cancel", params={"wait": "true"})
        assert cancelled.status_code == 200 and cancelled.json()["error"]["code"] == "cancelled"
        thread = (await client.get(f"/threads/{thread_id}")).json()
        assert thread["status"] == "interrupted"
        assert [i["id"] for i in thread["interrupts"]] == [interrupt["id"]]
        assert thread["turn_count"] == before["turn_count"] == 1
        transcript = (await client.get(f"/threads/{thread_id}/messages")).json()["messages"]
        assert [m["role"] for m in transcript] == ["user", "assistant", "tool", "assistant"]
        # Decided again, otherwise this time: the cancelled approval left nothing behind.
        again = await ask(
            client, thread_id, {"resume": {"decision": "reject"}, "interrupt_id": interrupt["id"]}
        )
        tool, final = again["messages"]
        assert "did not approve" in tool["content"] and "committed by" not in final["content"]
        assert again["interrupts"] == []
        assert (await client.get(f"/threads/{thread_id}")).json()["status"] == "idle"


async def test_a_resume_is_idempotent_with_its_key(approving: httpx.AsyncClient) -> None:
    thread_id = unique()
    await paused(approving, thread_id)
    headers = {"Idempotency-Key": unique("k")}
    body = {"resume": {"decision": "approve"}}
    first = await approving.post(f"/threads/{thread_id}/messages", json=body, headers=headers)
    retry = await approving.post(f"/threads/{thread_id}/messages", json=body, headers=headers)
    assert first.status_code == retry.status_code == 200
    assert retry.headers["idempotent-replayed"] == "true" and retry.json() == first.json()
    other = await approving.post(
        f"/threads/{thread_id}/messages", json={"resume": {"decision": "reject"}}, headers=headers
    )
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"resume": {"decision": "maybe"}}, "`decision` must be one of"),
        ({"resume": {"decision": "edit"}}, "`args` of an edit"),
        ({"resume": {"decision": "respond"}}, "needs `text`"),
        ({"resume": {"decisions": [{"type": "approve"}, {"type": "approve"}]}}, "1 calls are pending"),
        ({"resume": {"decision": "approve"}, "content": "hi"}, "without messages"),
        ({"content": "hi", "interrupt_id": "x"}, "goes with `resume`"),
    ],
)
async def test_a_malformed_resume_is_422_and_leaves_the_thread_waiting(
    approving: httpx.AsyncClient, body: dict[str, Any], fragment: str
) -> None:
    thread_id = unique()
    await paused(approving, thread_id)
    response = await approving.post(f"/threads/{thread_id}/messages", json=body)
    assert response.status_code == 422 and fragment in response.json()["error"]["message"], response.text
    assert (await approving.get(f"/threads/{thread_id}")).json()["status"] == "interrupted"


async def test_the_stream_says_the_turn_paused(approving: httpx.AsyncClient) -> None:
    thread_id = unique()
    response = await approving.post(f"/threads/{thread_id}/messages?stream=true", json={"content": QUESTION})
    frames = parse_sse(response.text)
    names = [event for event, _, _ in frames]
    assert names[-2:] == ["interrupt", "done"]
    interrupt = frames[-2][2]["interrupts"][0]
    assert interrupt["value"]["action_requests"][0]["name"] == "get_user_info"
    resumed = await approving.post(
        f"/threads/{thread_id}/messages?stream=true", json={"resume": {"decision": "approve"}}
    )
    after = [event for event, _, _ in parse_sse(resumed.text)]
    assert after[0] == "run_start" and after[-1] == "done" and "interrupt" not in after
    assert "tool_result" in after


async def test_only_the_owner_resumes_and_metrics_count_decisions(database_url: str) -> None:
    settings = make_settings(
        database_url, tools=APPROVAL, auth={"mode": "databricks", "admin_owners": ["alice@example.com"]}
    )
    async with running_app(settings) as (_, client):
        thread_id = unique()
        alice = {"X-Forwarded-Email": "alice@example.com"}
        first = await client.post(f"/threads/{thread_id}/messages", json={"content": QUESTION}, headers=alice)
        assert first.json()["interrupts"]
        mallory = await client.post(
            f"/threads/{thread_id}/messages",
            json={"resume": {"decision": "approve"}},
            headers={"X-Forwarded-Email": "mallory@example.com"},
        )
        # Another owner's thread does not exist for mallory (and her resume creates none).
        assert mallory.status_code == 404 and mallory.json()["error"]["code"] == "thread_not_found"
        resumed = await client.post(
            f"/threads/{thread_id}/messages", json={"resume": {"decision": "reject"}}, headers=alice
        )
        assert resumed.status_code == 200
        metrics = (await client.get("/metrics", headers=alice)).text
        assert "lma_interrupts_total 1.0" in metrics
        assert 'lma_approval_decisions_total{decision="reject"} 1.0' in metrics
        assert "lma_interrupt_decision_seconds_count 1.0" in metrics


def test_an_unknown_tool_in_tool_approval_stops_the_start(database_url: str) -> None:
    import asyncio

    async def start() -> None:
        async with running_app(make_settings(database_url, tools={"approval": ["get_usr_info"]})):
            pass

    with pytest.raises(ValueError, match=r"get_usr_info.*get_user_info"):
        asyncio.run(start())


def _checkpoint_writes(database_url: str, thread_id: str) -> int:
    with psycopg.connect(database_url) as conn:
        return int(
            scalar(
                conn,
                "SELECT count(*) FROM checkpoint_writes w"
                " JOIN lma_threads t ON w.thread_id = t.thread_key::text"
                " WHERE t.thread_id = %s AND w.channel = '__interrupt__'",
                (thread_id,),
            )
        )


async def test_the_pause_is_a_checkpoint_with_its_interrupt_saved(
    approving: httpx.AsyncClient, database_url: str
) -> None:
    thread_id = unique()
    await paused(approving, thread_id)
    assert _checkpoint_writes(database_url, thread_id) == 1


async def test_the_responses_api_says_the_turn_paused(approving: httpx.AsyncClient) -> None:
    thread_id = unique()
    response = await approving.post(
        "/invocations",
        json={"input": [{"role": "user", "content": QUESTION}], "custom_inputs": {"thread_id": thread_id}},
    )
    assert response.status_code == 200, response.text
    (interrupt,) = response.json()["custom_outputs"]["interrupts"]
    assert interrupt["value"]["action_requests"][0]["name"] == "get_user_info"
    thread = (await approving.get(f"/threads/{thread_id}")).json()
    assert thread["status"] == "interrupted" and thread["interrupts"][0]["id"] == interrupt["id"]

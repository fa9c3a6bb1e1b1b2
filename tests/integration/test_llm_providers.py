"""Real chat clients (langchain-openai's ChatOpenAI) against an OpenAI-compatible server on
127.0.0.1 (tests/fakes.py `FakeChatServer`) that checks every request it gets and scripts its
answers: the service's HTTP API, real PostgreSQL, the real client code and wire protocol."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from app.agent.graph import build_graph
from app.agent.model_factory import build_model
from app.agent.tools import USER_TOOL, build_local_tools, parse_fields
from app.agent.window import INTERRUPTED_TOOL_RESULT
from app.lifespan import open_resources
from app.memory.pool import open_database
from app.services.run_model import TurnRequest
from app.settings import ModelSettings
from tests.conftest import make_settings, running_app, unique
from tests.fakes import ChatRequest, FakeChatServer, Reply, Script, broken_threat_tool, hanging_threat_tool
from tests.sse import parse_sse

API_KEY = "sk-test-123"
MODEL = "gpt-test"
QUESTION = "Who committed the latest malware threat?"
FOLLOW_UP = "What was their IP address?"


def openai_model(server: FakeChatServer, **overrides: Any) -> dict[str, Any]:
    return {
        "provider": "openai",
        "base_url": f"{server.base_url}/v1",
        "api_key": API_KEY,
        "name": MODEL,
        **overrides,
    }


def last_result(request: ChatRequest) -> dict[str, str]:
    return parse_fields(request.tool_results()[-1])


def routine(threat_type: str) -> list[Script]:
    """What a model following the system prompt's routine does, step by step."""
    return [
        Reply(tool_calls=[("get_cyber_threat_info", {"threat_type": threat_type})]),
        lambda r: Reply(tool_calls=[("get_user_info", {"source_ip": last_result(r)["source_ip"]})]),
        lambda r: Reply(
            text=f"The latest {threat_type} threat came from {last_result(r)['user_name']}"
            f" ({last_result(r)['email']}, {last_result(r)['department']})."
        ),
    ]


def answer_from_memory(request: ChatRequest) -> Reply:
    """The follow-up, answered only from tool results of earlier turns sent with the request."""
    users = [parse_fields(content) for content in request.tool_results()]
    ip = next(u["ip_address"] for u in reversed(users) if "ip_address" in u)
    return Reply(text=f"Their IP address was {ip}.")


async def test_two_turn_tool_dialogue_through_the_api(database_url: str) -> None:
    async with FakeChatServer([*routine("Malware"), answer_from_memory], api_key=API_KEY) as server:
        settings = make_settings(database_url, model=openai_model(server, temperature=0.2, max_tokens=300))
        async with running_app(settings) as (_, client):
            thread_id = unique()
            first = await client.post(f"/threads/{thread_id}/messages", json={"content": QUESTION})
            second = await client.post(f"/threads/{thread_id}/messages", json={"content": FOLLOW_UP})
            transcript = (await client.get(f"/threads/{thread_id}/messages")).json()["messages"]

    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    turn = first.json()["messages"]
    assert [m["role"] for m in turn] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert [m["tool_calls"][0]["name"] for m in turn if m.get("tool_calls")] == [
        "get_cyber_threat_info",
        "get_user_info",
    ]
    assert turn[1]["tool_calls"][0]["args"] == {"threat_type": "Malware"}
    threat = parse_fields(turn[2]["content"])
    assert threat["threat_type"] == "Malware"  # the local tool really ran against PostgreSQL
    user = parse_fields(turn[4]["content"])
    assert user["ip_address"] == threat["source_ip"]
    assert turn[-1]["content"].startswith("The latest Malware threat came from ")
    assert second.json()["messages"][-1]["content"] == f"Their IP address was {user['ip_address']}."
    assert [m["id"] for m in transcript] == [m["id"] for m in turn + second.json()["messages"]]

    assert server.violations == []
    assert len(server.requests) == 4
    for request in server.requests:
        assert request.path == "/v1/chat/completions"
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        assert request.body["model"] == MODEL
        assert request.body["temperature"] == 0.2
        assert request.body["max_completion_tokens"] == 300
        assert not request.body.get("stream")  # a JSON turn is not streamed
        assert sorted(request.tool_names) == ["get_cyber_threat_info", "get_user_info"]
    schema = {t["function"]["name"]: t["function"] for t in server.requests[0].body["tools"]}
    assert schema["get_cyber_threat_info"]["parameters"]["required"] == ["threat_type"]
    assert schema["get_user_info"]["parameters"]["properties"]["source_ip"]["type"] == "string"
    system = server.requests[0].messages[0]
    assert system["role"] == "system" and "{tools}" not in system["content"]
    assert "- get_cyber_threat_info: Return the latest cyber threat" in system["content"]
    # The follow-up's request carries the whole first turn, tool calls and results included.
    follow = server.requests[3]
    assert follow.roles == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant", "user"]
    assert follow.messages[1]["content"] == QUESTION and follow.messages[-1]["content"] == FOLLOW_UP
    assert follow.messages[6]["content"] == turn[-1]["content"]
    assert [c["id"] for c in follow.messages[2]["tool_calls"]] == [turn[2]["tool_call_id"]]


async def test_streamed_turn_sends_tokens_and_tool_calls_as_sse(database_url: str) -> None:
    async with FakeChatServer(routine("Phishing"), api_key=API_KEY) as server:
        settings = make_settings(database_url, model=openai_model(server))
        async with (
            running_app(settings) as (_, client),
            client.stream(
                "POST",
                f"/threads/{unique()}/messages?stream=true",
                json={"content": "Who is behind the latest phishing threat?"},
            ) as response,
        ):
            assert response.status_code == 200
            text = "".join([chunk async for chunk in response.aiter_text()])
    assert server.violations == []
    assert all(request.body["stream"] is True for request in server.requests)
    events = parse_sse(text)
    names = [name for name, _, _ in events]
    assert names[0] == "run_start" and names[-1] == "done" and "error" not in names
    calls = [data for name, _, data in events if name == "tool_call"]
    assert [(c["name"], list(c["args"])) for c in calls] == [
        ("get_cyber_threat_info", ["threat_type"]),
        ("get_user_info", ["source_ip"]),
    ]
    results = [data for name, _, data in events if name == "tool_result"]
    assert [r["tool_call_id"] for r in results] == [c["tool_call_id"] for c in calls]
    tokens = [data["delta"] for name, _, data in events if name == "token"]
    final = [data for name, _, data in events if name == "message"][-1]
    assert len(tokens) > 3  # word by word, as the server streamed it
    assert "".join(tokens) == final["content"]
    assert final["content"].startswith("The latest Phishing threat came from ")
    assert names.index("tool_call") < names.index("tool_result") < names.index("token")


async def test_failing_and_hanging_tools_become_results_the_model_reads(database_url: str) -> None:
    def sees_failure(request: ChatRequest) -> Reply:
        return Reply(text=f"The lookup failed: {request.tool_results()[-1]}")

    script: list[Script] = []
    for _ in range(2):
        script += [Reply(tool_calls=[("get_cyber_threat_info", {"threat_type": "DDoS"})]), sees_failure]
    async with FakeChatServer(script, api_key=API_KEY) as server:
        settings = make_settings(database_url, model=openai_model(server), tools={"timeout_seconds": 0.2})
        async with open_database(settings.database) as database:
            user_tool = [t for t in build_local_tools(database.pool) if t.name == USER_TOOL]
        answers = []
        for threat_tool in (broken_threat_tool(), hanging_threat_tool()):
            async with open_resources(settings, tools=[threat_tool, *user_tool]) as resources:
                handle = await resources.runs.submit(
                    TurnRequest("tester", unique(), [("user", "Latest DDoS threat?")], stream=False)
                )
                answers.append((await handle.result()).messages[-1].content)
    assert server.violations == []
    assert answers == [
        "The lookup failed: get_cyber_threat_info failed: the tool raised ConnectionError",
        "The lookup failed: get_cyber_threat_info failed: it did not return within 0.2 s",
    ]


async def test_model_timeout_is_a_clear_504_and_the_thread_stays_consistent(database_url: str) -> None:
    script: list[Script] = [Reply(hold=True), *routine("Ransomware")]
    async with FakeChatServer(script, api_key=API_KEY) as server:
        model = openai_model(server, timeout_seconds=0.5, max_retries=0)
        async with running_app(make_settings(database_url, model=model)) as (_, client):
            thread_id = unique()
            failed = await client.post(f"/threads/{thread_id}/messages", json={"content": "Ransomware?"})
            server.release.set()
            worked = await client.post(f"/threads/{thread_id}/messages", json={"content": "Ransomware now?"})
            transcript = (await client.get(f"/threads/{thread_id}/messages")).json()["messages"]
            thread = (await client.get(f"/threads/{thread_id}")).json()
    assert failed.status_code == 504
    assert failed.json() == {
        "error": {
            "code": "turn_timeout",
            "message": "The model did not answer within MODEL_TIMEOUT_SECONDS (after MODEL_MAX_RETRIES"
            " retries); nothing was saved.",
        }
    }
    assert worked.status_code == 200, worked.text
    # No half turn: the transcript is exactly the turn that completed, and it started clean.
    assert [m["id"] for m in transcript] == [m["id"] for m in worked.json()["messages"]]
    assert thread["status"] == "idle"
    assert server.requests[1].roles == ["system", "user"]
    assert server.violations == []


async def test_model_error_is_a_502_without_the_providers_text(database_url: str) -> None:
    script: list[Script] = [Reply(status=500, error="backend exploded: secret=hunter2")]
    async with FakeChatServer(script, api_key=API_KEY) as server:
        model = openai_model(server, max_retries=0)
        async with running_app(make_settings(database_url, model=model)) as (_, client):
            response = await client.post(f"/threads/{unique()}/messages", json={"content": "hi"})
    assert response.status_code == 502
    assert response.json()["error"] == {
        "code": "turn_failed",
        "message": "The model endpoint failed (HTTP 500); nothing was saved.",
    }
    assert "hunter2" not in response.text


async def test_long_thread_is_windowed_for_the_model_but_kept_whole(database_url: str) -> None:
    turns = 6
    script: list[Script] = []
    for i in range(turns):
        script += [
            Reply(tool_calls=[("get_user_info", {"source_ip": f"10.0.0.{i}"})]),
            Reply(text=f"answer {i}"),
        ]
    async with FakeChatServer(script, api_key=API_KEY) as server:
        model = openai_model(server, max_history_messages=8)
        async with running_app(make_settings(database_url, model=model)) as (_, client):
            thread_id = unique()
            for i in range(turns):
                response = await client.post(
                    f"/threads/{thread_id}/messages", json={"content": f"question {i}"}
                )
                assert response.status_code == 200, response.text
            transcript = (await client.get(f"/threads/{thread_id}/messages?limit=100")).json()["messages"]

    assert server.violations == []  # every request valid: no orphaned or unanswered tool call
    assert len(transcript) == turns * 4  # the stored thread is whole
    for request in server.requests:
        shown = request.messages[1:]
        assert request.roles[0] == "system" and len(shown) <= 8
        assert shown[0]["role"] == "user"
    last = server.requests[-1]
    shown_text = " ".join(str(m.get("content")) for m in last.messages)
    assert f"question {turns - 1}" in shown_text and f"answer {turns - 2}" in shown_text
    assert "question 0" not in shown_text  # the oldest turns fell out of the window


async def test_turn_cut_between_tool_call_and_result_is_repaired_for_the_model() -> None:
    answer = Reply(text="That earlier lookup was interrupted; let me know if I should retry.")
    async with FakeChatServer([answer], api_key=API_KEY) as server:
        model = build_model(ModelSettings(**openai_model(server)))
        graph = build_graph(model=model, tools=[], system_prompt="You help.", checkpointer=InMemorySaver())
        cut_off = AIMessage(
            content="",
            tool_calls=[{"id": "call_lost", "name": "get_user_info", "args": {"source_ip": "1.1.1.1"}}],
        )
        state = await graph.ainvoke(
            {"messages": [HumanMessage("who is at 1.1.1.1?"), cut_off, HumanMessage("hello?")]},
            {"configurable": {"thread_id": unique()}},
        )
    assert server.violations == []
    assert server.requests[0].roles == ["system", "user", "assistant", "tool", "user"]
    assert server.requests[0].messages[2]["tool_calls"][0]["id"] == "call_lost"
    assert server.requests[0].messages[3] == {
        "role": "tool",
        "content": INTERRUPTED_TOOL_RESULT,
        "tool_call_id": "call_lost",
    }
    # The state itself is not rewritten: the repair exists only in what the model was sent.
    assert [m.type for m in state["messages"]] == ["human", "ai", "human", "ai"]
    assert state["messages"][-1].content == answer.text


async def test_unreachable_or_refusing_endpoint_fails_at_start_up(database_url: str) -> None:
    async with FakeChatServer([], api_key="sk-right") as server:
        settings = make_settings(database_url, model=openai_model(server, api_key="sk-wrong"))
        try:
            async with running_app(settings):
                raise AssertionError("the service started with a refused key")
        except ValueError as exc:
            message = str(exc)
    assert "OPENAI_API_KEY" in message and "sk-wrong" not in message
    assert server.requests == []  # refused at start-up, before any turn

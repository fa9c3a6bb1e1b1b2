"""A model that loops over tool calls ends in an answer, not RECURSION_LIMIT; a database outage
inside a tool ends the turn as 503 (retry), not as a failed turn (502)."""

from __future__ import annotations

from app.errors import DatabaseUnavailable, as_service_error
from app.lifespan import open_resources
from app.services.run_model import TurnRequest, TurnResult
from tests.conftest import free_port, make_settings, unique
from tests.fakes import LoopingModel, unreachable_user_tool

OWNER = "tester"


async def _turn(settings_url: str, model: LoopingModel, **runs: int) -> TurnResult:
    settings = make_settings(settings_url, runs=runs)
    async with open_resources(settings, model=model) as resources:
        request = TurnRequest(OWNER, unique(), [("user", "Who is at 203.0.113.1?")])
        return await (await resources.runs.submit(request)).result()


async def test_the_same_call_repeated_is_run_once_then_the_turn_answers(database_url: str) -> None:
    model = LoopingModel()
    result = await _turn(database_url, model)
    tool_results = [m.content for m in result.messages if m.role == "tool"]
    # Run once; the repeat is refused with the earlier result; the next repeat ends the turn.
    assert tool_results[0] == "No user has the IP address '203.0.113.1'."
    assert len(tool_results) == 2 and tool_results[1].startswith("not run again:")
    assert model.calls == 3
    answer = result.messages[-1]
    assert answer.role == "assistant" and not answer.tool_calls
    assert "No user has the IP address '203.0.113.1'." in answer.content


async def test_a_model_looping_with_new_arguments_stops_before_the_recursion_limit(
    database_url: str,
) -> None:
    model = LoopingModel(vary=True)
    result = await _turn(database_url, model, recursion_limit=8)
    answer = result.messages[-1]
    assert answer.role == "assistant" and not answer.tool_calls
    assert "RECURSION_LIMIT" in answer.content
    # Every tool call the stored thread holds has its result (the stopping answer has none).
    calls = [c["id"] for m in result.messages for c in m.tool_calls or []]
    results = [m.tool_call_id for m in result.messages if m.role == "tool"]
    assert calls == results


async def test_a_database_outage_inside_a_tool_is_503_and_frees_the_thread(database_url: str) -> None:
    settings = make_settings(database_url)
    thread_id = unique()
    tools = [unreachable_user_tool(free_port())]
    async with open_resources(settings, tools=tools) as resources:
        request = TurnRequest(OWNER, thread_id, [("user", "Who is at 203.0.113.1?")])
        handle = await resources.runs.submit(request)
        try:
            await handle.result()
        except Exception as exc:
            mapped = as_service_error(exc)
        else:
            raise AssertionError("the turn succeeded with its database down")
        assert isinstance(mapped, DatabaseUnavailable) and mapped.status_code == 503
        follow = TurnRequest(OWNER, thread_id, [("user", "What is the latest malware threat?")])
        done = await (await resources.runs.submit(follow)).result()
        assert done.messages[-1].role == "assistant"

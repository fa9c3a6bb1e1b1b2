"""The offline model's memory rules: which tool it calls, with what, and how it answers."""

from __future__ import annotations

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from app.agent.memory_tools import MANAGE_TOOL, SEARCH_TOOL
from app.agent.offline_model import decide
from app.agent.tools import THREAT_TOOL, USER_TOOL

TOOLS = {MANAGE_TOOL, SEARCH_TOOL, THREAT_TOOL, USER_TOOL}


def _after(question: str, tool: str, result: str) -> list[BaseMessage]:
    call = {"name": tool, "args": {}, "id": "c1"}
    return [
        HumanMessage(question),
        AIMessage("", tool_calls=[call]),
        ToolMessage(result, tool_call_id="c1", name=tool),
    ]


def test_remember_saves_the_fact_and_confirms_in_the_second_person() -> None:
    first = decide([HumanMessage("Remember that I cover the London office")], TOOLS)
    assert first.tool_call is not None and first.tool_call["name"] == MANAGE_TOOL
    assert first.tool_call["args"] == {"content": "I cover the London office"}
    done = decide(
        _after("Remember that I cover the London office", MANAGE_TOOL, "Created memory k1: x"), TOOLS
    )
    assert done.text == "Got it, I'll remember that you cover the London office"


def test_a_question_about_me_searches_and_answers_from_the_best_similar_memory() -> None:
    first = decide([HumanMessage("Which office do I cover?")], TOOLS)
    assert first.tool_call is not None and first.tool_call["name"] == SEARCH_TOOL
    found = "- [k1] I cover the London office (similarity 0.59)\n- [k2] My manager is Dana (similarity 0.10)"
    answer = decide(_after("Which office do I cover?", SEARCH_TOOL, found), TOOLS)
    assert answer.text == "From what you told me before: you cover the London office"
    weak = decide(
        _after("Which office do I cover?", SEARCH_TOOL, "- [k2] My manager is Dana (similarity 0.10)"), TOOLS
    )
    assert "don't have anything saved" in weak.text


def test_threat_questions_stay_threat_questions_whatever_their_pronouns() -> None:
    step = decide([HumanMessage("Who committed the latest malware threat against me?")], TOOLS)
    assert step.tool_call is not None and step.tool_call["name"] == THREAT_TOOL


def test_without_memory_tools_nothing_changes() -> None:
    step = decide([HumanMessage("Remember that I like tea")], {THREAT_TOOL, USER_TOOL})
    assert step.tool_call is None and "remember" not in step.text.lower()


def test_forget_searches_then_deletes_the_best_match() -> None:
    first = decide([HumanMessage("Forget that my desk is 4B")], TOOLS)
    assert first.tool_call is not None and first.tool_call["args"] == {"query": "my desk is 4B"}
    delete = decide(
        _after("Forget that my desk is 4B", SEARCH_TOOL, "- [k9] my desk is 4B (similarity 0.9)"), TOOLS
    )
    assert delete.tool_call is not None and delete.tool_call["args"] == {"action": "delete", "id": "k9"}

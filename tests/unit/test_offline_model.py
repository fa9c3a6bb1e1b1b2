"""The offline model's policy (`decide`) and its chat-model surface (invoke, tool binding, streaming)."""

from __future__ import annotations

from typing import TypeGuard

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.tools import BaseTool, tool

from app.agent.offline_model import Decision, OfflineChatModel, decide, find_threat_type
from app.agent.sample_data import THREAT_TYPES
from app.agent.tools import THREAT_TOOL, USER_TOOL, format_fields

TOOLS = {THREAT_TOOL, USER_TOOL}
IP = "10.3.77.14"
USER = "Grace Tanaka"

THREAT_RESULT = format_fields(
    [
        ("threat_type", "BruteForce"),
        ("threat_id", 1042),
        ("event_timestamp", "2025-01-11 14:05:00"),
        ("source_ip", IP),
        ("protocol", "TCP"),
        ("detection_tool", "IDS"),
    ]
)
USER_RESULT = format_fields(
    [
        ("user_name", USER),
        ("department", "Finance"),
        ("email", "grace.tanaka@example.com"),
        ("ip_address", IP),
        ("location", "Berlin"),
    ]
)


@tool(THREAT_TOOL)
def threat_tool(threat_type: str) -> str:
    """Return the latest cyber threat of the given type."""
    return THREAT_RESULT


@tool(USER_TOOL)
def user_tool(source_ip: str) -> str:
    """Return the user at the given IP address."""
    return USER_RESULT


BOUND_TOOLS: list[BaseTool] = [threat_tool, user_tool]


def run_routine(question: str) -> list[BaseMessage]:
    """The full first turn: question, threat call, threat result, user call, user result, answer."""
    messages: list[BaseMessage] = [HumanMessage(question)]
    first = decide(messages, TOOLS)
    assert first.tool_call is not None
    messages += [
        AIMessage(content="", tool_calls=[first.tool_call]),
        ToolMessage(THREAT_RESULT, tool_call_id=first.tool_call["id"], name=THREAT_TOOL),
    ]
    second = decide(messages, TOOLS)
    assert second.tool_call is not None
    messages += [
        AIMessage(content="", tool_calls=[second.tool_call]),
        ToolMessage(USER_RESULT, tool_call_id=second.tool_call["id"], name=USER_TOOL),
    ]
    final = decide(messages, TOOLS)
    assert final.tool_call is None
    messages.append(AIMessage(final.text))
    return messages


# --- decide(): the routine ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Who committed the latest brute force threat?", "BruteForce"),
        ("What is the latest ddos threat?", "DDoS"),
        ("Who was behind the latest denial of service attack?", "DDoS"),
        ("Latest malware threat?", "Malware"),
        ("who is responsible for the latest SQL injection?", "SQLInjection"),
        ("latest sqli?", "SQLInjection"),
        ("latest port-scan", "PortScan"),
        ("any insider threat lately?", "InsiderThreat"),
        ("latest RANSOMWARE threat", "Ransomware"),
        ("Who clicked the latest phishing link?", "Phishing"),
        ("latest virus", "Malware"),
    ],
)
def test_threat_question_calls_the_threat_tool_with_the_normalized_type(question: str, expected: str) -> None:
    assert find_threat_type(question) == expected
    decision = decide([HumanMessage(question)], TOOLS)
    assert decision.text == ""
    assert decision.tool_call is not None
    assert decision.tool_call["name"] == THREAT_TOOL
    assert decision.tool_call["args"] == {"threat_type": expected}
    assert decision.tool_call["id"]


def test_every_threat_type_is_recognised() -> None:
    for kind in THREAT_TYPES:
        decision = decide([HumanMessage(f"What is the latest {kind} threat?")], TOOLS)
        assert decision.tool_call is not None
        assert decision.tool_call["args"] == {"threat_type": kind}


def _after_threat_result(text: str) -> tuple[ToolCall, Decision]:
    """Ask `text`, answer the model's threat lookup, and return the call and the next decision."""
    question = HumanMessage(text)
    call = decide([question], TOOLS).tool_call
    assert call is not None
    messages: list[BaseMessage] = [
        question,
        AIMessage(content="", tool_calls=[call]),
        ToolMessage(THREAT_RESULT, tool_call_id=call["id"], name=THREAT_TOOL),
    ]
    return call, decide(messages, TOOLS)


def test_person_question_after_a_threat_result_looks_up_its_source_ip() -> None:
    call, decision = _after_threat_result("Who committed the latest brute force threat?")
    assert decision.tool_call is not None
    assert decision.tool_call["name"] == USER_TOOL
    assert decision.tool_call["args"] == {"source_ip": IP}
    assert decision.tool_call["id"] != call["id"]


def test_threat_question_without_a_person_is_answered_from_the_threat_alone() -> None:
    _, decision = _after_threat_result("What is the latest brute force threat?")
    assert decision.tool_call is None
    assert "BruteForce" in decision.text and "1042" in decision.text and IP in decision.text


def test_after_both_results_the_answer_names_the_user() -> None:
    messages = run_routine("Who committed the latest brute force threat?")
    answer = messages[-1].content
    assert isinstance(answer, str)
    assert USER in answer
    assert "BruteForce" in answer
    assert IP in answer
    assert "Finance" in answer and "grace.tanaka@example.com" in answer


def test_question_with_an_ip_looks_the_user_up() -> None:
    decision = decide([HumanMessage(f"Who is at {IP}?")], TOOLS)
    assert decision.tool_call is not None
    assert decision.tool_call["name"] == USER_TOOL
    assert decision.tool_call["args"] == {"source_ip": IP}


def test_failed_tool_result_is_passed_on() -> None:
    question = HumanMessage("Who is at 203.0.113.99?")
    call = decide([question], TOOLS).tool_call
    assert call is not None
    failure = "No user has the IP address '203.0.113.99'."
    messages: list[BaseMessage] = [
        question,
        AIMessage(content="", tool_calls=[call]),
        ToolMessage(failure, tool_call_id=call["id"], name=USER_TOOL),
    ]
    decision = decide(messages, TOOLS)
    assert decision.tool_call is None
    assert decision.text == failure


# --- decide(): memory ---------------------------------------------------------------------------


def test_follow_up_is_answered_from_earlier_tool_results() -> None:
    history = run_routine("Who committed the latest brute force threat?")
    decision = decide([*history, HumanMessage("What was their IP address?")], TOOLS)
    assert decision.tool_call is None  # answered from memory, no tool call
    assert IP in decision.text
    assert USER in decision.text


def test_follow_up_about_other_fields_uses_memory() -> None:
    history = run_routine("Who committed the latest brute force threat?")
    email = decide([*history, HumanMessage("What is their email?")], TOOLS)
    assert email.tool_call is None and "grace.tanaka@example.com" in email.text
    where = decide([*history, HumanMessage("Where are they located?")], TOOLS)
    assert where.tool_call is None and "Berlin" in where.text
    when = decide([*history, HumanMessage("When did it happen?")], TOOLS)
    assert when.tool_call is None and "2025-01-11 14:05:00" in when.text


def test_follow_up_without_history_does_not_know() -> None:
    decision = decide([HumanMessage("What was their IP address?")], TOOLS)
    assert decision.tool_call is None
    assert "don't know" in decision.text
    assert IP not in decision.text


def test_follow_up_ignores_earlier_answer_text_without_tool_results() -> None:
    """Memory is the tool results, not text that merely looks like an answer."""
    messages: list[BaseMessage] = [
        HumanMessage("hello"),
        AIMessage(f"{USER} is at {IP}."),
        HumanMessage("What was their IP address?"),
    ]
    decision = decide(messages, TOOLS)
    assert "don't know" in decision.text


def test_the_latest_person_in_memory_is_used() -> None:
    other_ip = "10.9.9.99"
    other = format_fields(
        [
            ("user_name", "Trent Rossi"),
            ("department", "IT"),
            ("email", "trent.rossi@example.com"),
            ("ip_address", other_ip),
            ("location", "Sydney"),
        ]
    )
    history = run_routine("Who committed the latest brute force threat?")
    question = HumanMessage(f"Who is at {other_ip}?")
    call = decide([*history, question], TOOLS).tool_call
    assert call is not None
    history += [
        question,
        AIMessage(content="", tool_calls=[call]),
        ToolMessage(other, tool_call_id=call["id"], name=USER_TOOL),
    ]
    history.append(AIMessage(decide(history, TOOLS).text))
    decision = decide([*history, HumanMessage("What was their IP address?")], TOOLS)
    assert other_ip in decision.text and "Trent Rossi" in decision.text
    assert IP not in decision.text


def test_no_human_message_gets_the_help_text() -> None:
    decision = decide([], TOOLS)
    assert decision.tool_call is None
    assert "Try" in decision.text


# --- decide(): determinism and tool filtering ---------------------------------------------------


def test_tool_call_ids_are_deterministic() -> None:
    question = "Who committed the latest brute force threat?"
    assert run_routine(question) == run_routine(question)
    first = decide([HumanMessage(question)], TOOLS).tool_call
    again = decide([HumanMessage(question)], TOOLS).tool_call
    assert first is not None and again is not None
    assert first["id"] == again["id"]
    other = decide([HumanMessage("Who committed the latest ddos threat?")], TOOLS).tool_call
    assert other is not None and other["id"] != first["id"]


def test_no_tools_bound_means_no_tool_call() -> None:
    for question in ["Who committed the latest malware threat?", f"Who is at {IP}?"]:
        decision = decide([HumanMessage(question)], set())
        assert decision.tool_call is None
        assert decision.text


def test_only_the_bound_tools_are_called() -> None:
    assert decide([HumanMessage("latest malware threat")], {USER_TOOL}).tool_call is None
    assert decide([HumanMessage(f"Who is at {IP}?")], {THREAT_TOOL}).tool_call is None
    # The person lookup after a threat result needs the user tool.
    question = HumanMessage("Who committed the latest brute force threat?")
    call = decide([question], {THREAT_TOOL}).tool_call
    assert call is not None
    messages: list[BaseMessage] = [
        question,
        AIMessage(content="", tool_calls=[call]),
        ToolMessage(THREAT_RESULT, tool_call_id=call["id"], name=THREAT_TOOL),
    ]
    decision = decide(messages, {THREAT_TOOL})
    assert decision.tool_call is None and "BruteForce" in decision.text


# --- OfflineChatModel -----------------------------------------------------------------------------


async def test_unbound_model_never_calls_tools() -> None:
    answer = await OfflineChatModel().ainvoke([HumanMessage("Who committed the latest malware threat?")])
    assert isinstance(answer, AIMessage)
    assert answer.tool_calls == []
    assert isinstance(answer.content, str) and answer.content


async def test_bound_model_returns_the_tool_call() -> None:
    model = OfflineChatModel().bind_tools(BOUND_TOOLS)
    answer = await model.ainvoke([HumanMessage("What is the latest ddos threat?")])
    assert len(answer.tool_calls) == 1
    call = answer.tool_calls[0]
    assert call["name"] == THREAT_TOOL and call["args"] == {"threat_type": "DDoS"}
    expected = decide([HumanMessage("What is the latest ddos threat?")], TOOLS).tool_call
    assert expected is not None and call["id"] == expected["id"]
    # The synchronous path agrees.
    assert model.invoke([HumanMessage("What is the latest ddos threat?")]).tool_calls == answer.tool_calls


def are_chunks(messages: list[AIMessage]) -> TypeGuard[list[AIMessageChunk]]:
    """Whether a stream yielded only chunks (so they add up to one message)."""
    return all(isinstance(m, AIMessageChunk) for m in messages)


async def test_streamed_answer_equals_the_invoked_answer() -> None:
    model = OfflineChatModel().bind_tools(BOUND_TOOLS)
    messages = run_routine("Who committed the latest brute force threat?")[:-1]
    invoked = await model.ainvoke(messages)
    assert isinstance(invoked.content, str) and USER in invoked.content
    chunks = [chunk async for chunk in model.astream(messages)]
    assert len(chunks) > 3
    assert are_chunks(chunks)
    assert "".join(str(c.content) for c in chunks) == invoked.content
    assert not any(c.tool_call_chunks for c in chunks)
    sync_chunks = list(model.stream(messages))
    assert "".join(str(c.content) for c in sync_chunks) == invoked.content


async def test_streamed_follow_up_equals_the_invoked_answer() -> None:
    model = OfflineChatModel().bind_tools(BOUND_TOOLS)
    messages = [
        *run_routine("Who committed the latest brute force threat?"),
        HumanMessage("What was their IP address?"),
    ]
    invoked = await model.ainvoke(messages)
    chunks = [chunk async for chunk in model.astream(messages)]
    assert len(chunks) > 1
    assert "".join(str(c.content) for c in chunks) == invoked.content
    assert IP in str(invoked.content)


async def test_streamed_tool_call_turn_has_tool_call_chunks() -> None:
    model = OfflineChatModel().bind_tools(BOUND_TOOLS)
    messages: list[BaseMessage] = [HumanMessage("Who committed the latest brute force threat?")]
    invoked = await model.ainvoke(messages)
    chunks = [chunk async for chunk in model.astream(messages)]
    assert are_chunks(chunks)
    with_calls = [c for c in chunks if isinstance(c, AIMessageChunk) and c.tool_call_chunks]
    assert with_calls
    first = with_calls[0].tool_call_chunks[0]
    assert first["name"] == THREAT_TOOL
    assert first["id"] == invoked.tool_calls[0]["id"]
    # The chunks add up to the same tool call as the invoked message.
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert isinstance(total, AIMessageChunk)
    assert total.tool_calls == invoked.tool_calls
    assert total.tool_calls[0]["args"] == {"threat_type": "BruteForce"}


async def test_token_delay_does_not_change_the_stream() -> None:
    model = OfflineChatModel(token_delay_seconds=0.001).bind_tools(BOUND_TOOLS)
    messages = [HumanMessage("hello")]
    chunks = [chunk async for chunk in model.astream(messages)]
    assert "".join(str(c.content) for c in chunks) == (await model.ainvoke(messages)).content

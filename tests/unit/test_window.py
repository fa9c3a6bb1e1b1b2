"""The model's view of a thread: repaired tool exchanges and a bounded window (app/agent/window.py)."""

from __future__ import annotations

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage

from app.agent.window import INTERRUPTED_TOOL_RESULT, HistoryWindow, repair, window


def call(call_id: str, name: str = "get_user_info") -> AIMessage:
    return AIMessage(content="", tool_calls=[{"id": call_id, "name": name, "args": {}}])


def result(call_id: str) -> ToolMessage:
    return ToolMessage(content=f"result {call_id}", tool_call_id=call_id)


def turn(i: int) -> list[AnyMessage]:
    """One tool-using turn: question, tool call, its result, answer."""
    return [HumanMessage(f"q{i}"), call(f"c{i}"), result(f"c{i}"), AIMessage(f"a{i}")]


def text(message: AnyMessage) -> str:
    """A message's text, or for a bare tool call the call's id."""
    if shown := str(message.content):
        return shown
    assert isinstance(message, AIMessage)
    return f"call:{message.tool_calls[0]['id']}"


def texts(messages: list[AnyMessage]) -> list[str]:
    return [text(m) for m in messages if not isinstance(m, ToolMessage)]


def test_complete_exchanges_are_left_alone() -> None:
    messages = [*turn(1), *turn(2)]
    assert repair(messages) == messages


def test_unanswered_calls_get_a_synthetic_failed_result_where_they_belong() -> None:
    two_calls = AIMessage(
        content="",
        tool_calls=[
            {"id": "x", "name": "get_cyber_threat_info", "args": {}},
            {"id": "y", "name": "get_user_info", "args": {}},
        ],
    )
    messages: list[AnyMessage] = [HumanMessage("q"), two_calls, result("x"), HumanMessage("again?")]
    repaired = repair(messages)
    assert [type(m).__name__ for m in repaired] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "ToolMessage",
        "HumanMessage",
    ]
    synthetic = repaired[3]
    assert isinstance(synthetic, ToolMessage)
    assert (synthetic.tool_call_id, synthetic.name, synthetic.content) == (
        "y",
        "get_user_info",
        INTERRUPTED_TOOL_RESULT,
    )
    assert len(messages) == 4  # the input is not changed


def test_a_call_cut_off_at_the_end_is_answered_too() -> None:
    repaired = repair([HumanMessage("q"), call("z")])
    assert isinstance(repaired[-1], ToolMessage) and repaired[-1].tool_call_id == "z"


def test_results_without_their_call_are_dropped() -> None:
    messages: list[AnyMessage] = [HumanMessage("q"), result("gone"), AIMessage("a")]
    assert repair(messages) == [messages[0], messages[2]]


def test_window_keeps_whole_turns_from_a_user_message_within_the_budget() -> None:
    messages = [*turn(1), *turn(2), *turn(3), HumanMessage("q4")]
    shown = window(messages, max_messages=8)
    # 8 reaches back into turn 2's tool exchange but not its question: the window opens at q3.
    assert texts(shown) == ["q3", "call:c3", "a3", "q4"]
    assert window(messages, max_messages=5) == shown
    assert texts(window(messages, max_messages=9))[0] == "q2"
    assert texts(window(messages, max_messages=100)) == texts(messages)


def test_window_never_separates_a_call_from_its_results() -> None:
    messages = [*turn(1), *turn(2), HumanMessage("q3")]
    for budget in range(1, 12):
        shown = HistoryWindow(max_messages=budget).apply(messages)
        pending: set[str] = set()
        for message in shown:
            if isinstance(message, ToolMessage):
                assert message.tool_call_id in pending
                pending.discard(message.tool_call_id)
            elif isinstance(message, AIMessage):
                assert not pending
                pending = {c["id"] for c in message.tool_calls if c["id"]}
        assert not pending
        assert isinstance(shown[0], HumanMessage)


def test_the_turn_being_answered_is_shown_whole_even_over_budget() -> None:
    current: list[AnyMessage] = [HumanMessage("q"), call("a"), result("a"), call("b"), result("b")]
    shown = window([*turn(1), *current], max_messages=2)
    assert shown == current


def test_token_budget_drops_older_turns() -> None:
    long_turn: list[AnyMessage] = [HumanMessage("x " * 2000), AIMessage("y " * 2000)]
    messages = [*long_turn, *turn(2), HumanMessage("q3")]
    shown = window(messages, max_messages=100, max_tokens=500)
    assert texts(shown) == ["q2", "call:c2", "a2", "q3"]


def test_system_messages_in_the_thread_are_ordinary_messages() -> None:
    messages = [SystemMessage("be brief"), *turn(1), HumanMessage("q2")]
    assert window(messages, max_messages=100) == messages

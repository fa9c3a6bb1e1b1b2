"""The history cache's cheap weigher agrees with the general one it stands in for."""

from __future__ import annotations

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from app.lru import approximate_bytes, message_list_bytes


def test_the_cheap_weight_of_a_window_is_the_walked_weight() -> None:
    window: list[BaseMessage] = [
        HumanMessage("Who committed the latest malware threat? " * 50, id="m1"),
        AIMessage(
            "", id="m2", tool_calls=[{"id": "c1", "name": "get_user_info", "args": {"ip": "10.0.0.1"}}]
        ),
        ToolMessage("user_name: Ada; email: ada@example.com", tool_call_id="c1", id="m3"),
        AIMessage("Ada Lovelace did. " * 200, id="m4"),
        HumanMessage([{"type": "text", "text": "and their email? é"}], id="m5"),
    ]
    walked, cheap = approximate_bytes(window), message_list_bytes(window)
    assert abs(cheap - walked) <= 0.1 * walked


def test_a_window_weighed_turn_by_turn_weighs_what_it_holds() -> None:
    import uuid
    from typing import cast

    from app.memory.transcript import Transcript
    from app.services.history_cache import HistoryCache, trim_window

    cache = HistoryCache(cast(Transcript, None), limit=12)  # remember() never reads the transcript
    thread = uuid.uuid4()
    window: list[BaseMessage] = []
    end = 0
    for turn_number in range(10):  # the window fills up, then drops its oldest turns
        turn: list[BaseMessage] = [
            HumanMessage(f"question {turn_number} " * (turn_number + 1), id=f"q{turn_number}"),
            AIMessage(f"answer {turn_number} " * 40, id=f"a{turn_number}"),
            AIMessage(
                "", id=f"c{turn_number}", tool_calls=[{"id": f"t{turn_number}", "name": "f", "args": {}}]
            ),
        ]
        cache.remember(thread, branch=0, end_seq=end + 3, before=window, turn=turn, before_at=(0, end))
        window, end = trim_window([*window, *turn], 12), end + 3
        kept = cache._entries.weight((thread, 0, end))
        assert kept == message_list_bytes(window)

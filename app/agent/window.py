"""What the model is shown of a thread: a repaired, bounded window of its messages.

The thread's state keeps every message; only the request to the model is trimmed. Two rules
keep that request valid for every chat API:

- every assistant tool call is answered by a tool message, and every tool message answers a
  call shown before it. A turn cut off between a call and its result (a crash, an old fork) is
  repaired with a synthetic "tool failed" result, and a result whose call is gone is dropped;
- the window is cut only between "units": an assistant message with tool calls travels with
  all its results. It starts at a user message when one is in reach, and it always holds the
  latest user message and everything after it (the turn being answered), budget or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.messages.utils import count_tokens_approximately

INTERRUPTED_TOOL_RESULT = "tool failed: the turn was interrupted before this tool returned"


@dataclass(frozen=True)
class HistoryWindow:
    """The budget of what the model sees: at most `max_messages` messages and, if set, about
    `max_tokens` tokens (estimated from characters: no tokenizer fits every model)."""

    max_messages: int = 60
    max_tokens: int | None = None

    def apply(self, messages: Sequence[AnyMessage]) -> list[AnyMessage]:
        return window(repair(messages), max_messages=self.max_messages, max_tokens=self.max_tokens)


def repair(messages: Sequence[AnyMessage]) -> list[AnyMessage]:
    """Pair every tool call with a result: synthesize missing results, drop orphaned ones.

    A result belongs right after its call's assistant message (other tool messages may sit in
    between); anything else arriving before all calls are answered means the turn was cut off.
    """
    repaired: list[AnyMessage] = []
    pending: dict[str, AIMessage] = {}  # call id -> the message that made it, in call order

    def close_pending() -> None:
        for call_id, source in pending.items():
            name = next((c["name"] for c in source.tool_calls if c["id"] == call_id), None)
            repaired.append(
                ToolMessage(
                    content=INTERRUPTED_TOOL_RESULT,
                    tool_call_id=call_id,
                    name=name,
                    status="error",
                    id=f"repair-{call_id}",
                )
            )
        pending.clear()

    for message in messages:
        if isinstance(message, ToolMessage):
            if message.tool_call_id in pending:
                del pending[message.tool_call_id]
                repaired.append(message)
            # else: a result whose call is not (or no longer) shown; the API would reject it.
            continue
        close_pending()
        repaired.append(message)
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                if call["id"]:
                    pending[call["id"]] = message
    close_pending()
    return repaired


def _units(messages: Sequence[AnyMessage]) -> list[list[AnyMessage]]:
    """Split into indivisible runs: an assistant message with its tool results, or one message."""
    units: list[list[AnyMessage]] = []
    for message in messages:
        if isinstance(message, ToolMessage) and units and _opens_tool_unit(units[-1][0]):
            units[-1].append(message)
        else:
            units.append([message])
    return units


def _opens_tool_unit(message: AnyMessage) -> bool:
    return isinstance(message, AIMessage) and bool(message.tool_calls)


def window(
    messages: Sequence[AnyMessage], *, max_messages: int, max_tokens: int | None = None
) -> list[AnyMessage]:
    """The latest messages within the budget, cut only between units (see the module doc)."""
    units = _units(messages)
    if not units:
        return []
    # The turn being answered: from the latest user message on, always shown whole.
    last_user = max((i for i, unit in enumerate(units) if isinstance(unit[0], HumanMessage)), default=0)
    start = last_user
    count = sum(len(unit) for unit in units[start:])
    tokens = sum(count_tokens_approximately(unit) for unit in units[start:]) if max_tokens else 0
    while start > 0:
        unit = units[start - 1]
        unit_tokens = count_tokens_approximately(unit) if max_tokens else 0
        if count + len(unit) > max_messages or (max_tokens and tokens + unit_tokens > max_tokens):
            break
        start -= 1
        count += len(unit)
        tokens += unit_tokens
    # A cut window begins at a user message if one is inside it: opening on an answer or a tool
    # exchange reads as context without its question. (An uncut thread is shown as it is.)
    while 0 < start < last_user and not isinstance(units[start][0], HumanMessage):
        start += 1
    return [message for unit in units[start:] for message in unit]

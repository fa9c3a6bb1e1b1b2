"""How the graph runs a tool call: time limit, stable failure text, outages, repeated calls.

- A tool that fails becomes a result the model reads, in a stable wording that names the tool and
  the kind of failure ("get_user_info failed: the database rejected the query"). Library text
  (SQL, relation names, connection strings) goes to the log only: it is stored in the thread and
  shown to the client, and it can hold what neither should see.
- A database outage is not the tool's failure: it is raised, so the turn ends as 503 (retry
  later) like any other outage, not as an answer that blames the tool.
- The same call (name and arguments) repeated within a turn is not run again: its earlier result
  is given back with a note saying so. A model that asks again after that note is stopped by the
  agent node (`stop_repeating`), so a loop ends in an answer, never in RECURSION_LIMIT.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import psycopg
import psycopg_pool
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolCall, ToolMessage
from langgraph.prebuilt.tool_node import ToolCallRequest, ToolInvocationError
from langgraph.types import Command

from app.memory.credentials import CredentialUnavailable

logger = logging.getLogger(__name__)

# Opens the result of a call that was not run again; the agent node looks for it.
REPEATED_PREFIX = "not run again:"
# Opens the result of a call a reviewer edited before it ran (app/agent/approval.py): the
# model's message keeps the arguments it asked for, so its result says which ones ran.
EDITED_PREFIX = "Note: a reviewer changed this call's arguments before it ran; it ran with"

ToolExecutor = Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]]


class ToolObserver(Protocol):
    def tool_call(self, tool: str, outcome: str, seconds: float) -> None: ...


def is_database_outage(exc: BaseException) -> bool:
    """The database is unreachable (not: it refused this query). The turn cannot be saved either."""
    return isinstance(exc, psycopg.OperationalError | psycopg_pool.PoolTimeout | CredentialUnavailable)


def failure_text(tool: str, exc: Exception) -> str:
    """What the model, the client and the stored thread see of a failed tool: never library text."""
    if isinstance(exc, psycopg.Error):
        return f"{tool} failed: the database rejected the query"
    if isinstance(exc, ToolInvocationError):
        # The model's own arguments were wrong; naming the fields lets it correct the call.
        fields = sorted({str(e["loc"][0]) for e in exc.source.errors() if e.get("loc")})
        which = f" ({', '.join(fields)})" if fields else ""
        return f"{tool} failed: the arguments were not valid{which}"
    return f"{tool} failed: the tool raised {type(exc).__name__}"


def _signature(name: str, args: Mapping[str, Any]) -> str:
    return f"{name}|{json.dumps(args, sort_keys=True, default=str)}"


def current_turn(messages: Sequence[AnyMessage]) -> Sequence[AnyMessage]:
    """The messages of the turn in progress: after the last user message."""
    last_human = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1)
    return messages[last_human + 1 :]


def _identical_results(turn: Sequence[AnyMessage], call: ToolCall) -> list[ToolMessage]:
    """Results in `turn` of calls with the same name and arguments as `call` (another call id)."""
    wanted = _signature(call["name"], call["args"])
    ids = {
        c["id"]
        for m in turn
        if isinstance(m, AIMessage)
        for c in m.tool_calls
        if c["id"] != call["id"] and _signature(c["name"], c["args"]) == wanted
    }
    return [m for m in turn if isinstance(m, ToolMessage) and m.tool_call_id in ids]


def earlier_result(turn: Sequence[AnyMessage], call: ToolCall) -> ToolMessage | None:
    """The result of an identical call made earlier in `turn`: the real one, not a note."""
    found = _identical_results(turn, call)
    originals = [m for m in found if not _text(m).startswith(REPEATED_PREFIX)]
    candidates = originals or found
    return candidates[-1] if candidates else None


def _text(message: AnyMessage) -> str:
    return message.content if isinstance(message.content, str) else json.dumps(message.content)


def _repeated(call: ToolCall, earlier: ToolMessage) -> ToolMessage:
    return ToolMessage(
        content=(
            f"{REPEATED_PREFIX} {call['name']} was already called with these arguments in this turn."
            f" Its result was: {_text(earlier)} Answer the user with it; do not call it again."
        ),
        name=call["name"],
        tool_call_id=call["id"] or "",
        status="error",
    )


def _edited(messages: Sequence[AnyMessage], call: ToolCall) -> bool:
    """The call runs with other arguments than the model's message asked for."""
    for message in reversed(messages):
        if isinstance(message, AIMessage):
            for asked in message.tool_calls:
                if asked["id"] == call["id"]:
                    return bool(asked["args"] != call["args"])
            return False
    return False


def _failed(call: ToolCall, content: str) -> ToolMessage:
    return ToolMessage(content=content, name=call["name"], tool_call_id=call["id"] or "", status="error")


def tool_runner(
    seconds: float | None, observer: ToolObserver | None
) -> Callable[[ToolCallRequest, ToolExecutor], Awaitable[ToolMessage | Command[Any]]]:
    """The ToolNode's `awrap_tool_call`: every policy of the module doc, around one call."""

    async def run_tool(request: ToolCallRequest, execute: ToolExecutor) -> ToolMessage | Command[Any]:
        call = request.tool_call
        messages = request.state.get("messages", []) if isinstance(request.state, Mapping) else []
        earlier = earlier_result(current_turn(messages), call)
        if earlier is not None:
            if observer is not None:
                observer.tool_call(call["name"], "repeated", 0.0)
            return _repeated(call, earlier)
        started = time.perf_counter()
        outcome = "success"
        try:
            if seconds is None:
                result = await execute(request)
            else:
                async with asyncio.timeout(seconds):
                    result = await execute(request)
            if isinstance(result, ToolMessage) and result.status == "error":
                outcome = "error"
            if isinstance(result, ToolMessage) and _edited(messages, call):
                args = json.dumps(call["args"], sort_keys=True, default=str)
                result.content = f"{EDITED_PREFIX} {args}.\n{_text(result)}"
            return result
        except TimeoutError:
            outcome = "timeout"
            return _failed(call, f"{call['name']} failed: it did not return within {seconds:g} s")
        except Exception as exc:
            if is_database_outage(exc):
                outcome = "unavailable"
                raise
            outcome = "error"
            # The detail stays here; the thread and the client get the stable text.
            logger.warning("tool %s failed: %s: %s", call["name"], type(exc).__name__, exc)
            return _failed(call, failure_text(call["name"], exc))
        finally:
            if observer is not None:
                observer.tool_call(call["name"], outcome, time.perf_counter() - started)

    return run_tool


def stop_repeating(turn: Sequence[AnyMessage], response: AIMessage) -> AIMessage | None:
    """An answer that ends the turn when the model asks again for calls it was already told were
    repeats; None when the response may go on to the tools."""
    calls = response.tool_calls
    told = [any(_text(m).startswith(REPEATED_PREFIX) for m in _identical_results(turn, c)) for c in calls]
    if not calls or not all(told):
        return None
    found = []
    for call in calls:
        result = earlier_result(turn, call)
        found.append(f"{call['name']}: {_text(result) if result is not None else 'no result'}")
    return AIMessage(
        content=(
            "I stopped: I kept asking for the same lookup again. What it returned: " + " | ".join(found)
        ),
        id=response.id,
    )


def steps_exhausted(
    turn: Sequence[AnyMessage], response: AIMessage, *, limit: int | None, steps_per_round: int = 2
) -> AIMessage | None:
    """An answer that ends the turn when another tool round would pass RECURSION_LIMIT (a model
    looping over ever-different arguments): the client gets an answer, not a failed turn."""
    if not response.tool_calls or limit is None:
        return None
    # Each round is two graph steps (the model, then the tools; three with an approval step);
    # the next model call must fit too, with one step to spare for the turn's input.
    rounds = 1 + sum(isinstance(m, AIMessage) for m in turn)
    if steps_per_round * rounds + 3 <= limit:
        return None
    return AIMessage(
        content=(
            "I stopped before finishing: this question needed more tool calls than one turn allows"
            " (RECURSION_LIMIT). Ask a narrower question."
        ),
        id=response.id,
    )

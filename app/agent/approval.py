"""Human approval of tool calls (TOOL_APPROVAL): the graph pauses before a listed tool runs.

The pause is LangGraph's own `interrupt()`, in an `approve` node between the model and the
tools, so it is a checkpoint like any other: durable, resumable from any process, a day later.
Its value is the request LangChain's human-in-the-loop middleware raises (`action_requests`
and `review_configs`), so agent-chat-ui and other protocol clients render it as they know it.

A resume carries one decision per pending call, in any of the shapes clients send (read by
`decisions_of`, which the service also uses to refuse a malformed resume with a 422 before a
run starts):
- ours: `{"decision": "approve" | "edit" | "reject" | "respond", "args"?, "reason"?, "text"?}`;
- LangChain's middleware and today's agent-chat-ui: `{"decisions": [{"type": "approve"},
  {"type": "edit", "edited_action": {"name", "args"}}, {"type": "reject", "message"?},
  {"type": "respond", "message"}]}`;
- the agent inbox (older agent-chat-ui): `[{"type": "accept" | "edit" | "ignore" | "response",
  "args"}]`.
A single decision answers every pending call (an edit only when one call is pending).

An approved call runs as asked; an edited one runs with the reviewer's arguments (its result
says so: the model's message keeps what it asked for); a rejected one does not run and the
model is told it was not approved (and why, when the reviewer said); a respond decision answers
in the tool's place.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import AIMessage, AnyMessage, ToolCall, ToolMessage
from langchain_core.tools import BaseTool
from langgraph.types import Command, Send, interrupt

from app.agent.tool_calls import current_turn

DecisionType = Literal["approve", "edit", "reject", "respond"]
DECISION_TYPES: tuple[DecisionType, ...] = ("approve", "edit", "reject", "respond")
# The agent inbox's names for the same decisions.
_INBOX_TYPES: dict[str, DecisionType] = {
    "accept": "approve",
    "edit": "edit",
    "ignore": "reject",
    "response": "respond",
}
# What the model reads of a call that was not approved: "<tool> <REJECTED> (<reason>).<ADVICE>"
REJECTED = "was not run: the reviewer did not approve it"
REJECTED_ADVICE = " Answer without it; do not call it again."


@dataclass(frozen=True)
class ToolApproval:
    """Which tools need a person's approval: by name, or every tool (`*`)."""

    names: frozenset[str] = frozenset()
    every: bool = False

    @classmethod
    def parse(cls, setting: str | None) -> ToolApproval | None:
        names = frozenset(n.strip() for n in (setting or "").split(",") if n.strip())
        if not names:
            return None
        return cls(names=names - {"*"}, every="*" in names)

    def required(self, tool: str) -> bool:
        return self.every or tool in self.names


@dataclass(frozen=True)
class Decision:
    """A reviewer's decision on one pending call."""

    type: DecisionType
    args: dict[str, Any] | None = None  # edit: the arguments to run the call with
    message: str | None = None  # reject: the reason; respond: the answer given in the tool's place

    def as_json(self) -> dict[str, Any]:
        """LangChain's middleware shape (what the graph resumes with)."""
        if self.type == "edit":
            return {"type": "edit", "edited_action": {"args": self.args or {}}}
        if self.type in ("reject", "respond") and self.message is not None:
            return {"type": self.type, "message": self.message}
        return {"type": self.type}


def _text(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{what} must be text.")
    return value


def _args(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be an object of the tool's arguments.")
    return value


def _respond(value: Any, field: str) -> Decision:
    """A respond decision: `value` (under `field`) is the answer given in the tool's place."""
    text = _text(value, field)
    if not text:
        raise ValueError(f"A respond decision needs {field}: the answer given in the tool's place.")
    return Decision("respond", message=text)


def _one(item: Any, name: str | None) -> Decision:
    """One decision, in any of the shapes of the module doc; `name`: the call it answers."""
    if not isinstance(item, Mapping):
        raise ValueError("A decision must be an object.")
    if "decision" in item:  # ours
        kind = item["decision"]
        if kind not in DECISION_TYPES:
            raise ValueError(f"`decision` must be one of {', '.join(DECISION_TYPES)}.")
        if kind == "edit":
            return Decision("edit", args=_args(item.get("args"), "`args` of an edit"))
        if kind == "respond":
            return _respond(item.get("text"), "`text`")
        return Decision(kind, message=_text(item.get("reason"), "`reason`") if kind == "reject" else None)
    kind = item.get("type")
    if (kind in _INBOX_TYPES and kind not in DECISION_TYPES) or (
        kind == "edit" and "edited_action" not in item
    ):
        # The agent inbox: `args` is the edited action ({action, args}) or the response text.
        mapped = _INBOX_TYPES[str(kind)]
        payload = item.get("args")
        if mapped == "edit":
            action = _args(payload, "`args` of an edit")
            return Decision("edit", args=_args(action.get("args"), "`args.args` of an edit"))
        if mapped == "respond":
            return _respond(payload, "`args`")
        return Decision(mapped)
    if kind not in DECISION_TYPES:  # LangChain's middleware
        raise ValueError(
            "A decision needs `decision` (approve, edit, reject, respond) or `type` (the same, or"
            " the agent inbox's accept, edit, ignore, response)."
        )
    if kind == "edit":
        action = _args(item.get("edited_action"), "`edited_action`")
        edited_name = action.get("name")
        if edited_name is not None and name is not None and edited_name != name:
            raise ValueError(f"An edit cannot change which tool runs ({name}, not {edited_name}).")
        return Decision("edit", args=_args(action.get("args"), "`edited_action.args`"))
    if kind == "respond":
        return _respond(item.get("message"), "`message`")
    return Decision(kind, message=_text(item.get("message"), "`message`") if kind == "reject" else None)


def decisions_of(resume: Any, calls: Sequence[str]) -> list[Decision]:
    """The decisions a resume gives the pending `calls` (tool names, in the request's order).
    Raises ValueError saying what is wrong with it."""
    if isinstance(resume, Mapping) and "decisions" in resume:
        items = resume["decisions"]
        if not isinstance(items, list):
            raise ValueError("`decisions` must be a list, one decision per pending call.")
    elif isinstance(resume, list):
        items = resume
    else:
        items = [resume]
    if len(items) == 1 and len(calls) > 1:
        only = _one(items[0], None)
        if only.type == "edit":
            raise ValueError(
                f"{len(calls)} calls are pending: give `decisions`, one per call, to edit one of them."
            )
        return [only] * len(calls)
    if len(items) != len(calls):
        raise ValueError(f"{len(calls)} calls are pending; {len(items)} decisions were given.")
    return [_one(item, name) for item, name in zip(items, calls, strict=True)]


def pending_calls(interrupt_value: Any) -> list[str] | None:
    """The tool names an approval request asks about; None if the value is not one (a graph's
    own interrupt, resumed with whatever value it expects)."""
    if not isinstance(interrupt_value, Mapping):
        return None
    requests = interrupt_value.get("action_requests")
    if not isinstance(requests, list) or not all(isinstance(r, Mapping) for r in requests):
        return None
    return [str(r.get("name")) for r in requests]


def approval_request(calls: Sequence[ToolCall], tools: Mapping[str, BaseTool]) -> dict[str, Any]:
    """The interrupt's value: LangChain's `HITLRequest`, with each call's id beside it."""
    return {
        "action_requests": [
            {
                "name": call["name"],
                "args": call["args"],
                "id": call["id"],
                "description": _describe(call, tools.get(call["name"])),
            }
            for call in calls
        ],
        "review_configs": [
            {"action_name": name, "allowed_decisions": list(DECISION_TYPES)}
            for name in dict.fromkeys(call["name"] for call in calls)
        ],
    }


def _describe(call: ToolCall, tool: BaseTool | None) -> str:
    what = (tool.description.strip().splitlines() or [""])[0] if tool is not None else ""
    args = json.dumps(call["args"], sort_keys=True)
    return f"{call['name']}({args}) needs approval before it runs." + (f" {what}" if what else "")


def _answer(call: ToolCall, decision: Decision) -> ToolMessage:
    """What the model reads in place of a call that does not run."""
    if decision.type == "respond":
        return ToolMessage(content=decision.message or "", name=call["name"], tool_call_id=call["id"] or "")
    why = f" ({decision.message})" if decision.message else ""
    return ToolMessage(
        content=f"{call['name']} {REJECTED}{why}.{REJECTED_ADVICE}",
        name=call["name"],
        tool_call_id=call["id"] or "",
        status="error",
    )


def awaiting_calls(messages: Sequence[AnyMessage]) -> list[ToolCall]:
    """The calls of the model's last message that have no result yet."""
    turn = current_turn(messages)
    last = next((m for m in reversed(turn) if isinstance(m, AIMessage)), None)
    if last is None:
        return []
    answered = {m.tool_call_id for m in turn if isinstance(m, ToolMessage)}
    return [c for c in last.tool_calls if c["id"] not in answered]


def approval_node(
    approval: ToolApproval, tools: Sequence[BaseTool], *, tools_node: str, agent_node: str
) -> Any:
    """The `approve` node: pause for the gated calls, then send what may run to the tools."""
    by_name = {t.name: t for t in tools}

    def approve(state: Mapping[str, Any]) -> Command[str]:
        pending = awaiting_calls(state.get("messages", []))
        gated = [c for c in pending if approval.required(c["name"])]
        decisions: list[Decision] = []
        if gated:
            # Runs again from the top on resume: `interrupt` then returns the reviewer's answer.
            decisions = decisions_of(interrupt(approval_request(gated, by_name)), [c["name"] for c in gated])
        by_id = {c["id"]: d for c, d in zip(gated, decisions, strict=True)}
        runs: list[ToolCall] = []
        answers: list[AnyMessage] = []
        for call in pending:
            decision = by_id.get(call["id"])
            if decision is None or decision.type == "approve":
                runs.append(call)
            elif decision.type == "edit":
                runs.append(
                    ToolCall(name=call["name"], args=decision.args or {}, id=call["id"], type="tool_call")
                )
            else:
                answers.append(_answer(call, decision))
        goto: Send | str = Send(tools_node, runs) if runs else agent_node
        return Command(update={"messages": answers}, goto=goto)

    return approve


def tool_approval(names: Sequence[str], tools: Sequence[BaseTool]) -> ToolApproval | None:
    """TOOL_APPROVAL read against the agent's tools: a name no tool has is a start-up error
    (a typo would otherwise let the call it meant to guard run unapproved)."""
    approval = ToolApproval.parse(",".join(names))
    if approval is None:
        return None
    known = {t.name for t in tools}
    unknown = sorted(approval.names - known)
    if unknown:
        raise ValueError(
            f"TOOL_APPROVAL names {', '.join(unknown)}, which the agent has no tool of;"
            f" its tools are: {', '.join(sorted(known))} (or use * for every tool)."
        )
    return approval

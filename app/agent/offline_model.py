"""A deterministic, offline, tool-calling chat model: a stand-in for an LLM, not an LLM.

It lets the service run and be tested with no model endpoint. It follows the demo's routine with
rules, not language understanding: it reads the question and the thread's earlier messages,
decides which tool to call next (`get_cyber_threat_info`, then `get_user_info` with the threat's
source IP), and writes its answer from the tool results. Follow-up questions ("What was their IP
address?") are answered only from tool results already in the conversation it is given, so it
genuinely depends on the thread's memory: on a thread without that history it says it does not
know. It streams its answers word by word, like a real provider. With long-term memory on, it
also saves and searches the user's memories by rule (app/agent/offline_memory.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolCall,
    ToolMessage,
    UsageMetadata,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from app.agent.approval import REJECTED_ADVICE
from app.agent.offline_memory import memory_step
from app.agent.sample_data import THREAT_TYPES
from app.agent.tool_calls import EDITED_PREFIX
from app.agent.tools import THREAT_TOOL, USER_TOOL, parse_fields

_IP = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
# Words that ask for the person behind a threat, so the threat's source IP is looked up.
_PERSON_WORDS = ("who", "user", "committed", "responsible", "behind", "attacker", "person", "whose")
_SYNONYMS = {
    "bruteforce": "BruteForce",
    "denialofservice": "DDoS",
    "sqlinjection": "SQLInjection",
    "sqli": "SQLInjection",
    "portscan": "PortScan",
    "insider": "InsiderThreat",
    "virus": "Malware",
}
# Follow-up fields, answered from a user found earlier in the thread.
_USER_FIELDS = {
    "ip_address": ("ip", "address"),
    "email": ("email", "mail"),
    "department": ("department", "team"),
    "location": ("location", "where", "based", "located"),
    "user_name": ("name", "who"),
}
_THREAT_FIELDS = {
    "event_timestamp": ("when", "time", "date"),
    "protocol": ("protocol",),
    "detection_tool": ("detected", "detect", "tool"),
    "threat_id": ("id",),
}
_LABELS = {
    "ip_address": "IP address",
    "email": "email",
    "department": "department",
    "location": "location",
    "user_name": "name",
    "event_timestamp": "time",
    "protocol": "protocol",
    "detection_tool": "detection tool",
    "threat_id": "threat id",
}


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    parts = [p if isinstance(p, str) else str(p.get("text", "")) for p in content]
    return "".join(parts)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def find_threat_type(question: str) -> str | None:
    squashed = re.sub(r"[^a-z0-9]", "", question.lower())
    for kind in THREAT_TYPES:
        if kind.lower() in squashed:
            return kind
    for alias, kind in _SYNONYMS.items():
        if alias in squashed:
            return kind
    return None


@dataclass
class Decision:
    """Either a tool call or a final answer."""

    text: str = ""
    tool_call: ToolCall | None = None


@dataclass
class _Memory:
    """Tool results found in the conversation, newest first."""

    threats: list[dict[str, str]] = field(default_factory=list)
    users: list[dict[str, str]] = field(default_factory=list)


def _result_text(message: ToolMessage) -> str:
    """A tool's result without the notes of a reviewer's edit or rejection (app/agent/approval.py)."""
    text = _text(message)
    if text.startswith(EDITED_PREFIX):
        return text.partition("\n")[2]
    return text.removesuffix(REJECTED_ADVICE)


def _tool_results(messages: Sequence[BaseMessage]) -> _Memory:
    memory = _Memory()
    for message in reversed(messages):
        if not isinstance(message, ToolMessage):
            continue
        fields = parse_fields(_result_text(message))
        if message.name == THREAT_TOOL and "source_ip" in fields:
            memory.threats.append(fields)
        elif message.name == USER_TOOL and "ip_address" in fields:
            memory.users.append(fields)
    return memory


def _call(name: str, args: dict[str, str], seed: str) -> Decision:
    # Deterministic ids: the same conversation always produces the same tool call ids.
    digest = hashlib.sha256(f"{seed}|{name}|{json.dumps(args, sort_keys=True)}".encode()).hexdigest()
    return Decision(tool_call=ToolCall(name=name, args=args, id=f"call_{digest[:24]}"))


def _describe_threat(threat: dict[str, str]) -> str:
    return (
        f"threat {threat.get('threat_id')} on {threat.get('event_timestamp')}"
        f" from source IP {threat.get('source_ip')} over {threat.get('protocol')},"
        f" detected by {threat.get('detection_tool')}"
    )


def _describe_user(user: dict[str, str]) -> str:
    return (
        f"{user.get('user_name')} ({user.get('department')} department,"
        f" {user.get('email')}, {user.get('location')})"
    )


def _answer_turn(question: str, turn: Sequence[BaseMessage]) -> str:
    """Write the final answer from the tool results of the current turn. A result that is not a
    record ("No user has the IP address ...", "get_user_info failed: ...") is an answer too: it
    is told to the user, never retried."""
    found = _tool_results(turn)
    unanswered = {
        m.name: _result_text(m)
        for m in turn
        if isinstance(m, ToolMessage) and not parse_fields(_result_text(m))
    }
    kind = find_threat_type(question)
    if found.threats and found.users:
        threat, user = found.threats[0], found.users[0]
        return (
            f"The latest {threat.get('threat_type')} threat was committed by {_describe_user(user)}."
            f" It was {_describe_threat(threat)}."
        )
    if found.threats:
        threat = found.threats[0]
        answer = f"The latest {threat.get('threat_type')} threat was {_describe_threat(threat)}."
        if USER_TOOL in unanswered:
            answer += f" I could not tell who is behind it: {unanswered[USER_TOOL]}"
        return answer
    if found.users:
        user = found.users[0]
        return f"The IP address {user.get('ip_address')} belongs to {_describe_user(user)}."
    if unanswered:
        return " ".join(unanswered.values())
    return f"I could not find anything about {kind or 'that'}."


def _answer_from_memory(question: str, history: Sequence[BaseMessage]) -> str | None:
    """Answer a follow-up about a user or threat already discussed on this thread."""
    words = set(_words(question))
    memory = _tool_results(history)
    user_fields = [f for f, keys in _USER_FIELDS.items() if words & set(keys)]
    threat_fields = [f for f, keys in _THREAT_FIELDS.items() if words & set(keys)]
    if "ip_address" in user_fields and "user_name" in user_fields:
        user_fields.remove("user_name")
    if not user_fields and not threat_fields:
        return None
    if user_fields and memory.users:
        user = memory.users[0]
        values = ", ".join(f"{_LABELS[f]} is {user.get(f)}" for f in user_fields)
        return f"Their {values} ({user.get('user_name')})."
    if threat_fields and memory.threats:
        threat = memory.threats[0]
        values = ", ".join(f"{_LABELS[f]} is {threat.get(f)}" for f in threat_fields)
        return f"For the latest {threat.get('threat_type')} threat we discussed, the {values}."
    return (
        "I don't know who you mean: nobody has come up in this conversation yet."
        " Ask me about a threat first, for example 'Who committed the latest malware threat?'"
    )


_HELP = (
    "I can look up the latest cyber threat of a type ({types}) and the user behind it,"
    " or the user at an IP address. Try 'Who committed the latest malware threat?'"
)


def decide(messages: Sequence[BaseMessage], tool_names: set[str]) -> Decision:
    """The model's whole policy: the next step given the conversation so far."""
    last_human = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1)
    if last_human < 0:
        return Decision(text=_HELP.format(types=", ".join(THREAT_TYPES)))
    question = _text(messages[last_human])
    turn = messages[last_human + 1 :]
    seed = f"{last_human}|{question}"
    words = set(_words(question))
    kind = find_threat_type(question)
    ip = _IP.search(question)
    step = memory_step(question, turn, tool_names, domain_question=bool(kind or ip))
    if step is not None:
        return Decision(text=step.answer) if step.tool is None else _call(step.tool, step.args or {}, seed)

    if turn:  # tool results of this turn are in: call the next tool, or answer
        found = _tool_results(turn)
        wants_person = bool(words & set(_PERSON_WORDS))
        # One lookup per tool and turn: whatever it answered ("no user has ...", a failure) stands.
        asked = {m.name for m in turn if isinstance(m, ToolMessage)}
        if found.threats and not found.users and wants_person and USER_TOOL in tool_names - asked:
            return _call(USER_TOOL, {"source_ip": found.threats[0]["source_ip"]}, seed)
        return Decision(text=_answer_turn(question, turn))

    if kind and THREAT_TOOL in tool_names:
        return _call(THREAT_TOOL, {"threat_type": kind}, seed)
    if ip and USER_TOOL in tool_names:
        return _call(USER_TOOL, {"source_ip": ip.group(0)}, seed)
    remembered = _answer_from_memory(question, messages[:last_human])
    if remembered is not None:
        return Decision(text=remembered)
    return Decision(text=_HELP.format(types=", ".join(THREAT_TYPES)))


def _usage(messages: Sequence[BaseMessage], decision: Decision) -> UsageMetadata:
    """Word counts standing in for tokens, so usage metrics move as with a real provider."""
    seen = sum(len(_text(m).split()) for m in messages)
    written = (
        len(decision.text.split())
        if decision.tool_call is None
        else len(json.dumps(decision.tool_call["args"]).split())
    )
    return UsageMetadata(input_tokens=seen, output_tokens=written, total_tokens=seen + written)


class OfflineChatModel(BaseChatModel):
    """Deterministic rule-based chat model with tool calling and token streaming (see module doc)."""

    token_delay_seconds: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "offline-rules"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Any | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _decide(self, messages: Sequence[BaseMessage], kwargs: dict[str, Any]) -> Decision:
        """The next step, for every entry point (invoke, stream, sync and async) alike."""
        return decide(messages, {t["function"]["name"] for t in kwargs.get("tools", [])})

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        decision = self._decide(messages, kwargs)
        usage = _usage(messages, decision)
        if decision.tool_call is not None:
            message = AIMessage(content="", tool_calls=[decision.tool_call], usage_metadata=usage)
        else:
            message = AIMessage(content=decision.text, usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        result = self._generate(messages, stop, None, **kwargs)
        if self.token_delay_seconds:
            # Take as long as streaming the same answer would.
            tokens = len(self._chunks(self._decide(messages, kwargs)))
            await asyncio.sleep(self.token_delay_seconds * tokens)
        return result

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        decision = self._decide(messages, kwargs)
        for chunk in self._chunks(decision, _usage(messages, decision)):
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        decision = self._decide(messages, kwargs)
        for chunk in self._chunks(decision, _usage(messages, decision)):
            if self.token_delay_seconds:
                await asyncio.sleep(self.token_delay_seconds)
            if run_manager is not None:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    @staticmethod
    def _chunks(decision: Decision, usage: UsageMetadata | None = None) -> list[ChatGenerationChunk]:
        if decision.tool_call is not None:
            call = decision.tool_call
            return [
                ChatGenerationChunk(
                    message=AIMessageChunk(
                        content="",
                        usage_metadata=usage,
                        tool_call_chunks=[
                            {
                                "name": call["name"],
                                "args": json.dumps(call["args"]),
                                "id": call["id"],
                                "index": 0,
                            }
                        ],
                    )
                )
            ]
        pieces = re.findall(r"\S+\s*", decision.text) or [decision.text]
        last = len(pieces) - 1
        return [
            ChatGenerationChunk(
                message=AIMessageChunk(content=p, usage_metadata=usage if i == last else None)
            )
            for i, p in enumerate(pieces)
        ]

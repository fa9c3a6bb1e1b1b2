"""The offline model's long-term memory rules (app/agent/offline_model.py), by rule, not by
understanding: "remember (that) X" saves X with `manage_memory`; "forget (that) X" searches for X
and deletes the best match; a question about the user ("... I/my/me ...?") searches with
`search_memory` and answers from the best match, turned to the second person."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.messages import BaseMessage, ToolMessage

from app.agent.memory_tools import MANAGE_TOOL, SEARCH_TOOL

_REMEMBER = re.compile(r"^\s*(?:please\s+)?remember\s+(?:that\s+)?(?P<fact>.+?)\s*$", re.I | re.S)
_FORGET = re.compile(r"^\s*(?:please\s+)?forget\s+(?:that\s+)?(?P<fact>.+?)\s*$", re.I | re.S)
_SELF_WORDS = frozenset({"i", "my", "me", "mine", "myself"})
_QUESTION_WORDS = frozenset(
    {"what", "which", "who", "whom", "where", "when", "how", "do", "does", "am", "is"}
)
_FOUND = re.compile(r"^- \[(?P<key>[^\]]+)\] (?P<content>.*?)(?: \(similarity (?P<score>[-0-9.]+)\))?$", re.M)
# Below this similarity a memory is not taken as the answer (the recall's default threshold).
_MIN_SIMILARITY = 0.2
_SECOND_PERSON = {
    "i": "you",
    "me": "you",
    "my": "your",
    "mine": "yours",
    "myself": "yourself",
    "am": "are",
    "i'm": "you're",
}


@dataclass(frozen=True)
class MemoryStep:
    """A memory tool to call (with its arguments) or the answer to give."""

    answer: str = ""
    tool: str | None = None
    args: dict[str, str] | None = None


def _second_person(text: str) -> str:
    return re.sub(
        r"\b(i'm|i|me|my|mine|myself|am)\b",
        lambda m: _SECOND_PERSON[m.group(0).lower()],
        text,
        flags=re.I,
    )


def _found(result: str) -> list[tuple[str, str]]:
    return [
        (m.group("key"), m.group("content"))
        for m in _FOUND.finditer(result)
        if m.group("score") is None or float(m.group("score")) >= _MIN_SIMILARITY
    ]


def asks_about_self(question: str) -> bool:
    words = re.findall(r"[a-z']+", question.lower())
    asks = question.strip().endswith("?") or (bool(words) and words[0] in _QUESTION_WORDS)
    return asks and bool(_SELF_WORDS & set(words))


def memory_step(
    question: str, turn: Sequence[BaseMessage], tools: set[str], *, domain_question: bool
) -> MemoryStep | None:
    """The next step of a memory request, or None when `question` is not one (or the tools are
    absent). A `domain_question` (a threat or an IP in it) is never taken as a question about the
    user, whatever pronouns it has."""
    if MANAGE_TOOL not in tools or SEARCH_TOOL not in tools:
        return None
    results = [m for m in turn if isinstance(m, ToolMessage)]
    last = results[-1] if results else None
    last_text = str(last.content) if last is not None else ""
    remember = _REMEMBER.match(question)
    if remember:
        if last is None:
            return MemoryStep(tool=MANAGE_TOOL, args={"content": remember.group("fact")})
        if last.status == "error" or not last_text.startswith("Created"):
            return MemoryStep(answer=f"I could not save that: {last_text}")
        return MemoryStep(answer=f"Got it, I'll remember that {_second_person(remember.group('fact'))}")
    forget = _FORGET.match(question)
    if forget:
        if last is None:
            return MemoryStep(tool=SEARCH_TOOL, args={"query": forget.group("fact")})
        if last.name == SEARCH_TOOL:
            found = _found(last_text)
            if not found:
                return MemoryStep(answer="I had nothing saved about that.")
            return MemoryStep(tool=MANAGE_TOOL, args={"action": "delete", "id": found[0][0]})
        return MemoryStep(answer="Done, I have forgotten it.")
    if not domain_question and asks_about_self(question):
        if last is None:
            return MemoryStep(tool=SEARCH_TOOL, args={"query": question})
        found = _found(last_text)
        if not found:
            return MemoryStep(answer="I don't have anything saved about you that answers that.")
        return MemoryStep(answer=f"From what you told me before: {_second_person(found[0][1])}")
    return None

"""Turns that pause on an interrupt, and the turns that answer them.

A turn that pauses (a tool call awaiting approval, a graph's own `interrupt()`) is saved like
any other, with its pending interrupts recorded on the thread. What may run next is decided
here, against the thread row its run claimed (so two resumes never both answer one interrupt):
a resume must answer an interrupt that is pending; a new message on a waiting thread is refused
unless it says to leave the interrupt unanswered (or forks from another checkpoint).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langgraph.types import Command

from app.agent.approval import Decision, decisions_of, pending_calls
from app.errors import InvalidInput, NotInterrupted, ThreadInterrupted
from app.memory.checkpointer import Paused
from app.memory.threads import ThreadRecord
from app.services.run_model import TurnRequest
from app.services.step_events import jsonable


def recorded(interrupts: Sequence[Paused]) -> list[dict[str, Any]]:
    """The interrupts as the thread row and every transport show them (`id`, `value`, and the
    task and node that paused)."""
    return [
        {"id": p.interrupt.id, "value": jsonable(p.interrupt.value), "task_id": p.task_id, "node": p.node}
        for p in interrupts
    ]


def check_continuation(request: TurnRequest, thread: ThreadRecord) -> None:
    """Refuse a new message that would silently leave the thread's pending interrupt behind."""
    if (
        request.resume is None
        and thread.interrupts
        and request.checkpoint_id is None
        and request.state_update is None
        and not request.abandon_interrupt
    ):
        raise ThreadInterrupted(request.thread_id)


def _answer(target: Mapping[str, Any], value: Any) -> tuple[Any, list[Decision]]:
    """The value the graph resumes with: an approval's decisions in one shape (LangChain's
    middleware's), anything else as sent."""
    calls = pending_calls(target.get("value"))
    if calls is None:
        return value, []
    try:
        decisions = decisions_of(value, calls)
    except ValueError as exc:
        raise InvalidInput(f"The resume does not answer the pending approval: {exc}") from None
    return {"decisions": [d.as_json() for d in decisions]}, decisions


def resume_command(request: TurnRequest, thread: ThreadRecord) -> tuple[Command[Any], list[Decision]]:
    """The command that resumes the thread's paused turn with the request's answer, and the
    approval decisions it carries (for metrics)."""
    assert request.resume is not None
    pending = thread.interrupts or []
    wanted = request.resume.interrupt_id
    by_id = {str(p.get("id")): p for p in pending}
    if not pending or (wanted is not None and wanted not in by_id):
        raise NotInterrupted(request.thread_id, wanted)
    value = request.resume.value
    if wanted is None and len(pending) > 1:
        # Several interrupts (parallel nodes): the answer must map each one's id to its value.
        if not isinstance(value, Mapping) or not set(value) <= set(by_id):
            raise InvalidInput(
                f"{len(pending)} interrupts are pending: name one with `interrupt_id`, or resume with"
                " an object mapping interrupt ids to their values."
            )
        answers: dict[str, Any] = {}
        decisions: list[Decision] = []
        for key, answer in value.items():
            answers[key], given = _answer(by_id[key], answer)
            decisions.extend(given)
        return Command(resume=answers), decisions
    target = by_id[wanted] if wanted is not None else pending[0]
    answer, decisions = _answer(target, value)
    return Command(resume={str(target["id"]): answer}), decisions

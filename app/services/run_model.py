"""The one typed run model every transport maps from: what a turn asks for (`TurnRequest`),
the run resource (`Run`, shaped on the LangGraph Agent Protocol's Run), and a completed turn's
result (`TurnResult`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from app.memory.runs import RunQuery as RunQuery  # the query of a page of runs, for every transport
from app.memory.runs import RunRecord
from app.memory.transcript import StoredMessage
from app.settings import MultitaskStrategy

RunStatus = Literal["pending", "running", "success", "error", "timeout", "interrupted"]
RUN_STATUSES: tuple[RunStatus, ...] = ("pending", "running", "success", "error", "timeout", "interrupted")

# The Agent Protocol names assistants by a UUID derived from the graph's name (as LangGraph's
# own server does), so an assistant id is stable across restarts and replicas.
_GRAPH_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
BUILTIN_GRAPH = "agent"


def assistant_id_of(graph_name: str) -> str:
    return str(uuid.uuid5(_GRAPH_NAMESPACE, graph_name))


BUILTIN_ASSISTANT_ID = assistant_id_of(BUILTIN_GRAPH)


@dataclass(frozen=True)
class StateUpdate:
    """A change to a thread's state written as a node would (the protocol's `update_state`):
    no model runs; its messages join the transcript like a turn's."""

    values: dict[str, Any]
    as_node: str | None = None


@dataclass(frozen=True)
class Resume:
    """The answer to the interrupt a thread's last turn paused on (an approval's decisions, or
    whatever value a graph's own `interrupt()` expects)."""

    value: Any
    interrupt_id: str | None = None  # the interrupt it answers (None: the one pending)

    def stored(self) -> dict[str, Any]:
        return {"value": self.value, "interrupt_id": self.interrupt_id}


@dataclass(frozen=True)
class TurnRequest:
    owner: str
    thread_id: str
    messages: list[tuple[str, str]]  # (role, content)
    checkpoint_id: str | None = None
    idempotency_key: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    multitask_strategy: MultitaskStrategy | None = None  # None: the MULTITASK_STRATEGY setting
    background: bool = False
    stream: bool = False  # someone reads the events live: token and step events are produced
    assistant_id: str = BUILTIN_ASSISTANT_ID
    after_seconds: float | None = None  # start no earlier than this (a scheduled, queued run)
    regenerates: str | None = None  # the turn (checkpoint) whose question this run asks again
    input_ids: tuple[str, ...] | None = None  # the ids of `messages` (a question asked again)
    state_update: StateUpdate | None = None  # instead of running the graph, update its state
    create_thread: bool = True  # False: a thread that does not exist is 404, not created
    resume: Resume | None = None  # continue the paused turn (then `messages` is empty)
    # A new message on a thread waiting for a decision leaves the pending interrupt unanswered
    # (without it the message is refused: 409 thread_interrupted).
    abandon_interrupt: bool = False

    def stored_input(self) -> dict[str, Any]:
        """What a queued run needs to run later, in any process."""
        stored: dict[str, Any] = {
            "messages": [list(m) for m in self.messages],
            "checkpoint_id": self.checkpoint_id,
        }
        if self.resume is not None:
            stored["resume"] = self.resume.stored()
        if self.abandon_interrupt:
            stored["abandon_interrupt"] = True
        return stored

    @staticmethod
    def resume_of(stored: dict[str, Any] | None) -> Resume | None:
        found = (stored or {}).get("resume")
        if not isinstance(found, dict):
            return None
        return Resume(value=found.get("value"), interrupt_id=found.get("interrupt_id"))

    def with_graph(self, graph: str) -> dict[str, Any]:
        return {**self.stored_input(), "graph": graph}

    @staticmethod
    def messages_of(stored: dict[str, Any] | None) -> list[tuple[str, str]]:
        return [(str(role), str(content)) for role, content in (stored or {}).get("messages", [])]


@dataclass(frozen=True)
class RunError:
    code: str
    message: str


@dataclass(frozen=True)
class Run:
    run_id: str
    thread_id: str
    assistant_id: str
    status: RunStatus
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, Any]
    multitask_strategy: str
    error: RunError | None
    checkpoint_id: str | None

    @property
    def active(self) -> bool:
        return self.status in ("pending", "running")

    @classmethod
    def of(cls, record: RunRecord) -> Run:
        status: RunStatus = next((s for s in RUN_STATUSES if s == record.status), "error")
        error = (
            RunError(code=record.error_code, message=record.error_message or record.error_code)
            if record.error_code is not None
            else None
        )
        return cls(
            run_id=str(record.run_id),
            thread_id=record.thread_id,
            assistant_id=record.assistant_id or BUILTIN_ASSISTANT_ID,
            status=status,
            created_at=record.created_at,
            updated_at=record.updated_at,
            metadata=record.metadata,
            multitask_strategy=record.multitask_strategy,
            error=error,
            checkpoint_id=record.checkpoint_id,
        )


@dataclass(frozen=True)
class TurnResult:
    """A completed turn: its new messages (input, tool calls, tool results, answer) in order."""

    thread_id: str
    run_id: str
    checkpoint_id: str
    messages: tuple[StoredMessage, ...]
    # Where the conversation it completed ends: (thread_key, branch, end); read as one range.
    conversation_end: tuple[uuid.UUID, int, int] | None = None
    # The interrupts the turn paused on ({"id", "value"}): the thread waits for a resume.
    interrupts: tuple[dict[str, Any], ...] = ()

"""Request and response bodies; their docstrings and examples become the OpenAPI schema."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.agent.messages import stored_to_json
from app.api.deps import THREAD_ID_PATTERN
from app.errors import InvalidInput
from app.services.run_model import Run, RunStatus, TurnResult
from app.services.storable import check_servable_json, clip_json, unstorable_reason
from app.settings import MultitaskStrategy


def _storable(value: str | None) -> str | None:
    reason = None if value is None else unstorable_reason(value)
    if reason is not None:
        raise ValueError(reason)
    return value


def servable_metadata(value: dict[str, Any]) -> dict[str, Any]:
    """For a run's metadata (stored on the run and listed with it): what cannot be stored or
    served back is refused before the run exists."""
    try:
        check_servable_json(value, where="metadata")
    except InvalidInput as exc:
        raise ValueError(exc.message) from None
    return value


class ErrorDetail(BaseModel):
    code: str = Field(examples=["thread_busy"])
    message: str = Field(examples=["Thread 't1' is running another turn; retry after it finishes."])
    details: dict[str, Any] | None = None


class ErrorBody(BaseModel):
    """Every error response has this body."""

    error: ErrorDetail


class ThreadCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"thread_id": "t1", "title": "Malware triage", "metadata": {"team": "soc"}}]
        },
    )

    thread_id: str | None = Field(
        default=None, pattern=THREAD_ID_PATTERN, description="Omit to get a generated id."
    )
    title: str | None = Field(default=None, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)
    ttl_seconds: int | None = Field(
        default=None,
        ge=60,
        le=10 * 365 * 86400,
        description="Delete the thread after this long without activity (default: THREAD_TTL_SECONDS).",
    )

    _check_title = field_validator("title")(_storable)


class ThreadPatch(BaseModel):
    """Fields to change. `title: null` clears the title; `metadata` keys are merged in."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"title": "Renamed", "metadata": {"priority": "high"}}]},
    )

    title: str | None = Field(default=None, max_length=200)
    metadata: dict[str, Any] | None = None
    ttl_seconds: int | None = Field(
        default=None, ge=60, le=10 * 365 * 86400, description="`null` returns to the default TTL."
    )

    _check_title = field_validator("title")(_storable)


class InterruptOut(BaseModel):
    """A turn's pause for a person. For a tool call awaiting approval (TOOL_APPROVAL) `value`
    is `{"action_requests": [{"name", "args", "id", "description"}], "review_configs": [...]}`;
    for a graph's own `interrupt()` it is whatever the graph raised."""

    id: str
    value: Any
    node: str | None = None


class ThreadOut(BaseModel):
    thread_id: str = Field(examples=["t1"])
    title: str | None
    metadata: dict[str, Any]
    status: Literal["idle", "busy", "interrupted"] = Field(
        description="busy: a turn runs; interrupted: a paused turn waits for a decision (see `interrupts`)."
    )
    interrupts: list[InterruptOut] = Field(
        default_factory=list, description="What the paused turn waits on (an approval's pending calls)."
    )
    message_count: int
    turn_count: int
    head_checkpoint_id: str | None
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime
    ttl_seconds: int | None = Field(description="The thread's own TTL; null: the service default.")
    expires_at: datetime | None = Field(description="When retention deletes it if idle; null: never.")
    compacted_at: datetime | None = Field(
        description="When older checkpoints were compacted away (time travel starts at the oldest kept)."
    )


class ThreadList(BaseModel):
    threads: list[ThreadOut]
    next_cursor: str | None = Field(description="Pass as `before` for the next page; null at the end.")


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant", "system"] = "user"
    content: str

    _check_content = field_validator("content")(_storable)


class TurnIn(BaseModel):
    """One turn: either `content` (a user message) or `messages` (role/content list)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"content": "Who committed the latest malware threat?"},
                {"messages": [{"role": "user", "content": "What was their IP address?"}]},
                {"content": "And the latest phishing threat?", "checkpoint_id": "1f0c3a3e-...-..."},
            ]
        },
    )

    content: str | None = None
    messages: list[MessageIn] | None = None
    checkpoint_id: str | None = Field(
        default=None,
        max_length=64,
        description="Fork: run this turn from that checkpoint of the thread instead of its head.",
    )
    background: bool = Field(
        default=False,
        description="Answer 202 with the run at once; the turn runs in the service (join or stream it).",
    )
    multitask_strategy: MultitaskStrategy | None = Field(
        default=None,
        description="If the thread already has a run: reject (409), enqueue, interrupt or rollback"
        " (default: MULTITASK_STRATEGY).",
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Stored on the run.")
    resume: Any = Field(
        default=None,
        description="Answer the interrupt the thread's last turn paused on, instead of a message:"
        ' {"decision": "approve"}, {"decision": "edit", "args": {...}}, {"decision": "reject",'
        ' "reason": "..."}, {"decision": "respond", "text": "..."} (or `decisions`, one per pending'
        " call); for a graph's own interrupt, the value it expects.",
    )
    interrupt_id: str | None = Field(
        default=None,
        max_length=128,
        description="With `resume`: the interrupt it answers (409 if it is not pending).",
    )
    abandon_interrupt: bool = Field(
        default=False,
        description="Send the message although the thread waits for a decision, leaving it unanswered"
        " (without it such a message is 409 thread_interrupted).",
    )

    _check_content = field_validator("content", "checkpoint_id")(_storable)
    _check_metadata = field_validator("metadata")(servable_metadata)


class ToolCallOut(BaseModel):
    id: str
    name: str
    args: dict[str, Any]


class MessageOut(BaseModel):
    id: str
    role: Literal["user", "assistant", "tool", "system"]
    content: str
    run_id: str | None = None
    tool_calls: list[ToolCallOut] | None = None
    tool_call_id: str | None = None
    name: str | None = Field(default=None, description="The tool's name, on tool results.")
    created_at: datetime | None = None


class TurnOut(BaseModel):
    """The turn's new messages (the input, tool calls, tool results, the answer) in order."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "thread_id": "t1",
                    "run_id": "6f1c0e0e-9d0a-4a43-9a53-0c1f7f6c2d11",
                    "checkpoint_id": "1f0c3a3e-7b51-6d2c-8005-2b6c1c7f9e10",
                    "messages": [
                        {"id": "m1", "role": "user", "content": "What was their IP address?"},
                        {
                            "id": "m2",
                            "role": "assistant",
                            "content": "Their IP address is 10.4.17.23 (Alice Smith).",
                        },
                    ],
                }
            ]
        }
    )

    thread_id: str
    run_id: str
    checkpoint_id: str
    messages: list[MessageOut]
    interrupts: list[InterruptOut] = Field(
        default_factory=list,
        description="Set when the turn paused for a decision (the thread is `interrupted`): resume it"
        " with `resume`.",
    )


def turn_json(result: TurnResult) -> dict[str, Any]:
    """The TurnOut body of a result, built directly: the hottest response of the service skips
    a validation round (tests check it against TurnOut)."""
    return {
        "thread_id": result.thread_id,
        "run_id": result.run_id,
        "checkpoint_id": result.checkpoint_id,
        "messages": [stored_to_json(m) for m in result.messages],
        "interrupts": [interrupt_json(i) for i in result.interrupts],
    }


def interrupt_json(recorded: dict[str, Any]) -> dict[str, Any]:
    """An InterruptOut body from a recorded interrupt."""
    return {"id": recorded.get("id"), "value": recorded.get("value"), "node": recorded.get("node")}


class RunErrorOut(BaseModel):
    code: str = Field(examples=["cancelled"])
    message: str


class RunOut(BaseModel):
    """A run (the Agent Protocol's Run, plus `error` and `checkpoint_id`)."""

    run_id: str
    thread_id: str
    assistant_id: str
    status: RunStatus
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, Any]
    multitask_strategy: str
    error: RunErrorOut | None = Field(default=None, description="Why it failed or was cancelled.")
    checkpoint_id: str | None = Field(default=None, description="The checkpoint a successful run made.")

    @classmethod
    def of(cls, run: Run) -> RunOut:
        return cls(
            run_id=run.run_id,
            thread_id=run.thread_id,
            assistant_id=run.assistant_id,
            status=run.status,
            created_at=run.created_at,
            updated_at=run.updated_at,
            metadata=clip_json(run.metadata),
            multitask_strategy=run.multitask_strategy,
            error=RunErrorOut(code=run.error.code, message=run.error.message) if run.error else None,
            checkpoint_id=run.checkpoint_id,
        )


class RunCancelMany(BaseModel):
    """Runs to cancel: by id, and/or every pending or running run of a thread."""

    model_config = ConfigDict(extra="forbid")

    run_ids: list[str] | None = Field(default=None, max_length=1000)
    thread_id: str | None = Field(default=None, pattern=THREAD_ID_PATTERN)
    status: Literal["pending", "running", "all"] | None = Field(
        default=None, description="Accepted for the Agent Protocol; active runs are cancelled either way."
    )


class RunCancelled(BaseModel):
    cancelled: list[str] = Field(description="The runs that were pending or running and are now interrupted.")


class MessagePage(BaseModel):
    messages: list[MessageOut] = Field(description="Oldest first within the page.")
    next_cursor: str | None = Field(description="Pass as `before` for older messages; null at the start.")


class CheckpointOut(BaseModel):
    checkpoint_id: str
    parent_checkpoint_id: str | None
    created_at: datetime | None
    step: int | None
    source: str | None
    run_id: str | None
    message_count: int | None
    is_head: bool = Field(description="The thread's current head (where the next turn starts).")


class HistoryPage(BaseModel):
    checkpoints: list[CheckpointOut] = Field(description="Newest first.")
    next_cursor: str | None
    complete: bool = Field(
        description="False when retention compacted older checkpoints away (keep_latest): the transcript"
        " is whole, but time travel can only start from the checkpoints listed."
    )


class StateOut(BaseModel):
    checkpoint: CheckpointOut
    messages: list[MessageOut]
    next: list[str] = Field(description="Graph nodes that would run next (empty: the turn is complete).")

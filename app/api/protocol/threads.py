"""The Agent Protocol's thread routes, over the same thread registry and transcript as the
native API: a thread's `values.messages` is its whole conversation, one range of rows."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import THREAD_ID_PATTERN, HostedStateDep, LimitsDep, OwnerDep, RunsDep, ThreadsDep
from app.api.protocol.shapes import (
    checkpoint_ref,
    empty_state,
    new_thread_id,
    state_json,
    thread_json,
    values_of,
    with_interrupts,
)
from app.api.protocol.turn_states import input_state_json, split, turn_state_json, turn_states
from app.errors import InvalidInput, ThreadExists
from app.memory.threads import ThreadQuery, ThreadRecord
from app.services.hosted_state import HostedState
from app.services.run_model import StateUpdate, TurnRequest
from app.services.storable import check_metadata, check_servable_json
from app.services.threads import ThreadService

router = APIRouter()
ThreadId = Annotated[str, Path(pattern=THREAD_ID_PATTERN)]


class ThreadCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    thread_id: str | None = Field(default=None, pattern=THREAD_ID_PATTERN)
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"


class ThreadPatch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, Any] = Field(default_factory=dict)


class ThreadSearch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, Any] = Field(default_factory=dict)
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=100_000)
    sort_by: Literal["thread_id", "created_at", "updated_at"] = "updated_at"
    sort_order: Literal["asc", "desc"] = "desc"


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(default=10, ge=1, le=1000)
    before: str | dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None


@router.post("/threads")
async def create_thread(
    body: ThreadCreate, owner: OwnerDep, threads: ThreadsDep, limits: LimitsDep, hosted: HostedStateDep
) -> dict[str, Any]:
    check_metadata(body.metadata, limits)
    thread_id = body.thread_id or new_thread_id()
    try:
        record = await threads.create(owner, thread_id, title=None, metadata=body.metadata)
    except ThreadExists:
        if body.if_exists != "do_nothing":
            raise
        record = await threads.get(owner, thread_id)
    return thread_json(record, await thread_values(record, threads, hosted))


@router.post("/threads/search")
async def search_threads(
    body: ThreadSearch, owner: OwnerDep, threads: ThreadsDep, limits: LimitsDep, hosted: HostedStateDep
) -> list[dict[str, Any]]:
    """Threads matching a metadata filter, with their values (two round trips for a page)."""
    check_servable_json(body.metadata, where="metadata")  # a filter, but sent to PostgreSQL
    if body.status == "error":
        return []  # a failed turn saves nothing here: a thread is never left in error
    query = ThreadQuery(
        metadata=body.metadata,
        status=body.status,
        limit=min(body.limit, limits.max_page_size),
        offset=body.offset,
        order_by=body.sort_by,
        descending=body.sort_order == "desc",
    )
    found = await threads.search(owner, query)
    return [
        thread_json(record, await hosted.values(record) or values_of(messages)) for record, messages in found
    ]


@router.post("/threads/{thread_id}/copy")
async def copy_thread(
    thread_id: ThreadId, owner: OwnerDep, threads: ThreadsDep, hosted: HostedStateDep
) -> dict[str, Any]:
    """A new thread with this one's whole history (every branch and checkpoint)."""
    record = await threads.copy(owner, thread_id, new_thread_id())
    return thread_json(record, await thread_values(record, threads, hosted))


@router.get("/threads/{thread_id}")
async def get_thread(
    thread_id: ThreadId, owner: OwnerDep, threads: ThreadsDep, hosted: HostedStateDep
) -> dict[str, Any]:
    record = await threads.get(owner, thread_id)
    return thread_json(record, await thread_values(record, threads, hosted))


@router.patch("/threads/{thread_id}")
async def update_thread(
    thread_id: ThreadId,
    body: ThreadPatch,
    owner: OwnerDep,
    threads: ThreadsDep,
    limits: LimitsDep,
    hosted: HostedStateDep,
) -> dict[str, Any]:
    check_metadata(body.metadata, limits)
    record = await threads.update(owner, thread_id, title=None, set_title=False, metadata=body.metadata)
    return thread_json(record, await thread_values(record, threads, hosted))


@router.delete("/threads/{thread_id}", status_code=204)
async def delete_thread(thread_id: ThreadId, owner: OwnerDep, threads: ThreadsDep) -> Response:
    await threads.delete(owner, thread_id)
    return Response(status_code=204)


class StateUpdateBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    values: dict[str, Any] | list[Any] | None = None
    as_node: str | None = Field(default=None, max_length=128)
    checkpoint: dict[str, Any] | None = None
    checkpoint_id: str | None = Field(default=None, max_length=64)


@router.post("/threads/{thread_id}/state")
async def update_state(
    thread_id: ThreadId, body: StateUpdateBody, owner: OwnerDep, threads: ThreadsDep, runs: RunsDep
) -> dict[str, Any]:
    """Change the thread's state as a node would, without running the model; it is committed
    like a turn (one turn at a time still holds), and its messages join the transcript."""
    record = await threads.get(owner, thread_id)
    if not isinstance(body.values, dict):
        raise InvalidInput("`values` must be an object of state keys (a list of updates is not supported).")
    check_servable_json(body.values, where="values")
    fork = body.checkpoint_id or (body.checkpoint or {}).get("checkpoint_id")
    handle = await runs.submit(
        TurnRequest(
            owner=owner,
            thread_id=thread_id,
            messages=[],
            checkpoint_id=split(fork)[0] if isinstance(fork, str) else None,
            assistant_id=record.graph_id or runs.catalog.default.name,
            state_update=StateUpdate(values=body.values, as_node=body.as_node),
        )
    )
    result = await handle.result()
    return {"checkpoint": checkpoint_ref(thread_id, result.checkpoint_id)}


@router.get("/threads/{thread_id}/state")
async def get_state(
    thread_id: ThreadId, owner: OwnerDep, threads: ThreadsDep, hosted: HostedStateDep
) -> dict[str, Any]:
    return await _state(thread_id, owner, threads, hosted, None)


@router.get("/threads/{thread_id}/state/{checkpoint_id}")
async def get_state_at(
    thread_id: ThreadId,
    checkpoint_id: Annotated[str, Path(max_length=64)],
    owner: OwnerDep,
    threads: ThreadsDep,
    hosted: HostedStateDep,
) -> dict[str, Any]:
    return await _state(thread_id, owner, threads, hosted, checkpoint_id)


async def _state(
    thread_id: str, owner: str, threads: ThreadService, hosted: HostedState, checkpoint_id: str | None
) -> dict[str, Any]:
    record = await threads.get(owner, thread_id)
    wanted = checkpoint_id or record.head_checkpoint_id
    if wanted is None:
        return empty_state(thread_id)  # a new thread: no checkpoint yet
    if hosted.graph_of(record) is not None:
        checkpoint, _ = await threads.checkpoint_state(record, wanted)
        return with_interrupts(
            state_json(thread_id, checkpoint, await hosted.values(record, wanted) or {}), record
        )
    turn_id, is_input = split(wanted)
    checkpoint, messages = await threads.checkpoint_state(record, turn_id)
    if is_input:
        return input_state_json(thread_id, checkpoint, messages)
    return with_interrupts(turn_state_json(thread_id, checkpoint, messages), record)


@router.post("/threads/{thread_id}/history")
async def get_history(
    thread_id: ThreadId,
    body: HistoryQuery,
    owner: OwnerDep,
    threads: ThreadsDep,
    limits: LimitsDep,
    hosted: HostedStateDep,
) -> list[dict[str, Any]]:
    """The thread's states, newest first, each with its values: per turn of the built-in agent
    its checkpoint and its input state (`turn_states`); per checkpoint of a hosted graph."""
    cursor = (
        body.before.get("configurable", {}).get("checkpoint_id")
        if isinstance(body.before, dict)
        else body.before
    )
    before = split(cursor)[0] if isinstance(cursor, str) else None
    limit = min(body.limit, limits.max_page_size)
    thread, states = await threads.history_states(owner, thread_id, limit=limit, before=before)
    if hosted.graph_of(thread) is not None:
        return [
            with_interrupts(
                state_json(thread_id, record, await hosted.values(thread, record.checkpoint_id) or {}), thread
            )
            for record, _ in states
        ]
    found = [
        with_interrupts(state, thread)
        for record, messages in states
        for state in turn_states(thread_id, record, messages)
    ]
    return found[:limit]


async def thread_values(record: ThreadRecord, threads: ThreadService, hosted: HostedState) -> dict[str, Any]:
    """A thread's values: a hosted graph's state, or the built-in agent's whole conversation."""
    return await hosted.values(record) or values_of(await threads.conversation(record))

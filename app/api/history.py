"""A thread's checkpoints (time travel) and its full state at any of them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.cursors import decode_cursor, encode_cursor
from app.api.deps import LimitsDep, OwnerDep, ThreadIdDep, ThreadsDep
from app.api.schemas import CheckpointOut, HistoryPage, MessageOut, StateOut
from app.api.threads import ERRORS
from app.errors import InvalidInput
from app.memory.history import CheckpointRecord

router = APIRouter(prefix="/threads", tags=["history"])


def checkpoint_out(record: CheckpointRecord, head: str | None) -> CheckpointOut:
    return CheckpointOut(
        checkpoint_id=record.checkpoint_id,
        parent_checkpoint_id=record.parent_checkpoint_id,
        created_at=record.created_at,
        step=record.step,
        source=record.source,
        run_id=record.run_id,
        message_count=record.message_count,
        is_head=record.checkpoint_id == head,
    )


@router.get("/{thread_id}/history", response_model=HistoryPage, responses=ERRORS)
async def list_history(
    thread_id: ThreadIdDep,
    owner: OwnerDep,
    threads: ThreadsDep,
    limits: LimitsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    before: Annotated[str | None, Query(max_length=512, description="Cursor from `next_cursor`.")] = None,
) -> HistoryPage:
    """The thread's checkpoints, newest first: one per completed turn, on every branch. Send a
    message with `checkpoint_id` set to one of them to fork from it."""
    cursor = decode_cursor(before)
    if cursor is not None and not isinstance(cursor, str):
        raise InvalidInput("The `before` cursor is not one this service issued.")
    thread, rows, next_id = await threads.history(
        owner, thread_id, limit=min(limit, limits.max_page_size), before=cursor
    )
    return HistoryPage(
        checkpoints=[checkpoint_out(r, thread.head_checkpoint_id) for r in rows],
        next_cursor=encode_cursor(next_id) if next_id is not None else None,
        complete=thread.compacted_at is None,
    )


@router.get(
    "/{thread_id}/state",
    response_model=StateOut,
    responses={**ERRORS, 404: {"description": "No such thread or checkpoint"}},
)
async def get_state(
    thread_id: ThreadIdDep,
    owner: OwnerDep,
    threads: ThreadsDep,
    checkpoint_id: Annotated[
        str | None, Query(max_length=64, description="Default: the thread's head.")
    ] = None,
) -> StateOut:
    """The full state (every message) of the thread at a checkpoint."""
    thread = await threads.get(owner, thread_id)
    view = await threads.state(owner, thread_id, checkpoint_id)
    return StateOut(
        checkpoint=checkpoint_out(view.checkpoint, thread.head_checkpoint_id),
        messages=[MessageOut.model_validate(m) for m in view.messages],
        next=view.next_nodes,
    )

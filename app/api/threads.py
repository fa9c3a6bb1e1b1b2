"""Thread resources: create, list, read, rename/annotate, delete."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.cursors import decode_cursor, encode_cursor
from app.api.deps import DefaultTtlDep, LimitsDep, OwnerDep, ThreadIdDep, ThreadsDep
from app.api.schemas import (
    ErrorBody,
    InterruptOut,
    ThreadCreate,
    ThreadList,
    ThreadOut,
    ThreadPatch,
    interrupt_json,
)
from app.errors import InvalidInput
from app.memory.threads import ThreadRecord
from app.services.storable import check_metadata, clip_json

router = APIRouter(prefix="/threads", tags=["threads"])

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid credentials"},
    404: {"model": ErrorBody, "description": "No such thread for this caller"},
    422: {"model": ErrorBody, "description": "Invalid input"},
    503: {"model": ErrorBody, "description": "Database unavailable (see Retry-After)"},
}


def thread_out(record: ThreadRecord, default_ttl: int | None) -> ThreadOut:
    ttl = record.ttl_seconds or default_ttl
    return ThreadOut(
        thread_id=record.thread_id,
        title=record.title,
        metadata=clip_json(record.metadata),
        status=record.status_at(datetime.now(UTC)),
        interrupts=[InterruptOut.model_validate(interrupt_json(i)) for i in record.interrupts or []],
        message_count=record.message_count,
        turn_count=record.turn_count,
        head_checkpoint_id=record.head_checkpoint_id,
        created_at=record.created_at,
        updated_at=record.updated_at,
        last_activity_at=record.last_activity_at,
        ttl_seconds=record.ttl_seconds,
        expires_at=record.last_activity_at + timedelta(seconds=ttl) if ttl else None,
        compacted_at=record.compacted_at,
    )


@router.post(
    "",
    status_code=201,
    response_model=ThreadOut,
    responses={**ERRORS, 409: {"model": ErrorBody, "description": "Thread id already used"}},
)
async def create_thread(
    body: ThreadCreate, owner: OwnerDep, threads: ThreadsDep, limits: LimitsDep, default_ttl: DefaultTtlDep
) -> ThreadOut:
    """Create a thread. Threads are also created implicitly by their first message."""
    check_metadata(body.metadata, limits)
    thread_id = body.thread_id or str(uuid.uuid4())
    record = await threads.create(
        owner, thread_id, title=body.title, metadata=body.metadata, ttl_seconds=body.ttl_seconds
    )
    return thread_out(record, default_ttl)


@router.get("", response_model=ThreadList, responses=ERRORS)
async def list_threads(
    owner: OwnerDep,
    threads: ThreadsDep,
    limits: LimitsDep,
    default_ttl: DefaultTtlDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    before: Annotated[str | None, Query(max_length=512, description="Cursor from `next_cursor`.")] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="Only threads whose title contains this (any case), or with this id.",
        ),
    ] = None,
) -> ThreadList:
    """The caller's threads, most recent activity first, paginated by cursor."""
    cursor = decode_cursor(before)
    position: tuple[datetime, str] | None = None
    if cursor is not None:
        try:
            position = (datetime.fromisoformat(cursor[0]), str(cursor[1]))
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            raise InvalidInput("The `before` cursor is not one this service issued.") from exc
    page = await threads.page(
        owner, limit=min(limit, limits.max_page_size), before=position, title_contains=q
    )
    next_cursor = (
        encode_cursor([page.next_cursor[0].isoformat(), page.next_cursor[1]]) if page.next_cursor else None
    )
    return ThreadList(threads=[thread_out(t, default_ttl) for t in page.threads], next_cursor=next_cursor)


@router.get("/{thread_id}", response_model=ThreadOut, responses=ERRORS)
async def get_thread(
    thread_id: ThreadIdDep, owner: OwnerDep, threads: ThreadsDep, default_ttl: DefaultTtlDep
) -> ThreadOut:
    return thread_out(await threads.get(owner, thread_id), default_ttl)


@router.patch("/{thread_id}", response_model=ThreadOut, responses=ERRORS)
async def update_thread(
    thread_id: ThreadIdDep,
    body: ThreadPatch,
    owner: OwnerDep,
    threads: ThreadsDep,
    limits: LimitsDep,
    default_ttl: DefaultTtlDep,
) -> ThreadOut:
    """Rename a thread, merge keys into its metadata, and/or set its TTL."""
    check_metadata(body.metadata, limits)
    record = await threads.update(
        owner,
        thread_id,
        title=body.title,
        set_title="title" in body.model_fields_set,
        metadata=body.metadata,
        ttl_seconds=body.ttl_seconds,
        set_ttl="ttl_seconds" in body.model_fields_set,
    )
    return thread_out(record, default_ttl)


@router.post(
    "/{thread_id}/title",
    response_model=ThreadOut,
    responses={
        **ERRORS,
        409: {"model": ErrorBody, "description": "no_exchange: no completed question and answer yet"},
    },
)
async def title_thread(
    thread_id: ThreadIdDep, owner: OwnerDep, threads: ThreadsDep, default_ttl: DefaultTtlDep
) -> ThreadOut:
    """Give the thread a short title from its first question and answer: written by the chat
    model (a real one), or made from the question offline and whenever the model fails."""
    return thread_out(await threads.title_from_first_exchange(owner, thread_id), default_ttl)


@router.delete("/{thread_id}", status_code=204, response_class=Response, responses=ERRORS)
async def delete_thread(thread_id: ThreadIdDep, owner: OwnerDep, threads: ThreadsDep) -> Response:
    """Delete a thread with its transcript, runs, checkpoints, writes and blobs."""
    await threads.delete(owner, thread_id)
    return Response(status_code=204)

"""The run resource: list, read, follow (SSE, resumable with Last-Event-ID), join, cancel.

Paths and shapes follow the LangGraph Agent Protocol (`/threads/{id}/runs/...`, `/runs/cancel`),
so its clients can read our runs; `join` answers the native JSON turn body.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse

from app.api.cursors import decode_cursor, encode_cursor
from app.api.deps import LimitsDep, OwnerDep, RunsDep, ThreadIdDep
from app.api.messages import run_headers
from app.api.schemas import ErrorBody, RunCancelled, RunCancelMany, RunOut, TurnOut, turn_json
from app.api.threads import ERRORS
from app.errors import InvalidInput
from app.services.run_model import RunQuery, RunStatus
from app.streaming import EVENT_NAMES, last_event_id, sse_event_schema, sse_response

router = APIRouter(tags=["runs"])

RUN_ERRORS: dict[int | str, dict[str, object]] = {
    **ERRORS,
    404: {"model": ErrorBody, "description": "No such thread or run for this caller"},
}
Action = Literal["interrupt", "rollback"]


def _cursor(value: str | None) -> tuple[datetime, uuid.UUID] | None:
    raw = decode_cursor(value)
    if raw is None:
        return None
    try:
        at, run_id = raw
        return datetime.fromisoformat(at), uuid.UUID(run_id)
    except (TypeError, ValueError):
        raise InvalidInput("The `before` cursor is not one this service issued.") from None


@router.get("/threads/{thread_id}/runs", response_model=list[RunOut], responses=RUN_ERRORS)
async def list_runs(
    thread_id: ThreadIdDep,
    owner: OwnerDep,
    runs: RunsDep,
    limits: LimitsDep,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    status: Annotated[RunStatus | None, Query(description="Only runs with this status.")] = None,
    before: Annotated[str | None, Query(max_length=512, description="Cursor from `X-Next-Cursor`.")] = None,
) -> list[RunOut]:
    """The thread's runs, newest first (a JSON array, as the Agent Protocol lists them). The next
    page's cursor is in the `X-Next-Cursor` header (pass it as `before`); `offset` works too."""
    query = RunQuery(
        statuses=[status] if status else None,
        limit=min(limit, limits.max_page_size),
        offset=offset,
        before=_cursor(before),
    )
    page, cursor = await runs.page(owner, thread_id, query)
    if cursor is not None:
        response.headers["X-Next-Cursor"] = encode_cursor([cursor[0].isoformat(), str(cursor[1])])
    return [RunOut.of(r) for r in page]


@router.get("/threads/{thread_id}/runs/{run_id}", response_model=RunOut, responses=RUN_ERRORS)
async def get_run(thread_id: ThreadIdDep, run_id: str, owner: OwnerDep, runs: RunsDep) -> RunOut:
    return RunOut.of(await runs.get(owner, thread_id, run_id))


@router.get(
    "/threads/{thread_id}/runs/{run_id}/stream",
    responses={
        **RUN_ERRORS,
        200: {
            "content": {
                "text/event-stream": {
                    "schema": sse_event_schema("The event's JSON payload", sorted(EVENT_NAMES.values()))
                }
            },
            "description": "The run's events: live while it runs, replayed once it has finished",
        },
    },
)
async def join_stream(
    thread_id: ThreadIdDep,
    run_id: str,
    owner: OwnerDep,
    runs: RunsDep,
    last_event_id_header: Annotated[
        str | None,
        Header(alias="Last-Event-ID", description="Resume after this event (an `id` of this stream)."),
    ] = None,
) -> Response:
    """Join the run's event stream from any process or replica. With `Last-Event-ID` the stream
    resumes after that event, nothing lost or repeated; a finished run replays and ends."""
    run = await runs.get(owner, thread_id, run_id)
    after = last_event_id(last_event_id_header, run.run_id)
    events = runs.follow_batches(uuid.UUID(run.run_id), after=after)
    return sse_response(run.run_id, events, headers=run_headers(thread_id, run.run_id), ping_seconds=15)


@router.get(
    "/threads/{thread_id}/runs/{run_id}/join",
    response_model=TurnOut,
    responses={
        **RUN_ERRORS,
        409: {"model": ErrorBody, "description": "cancelled: the run was cancelled; nothing was saved"},
        502: {"model": ErrorBody, "description": "turn_failed: the agent failed; nothing was saved"},
        503: {"model": ErrorBody, "description": "worker_lost: its process died; nothing was saved"},
        504: {"model": ErrorBody, "description": "turn_timeout: nothing was saved"},
    },
)
async def join_run(thread_id: ThreadIdDep, run_id: str, owner: OwnerDep, runs: RunsDep) -> Response:
    """Wait for the run to finish and answer its result, as the JSON turn body (or its error)."""
    run = await runs.get(owner, thread_id, run_id)
    result = await runs.result_of(uuid.UUID(run.run_id))
    return JSONResponse(turn_json(result), headers=run_headers(thread_id, run.run_id))


@router.post(
    "/threads/{thread_id}/runs/{run_id}/cancel",
    response_model=RunOut,
    responses={
        **RUN_ERRORS,
        409: {"model": ErrorBody, "description": "run_not_active: the run has already finished"},
    },
)
async def cancel_run(
    thread_id: ThreadIdDep,
    run_id: str,
    owner: OwnerDep,
    runs: RunsDep,
    wait: Annotated[bool, Query(description="Answer only once the run has stopped.")] = False,
    action: Annotated[Action, Query(description="rollback: also delete the run.")] = "interrupt",
) -> RunOut:
    """Cancel a pending or running run: it stops, nothing of it is saved, the thread is free at
    once, its stream ends with an `error` event of code `cancelled`, and it is `interrupted`."""
    run = await runs.cancel(owner, thread_id, run_id, wait=wait, rollback=action == "rollback")
    return RunOut.of(run)


@router.post("/runs/cancel", response_model=RunCancelled, responses=ERRORS)
async def cancel_runs(
    body: RunCancelMany,
    owner: OwnerDep,
    runs: RunsDep,
    wait: Annotated[bool, Query(description="Answer only once the runs have stopped.")] = False,
    action: Annotated[Action, Query(description="rollback: also delete the runs.")] = "interrupt",
) -> RunCancelled:
    """Cancel several runs in one call: by id, and/or all pending or running runs of a thread."""
    if not body.run_ids and body.thread_id is None:
        raise InvalidInput("Name the runs to cancel: `run_ids`, `thread_id`, or both.")
    cancelled = await runs.cancel_many(
        owner, run_ids=body.run_ids, thread_id=body.thread_id, wait=wait, rollback=action == "rollback"
    )
    return RunCancelled(cancelled=cancelled)

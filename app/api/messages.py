"""Send a message (run one turn, as JSON or as a Server-Sent Events stream) and read the transcript."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response

from app.agent.messages import stored_to_json
from app.api.cursors import decode_cursor, encode_cursor
from app.api.deps import LimitsDep, OwnerDep, RunsDep, ThreadIdDep, ThreadsDep
from app.api.schemas import ErrorBody, MessageOut, MessagePage, RunOut, TurnIn, TurnOut, turn_json
from app.api.threads import ERRORS
from app.errors import InvalidInput
from app.services.run_model import Resume, TurnRequest
from app.services.turn_input import check_turn_messages
from app.settings import LimitSettings
from app.streaming import EVENT_NAMES, sse_event_schema, sse_response

router = APIRouter(prefix="/threads", tags=["messages"])

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_SSE_DOC = (
    "With `Accept: text/event-stream` or `?stream=true` the turn streams as Server-Sent Events:"
    " `run_start`, `token`, `tool_call`, `tool_result`, `message`, `interrupt` (the turn paused for"
    " a decision), then `done` (or `error`)."
    " With `background: true` the answer is 202 and the run, at once."
)


def run_headers(thread_id: str, run_id: str) -> dict[str, str]:
    """Where the run lives and where its stream is (any client may rejoin it there)."""
    return {
        "X-Run-Id": run_id,
        "Location": f"/threads/{thread_id}/runs/{run_id}",
        "Content-Location": f"/threads/{thread_id}/runs/{run_id}/stream",
    }


def _turn_messages(body: TurnIn, limits: LimitSettings) -> list[tuple[str, str]]:
    if body.resume is not None:
        if body.content is not None or body.messages is not None or body.checkpoint_id is not None:
            raise InvalidInput(
                "A `resume` answers the paused turn: send it without messages or checkpoint_id."
            )
        return []
    if body.interrupt_id is not None:
        raise InvalidInput("`interrupt_id` goes with `resume`.")
    if (body.content is None) == (body.messages is None):
        raise InvalidInput("Send either `content` or `messages`, not both or neither.")
    items: list[tuple[str, str]] = (
        [("user", body.content or "")]
        if body.messages is None
        else [(m.role, m.content) for m in body.messages]
    )
    check_turn_messages(items, limits)
    return items


def _wants_stream(request: Request, stream: bool | None) -> bool:
    if stream is not None:
        return stream
    return "text/event-stream" in request.headers.get("accept", "")


@router.post(
    "/{thread_id}/messages",
    response_model=TurnOut,
    description="Run one turn of the agent on the thread (created if new). " + _SSE_DOC,
    responses={
        **ERRORS,
        200: {
            "content": {
                "text/event-stream": {
                    "schema": sse_event_schema("The event's JSON payload", sorted(EVENT_NAMES.values()))
                }
            },
            "description": "The turn's new messages, or its SSE stream",
        },
        202: {"model": RunOut, "description": "With `background: true`: the run, started or queued"},
        409: {
            "model": ErrorBody,
            "description": "thread_busy: another turn is running (see Retry-After); thread_interrupted:"
            " the thread waits for a decision (resume it); not_interrupted: nothing to resume",
        },
        413: {"model": ErrorBody, "description": "Body larger than MAX_BODY_BYTES"},
        502: {"model": ErrorBody, "description": "turn_failed: the agent failed; nothing was saved"},
        504: {"model": ErrorBody, "description": "turn_timeout: nothing was saved"},
    },
)
async def send_message(
    thread_id: ThreadIdDep,
    body: TurnIn,
    request: Request,
    owner: OwnerDep,
    runs: RunsDep,
    limits: LimitsDep,
    stream: Annotated[
        bool | None, Query(description="Stream as SSE (same as Accept: text/event-stream).")
    ] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            description="A retried request with the same key returns the first result without running again."
        ),
    ] = None,
) -> Response:
    if idempotency_key is not None and not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise InvalidInput("Idempotency-Key must be 1-255 printable ASCII characters without spaces.")
    wants_stream = _wants_stream(request, stream) and not body.background
    turn = TurnRequest(
        owner=owner,
        thread_id=thread_id,
        messages=_turn_messages(body, limits),
        checkpoint_id=body.checkpoint_id,
        idempotency_key=idempotency_key,
        metadata=body.metadata,
        multitask_strategy=body.multitask_strategy,
        background=body.background,
        stream=wants_stream,
        resume=Resume(value=body.resume, interrupt_id=body.interrupt_id) if body.resume is not None else None,
        abandon_interrupt=body.abandon_interrupt,
        create_thread=body.resume is None,  # a resume answers a thread that exists
    )
    handle = await runs.submit(turn)
    headers = run_headers(thread_id, handle.run.run_id)
    if handle.replayed:
        headers["Idempotent-Replayed"] = "true"
    if body.background:
        return JSONResponse(RunOut.of(handle.run).model_dump(mode="json"), status_code=202, headers=headers)
    if wants_stream:
        return sse_response(handle.run.run_id, handle.event_batches(), headers=headers, ping_seconds=15)
    result = await handle.result()
    if result.run_id != handle.run.run_id:  # the replayed run was lost: the turn ran again
        headers = run_headers(thread_id, result.run_id)
    return JSONResponse(turn_json(result), headers=headers)


@router.get("/{thread_id}/messages", response_model=MessagePage, responses=ERRORS)
async def list_messages(
    thread_id: ThreadIdDep,
    owner: OwnerDep,
    threads: ThreadsDep,
    limits: LimitsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: Annotated[str | None, Query(max_length=512, description="Cursor from `next_cursor`.")] = None,
) -> MessagePage:
    """The transcript of the thread's current branch: the latest `limit` messages (or those
    before the cursor), oldest first within the page."""
    cursor = decode_cursor(before)
    if cursor is not None and (isinstance(cursor, bool) or not isinstance(cursor, int)):
        raise InvalidInput("The `before` cursor is not one this service issued.")
    rows, previous = await threads.messages(
        owner, thread_id, limit=min(limit, limits.max_page_size), before=cursor
    )
    return MessagePage(
        messages=[MessageOut.model_validate(stored_to_json(m)) for m in rows],
        next_cursor=encode_cursor(previous) if previous is not None else None,
    )

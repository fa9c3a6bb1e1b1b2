"""The Agent Protocol's run routes (`runs.create/stream/wait`, on a thread or thread-less, and
`get/list/join/join_stream/cancel/delete`), mapped onto the one run engine: a protocol run is a
native run, with the same lease, queue, idempotency, event log and cancel."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import JSONResponse

from app.api.deps import (
    THREAD_ID_PATTERN,
    ConversationsDep,
    HostedStateDep,
    LimitsDep,
    OwnerDep,
    RunsDep,
    ThreadsDep,
)
from app.api.protocol.shapes import (
    RunCreate,
    encoded_message,
    encoded_values,
    new_thread_id,
    paused_values,
    run_json,
)
from app.api.protocol.stream import ProtocolStream
from app.api.protocol.threads import thread_values
from app.api.protocol.turn_states import fork_point, split
from app.api.schemas import RunCancelMany
from app.errors import InvalidInput, ThreadNotFound
from app.memory.runs import FROM_START
from app.memory.threads import ThreadRecord
from app.memory.transcript import StoredMessage
from app.services.conversation_cache import EncodedConversations
from app.services.run_handle import RunHandle
from app.services.run_model import RunQuery, RunStatus, TurnRequest, TurnResult
from app.services.runs import RunService
from app.services.threads import ThreadService
from app.services.turn_input import check_turn_messages
from app.settings import LimitSettings
from app.streaming import Frame, frames_response, last_event_id

ThreadId = Annotated[str, Path(pattern=THREAD_ID_PATTERN)]
PING_SECONDS = 15


def _paths(thread_id: str, run_id: str, modes: list[str] | None = None) -> tuple[str, str]:
    """A run's path and its stream's in `modes`, relative to the protocol's root: the SDKs
    rejoin a dropped stream at their base URL (`.../lg`) + `Location`, sending no modes of
    their own, so the stream's path names the modes the client asked for."""
    run = f"/threads/{thread_id}/runs/{run_id}"
    query = f"?{urlencode({'stream_mode': modes}, doseq=True)}" if modes else ""
    return run, f"{run}/stream{query}"


async def _starting_conversation(
    threads: ThreadService, record: ThreadRecord, fork: str
) -> list[StoredMessage]:
    """The conversation a forked run (edit, regenerate) starts from, at its fork point, so
    that the run's streamed `values` are that branch's."""
    if fork == FROM_START:
        return []
    return (await threads.checkpoint_state(record, fork))[1]


async def _submit(
    thread_id: str | None,
    body: RunCreate,
    owner: str,
    runs: RunService,
    threads: ThreadService,
    limits: LimitSettings,
    *,
    background: bool,
    stream: bool,
    conversations: EncodedConversations | None = None,
) -> tuple[str, RunHandle, Sequence[str]]:
    """Start the run; its thread id, handle, and (`stream`) the conversation it starts from,
    its messages encoded."""
    served = runs.catalog.get(body.assistant_id)
    body.modes()
    resume = body.resume()
    fork = body.fork_from()
    prior: Sequence[str] = ()
    question: list[StoredMessage] = []
    asked = fork  # what the client named, before it is resolved
    asked_new = thread_id is None  # a thread-less run makes its own thread
    if thread_id is None:
        thread_id = new_thread_id()
    elif fork is not None:
        # A fork needs the thread first: its fork point, and the conversation there.
        record = await threads.find(owner, thread_id)
        if record is None and body.if_not_exists == "reject":
            raise ThreadNotFound(thread_id)
        if record is not None:
            # A client's fork point (a turn's input state) is a checkpoint and maybe a question.
            fork, question = await fork_point(threads, record, fork)
            if stream:
                prior = [encoded_message(m) for m in await _starting_conversation(threads, record, fork)]
    # A run from a turn's input state with no new input re-asks that turn's question (its
    # messages, ids included): a regenerated answer, a sibling of the turn's own.
    regenerates = split(asked)[0] if asked is not None and question and body.input is None else None
    messages: list[tuple[str, str]] = []
    if regenerates:
        messages = [(m.role, m.content) for m in question]
    elif resume is None:
        messages = body.messages()
    if resume is None:
        check_turn_messages(messages, limits)
    handle = await runs.submit(
        TurnRequest(
            owner=owner,
            thread_id=thread_id,
            messages=messages,
            checkpoint_id=fork,
            metadata=body.metadata,
            multitask_strategy=body.multitask_strategy,
            background=background,
            stream=stream,
            assistant_id=served.assistant_id,
            after_seconds=body.after_seconds,
            regenerates=regenerates,
            input_ids=tuple(m.message_id for m in question) if regenerates else None,
            create_thread=resume is None and (body.if_not_exists == "create" or asked_new),
            resume=resume,
            # As on LangGraph's server, new input on a waiting thread leaves the interrupt behind.
            abandon_interrupt=True,
        )
    )
    if stream and fork is None and not asked_new:
        # From the head: where the run's own claim found it (cached after the thread's last
        # protocol turn), or as the thread's head now (a run queued behind another).
        if handle.start_at is not None and conversations is not None:
            prior = await conversations.upto(handle.start_at, encoded_message)
        else:
            prior = [encoded_message(m) for m in await threads.head_conversation(owner, thread_id)]
    return thread_id, handle, prior


def _remember(
    handle: RunHandle, conversations: EncodedConversations, result: TurnResult
) -> Sequence[str] | None:
    """The conversation after a run that executed here, kept for the thread's next turn (None:
    the one it started from was not kept)."""
    if handle.start_at is None or result.conversation_end is None:
        return None
    return conversations.extend(handle.start_at, result.conversation_end, result.messages, encoded_message)


def _until_end(
    batches: AsyncIterator[list[Frame]], on_disconnect: Any | None, on_end: Any | None = None
) -> AsyncIterator[list[Frame]]:
    async def guarded() -> AsyncIterator[list[Frame]]:
        ended = False
        try:
            async for frames in batches:
                succeeded = any(f.event == "end" for f in frames)
                ended = ended or succeeded or any(f.event == "error" for f in frames)
                yield frames
                if succeeded and on_end is not None:
                    await on_end()
        finally:
            if not ended and on_disconnect is not None:
                on_disconnect()

    return guarded()


def _stream_response(
    thread_id: str,
    handle: RunHandle,
    body: RunCreate,
    prior: Sequence[str],
    owner: str,
    runs: RunService,
    conversations: EncodedConversations,
) -> Response:
    run_id = handle.run.run_id
    renderer = ProtocolStream(run_id=run_id, thread_id=thread_id, modes=body.modes(), prior=prior)
    frames = renderer.frames(handle.event_batches())
    cancel = (lambda: runs.cancel_soon(owner, run_id)) if body.on_disconnect == "cancel" else None

    async def remember() -> None:
        if handle.start_at is not None:  # it ran here: its result is in memory
            _remember(handle, conversations, await handle.result())

    run_path, stream_path = _paths(thread_id, run_id, body.modes())
    headers = {"Content-Location": run_path, "Location": stream_path}
    return frames_response(_until_end(frames, cancel, remember), headers=headers, ping_seconds=PING_SECONDS)


def build_router() -> APIRouter:
    routes = APIRouter()

    @routes.post("/threads/{thread_id}/runs")
    @routes.post("/runs", include_in_schema=False)
    async def create_run(
        body: RunCreate,
        owner: OwnerDep,
        runs: RunsDep,
        threads: ThreadsDep,
        limits: LimitsDep,
        thread_id: ThreadId | None = None,
    ) -> JSONResponse:
        """Start a run in the background; answers the run at once."""
        tid, handle, _ = await _submit(
            thread_id, body, owner, runs, threads, limits, background=True, stream=False
        )
        run_path, stream_path = _paths(tid, handle.run.run_id)
        return JSONResponse(
            run_json(handle.run), headers={"Content-Location": run_path, "Location": stream_path}
        )

    @routes.post("/threads/{thread_id}/runs/stream")
    @routes.post("/runs/stream", include_in_schema=False)
    async def stream_run(
        body: RunCreate,
        owner: OwnerDep,
        runs: RunsDep,
        threads: ThreadsDep,
        limits: LimitsDep,
        conversations: ConversationsDep,
        thread_id: ThreadId | None = None,
    ) -> Response:
        tid, handle, prior = await _submit(
            thread_id,
            body,
            owner,
            runs,
            threads,
            limits,
            background=False,
            stream=True,
            conversations=conversations,
        )
        return _stream_response(tid, handle, body, prior, owner, runs, conversations)

    @routes.post("/threads/{thread_id}/runs/wait")
    @routes.post("/runs/wait", include_in_schema=False)
    async def wait_run(
        body: RunCreate,
        owner: OwnerDep,
        runs: RunsDep,
        threads: ThreadsDep,
        limits: LimitsDep,
        hosted: HostedStateDep,
        conversations: ConversationsDep,
        thread_id: ThreadId | None = None,
    ) -> Response:
        """Run and answer the thread's values when it ends."""
        tid, handle, _ = await _submit(
            thread_id, body, owner, runs, threads, limits, background=False, stream=False
        )
        result = await handle.result()
        run_path, _ = _paths(tid, handle.run.run_id)
        headers = {"Content-Location": run_path, "Location": f"{run_path}/join"}
        if runs.catalog.get(body.assistant_id).builtin and result.conversation_end is not None:
            # The built-in agent's values are its conversation: the one the run started from
            # (kept after the thread's last protocol turn) and the run's messages, or one read.
            encoded = _remember(handle, conversations, result)
            if encoded is None:
                encoded = await conversations.upto(result.conversation_end, encoded_message)
            return Response(
                encoded_values(encoded, paused_values(result.interrupts)),
                media_type="application/json",
                headers=headers,
            )
        values = await thread_values(await threads.get(owner, tid), threads, hosted)
        return JSONResponse({**values, **paused_values(result.interrupts)}, headers=headers)

    @routes.get("/threads/{thread_id}/runs")
    async def list_runs(
        thread_id: ThreadId,
        owner: OwnerDep,
        runs: RunsDep,
        limits: LimitsDep,
        limit: Annotated[int, Query(ge=1, le=1000)] = 10,
        offset: Annotated[int, Query(ge=0)] = 0,
        status: RunStatus | None = None,
    ) -> list[dict[str, Any]]:
        query = RunQuery(
            statuses=[status] if status else None, limit=min(limit, limits.max_page_size), offset=offset
        )
        page, _ = await runs.page(owner, thread_id, query)
        return [run_json(r) for r in page]

    @routes.get("/threads/{thread_id}/runs/{run_id}")
    async def get_run(thread_id: ThreadId, run_id: str, owner: OwnerDep, runs: RunsDep) -> dict[str, Any]:
        return run_json(await runs.get(owner, thread_id, run_id))

    @routes.get("/threads/{thread_id}/runs/{run_id}/join")
    async def join_run(
        thread_id: ThreadId,
        run_id: str,
        owner: OwnerDep,
        runs: RunsDep,
        threads: ThreadsDep,
        hosted: HostedStateDep,
    ) -> dict[str, Any]:
        """Wait for the run; the thread's values after it."""
        run = await runs.get(owner, thread_id, run_id)
        await runs.result_of(uuid.UUID(run.run_id))
        return await thread_values(await threads.get(owner, thread_id), threads, hosted)

    @routes.get("/threads/{thread_id}/runs/{run_id}/stream")
    async def join_stream(
        thread_id: ThreadId,
        run_id: str,
        owner: OwnerDep,
        runs: RunsDep,
        threads: ThreadsDep,
        stream_mode: Annotated[list[str] | None, Query()] = None,
        cancel_on_disconnect: bool = False,
        last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> Response:
        record = await runs.record(owner, thread_id, run_id)
        modes = [m for m in stream_mode or [] if m] or ["values", "updates", "messages-tuple"]
        body = RunCreate(stream_mode=modes, on_disconnect="cancel" if cancel_on_disconnect else "continue")
        # useStream rejoins with `-1`: LangGraph's server reads it as "from the first event".
        from_start = last_event_id_header is None or last_event_id_header.strip() == "-1"
        after = 0 if from_start else last_event_id(last_event_id_header, str(record.run_id))
        renderer = ProtocolStream(
            run_id=str(record.run_id),
            thread_id=thread_id,
            modes=body.modes(),
            prior=[encoded_message(m) for m in await threads.before_run(record)],
        )
        # From the first event, so that `values` after the resumed one hold the whole conversation.
        frames = renderer.frames(runs.follow_batches(record.run_id, after=0), after=after)
        cancel = (lambda: runs.cancel_soon(owner, str(record.run_id))) if cancel_on_disconnect else None
        run_path, stream_path = _paths(thread_id, str(record.run_id), modes)
        return frames_response(
            _until_end(frames, cancel),
            headers={"Content-Location": run_path, "Location": stream_path},
            ping_seconds=PING_SECONDS,
        )

    @routes.post("/threads/{thread_id}/runs/{run_id}/cancel")
    async def cancel_run(
        thread_id: ThreadId,
        run_id: str,
        owner: OwnerDep,
        runs: RunsDep,
        wait: bool = False,
        action: Annotated[str, Query(pattern="^(interrupt|rollback)$")] = "interrupt",
    ) -> Response:
        await runs.cancel(owner, thread_id, run_id, wait=wait, rollback=action == "rollback")
        return Response(status_code=204 if wait else 202)

    @routes.delete("/threads/{thread_id}/runs/{run_id}", status_code=204)
    async def delete_run(thread_id: ThreadId, run_id: str, owner: OwnerDep, runs: RunsDep) -> Response:
        await runs.delete(owner, thread_id, run_id)
        return Response(status_code=204)

    @routes.post("/runs/cancel")
    async def cancel_runs(
        body: RunCancelMany,
        owner: OwnerDep,
        runs: RunsDep,
        action: Annotated[str, Query(pattern="^(interrupt|rollback)$")] = "interrupt",
    ) -> Response:
        if not body.run_ids and body.thread_id is None:
            raise InvalidInput("Name the runs to cancel: `run_ids`, `thread_id`, or both.")
        await runs.cancel_many(
            owner, run_ids=body.run_ids, thread_id=body.thread_id, wait=False, rollback=action == "rollback"
        )
        return Response(status_code=204)

    return routes

"""`POST /invocations` and its alias `POST /responses`: the MLflow `ResponsesAgent` protocol over
HTTP.

The same request and response bodies (and stream events) as the model on Model Serving, through
the same mapping (`app.serving.responses`) and the same runs service, so Databricks' chat front
ends and clients of the serving endpoint work with the App unchanged; `/responses` is the path
MLflow's agent server and OpenAI's `client.responses.create` use. The caller's identity comes
from the transport (`AUTH_MODE`), never from `context.user_id`. Asked for it, the answer carries
the turn's MLflow trace id (`app.serving.tracing`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, Response

from app.api.deps import LimitsDep, OwnerDep, RunsDep
from app.api.schemas import ErrorBody
from app.api.threads import ERRORS
from app.services.run_model import TurnRequest
from app.serving.responses import ResponsesRequest, plan_turn, response_body, stream_events
from app.serving.tracing import RETURN_TRACE_HEADER, TurnTrace, start_trace, trace_requested, traced_events
from app.streaming import responses_sse_response, sse_event_schema

router = APIRouter(tags=["responses"])

_SSE_EVENT = sse_event_schema("A Responses stream event as JSON, or `[DONE]`")
_DESCRIPTION = (
    "Run one turn, ResponsesAgent style. The thread is `custom_inputs.thread_id`, else"
    " `context.conversation_id`, else a new one; it is returned in `custom_outputs.thread_id`."
    " On a named thread only the trailing user messages of `input` are new (the rest is in the"
    " thread's memory). With `stream: true` the answer streams as Server-Sent Events: one"
    " `data:` frame per Responses stream event (`response.output_text.delta`,"
    " `response.output_item.done`, `response.completed` or `error`), then `data: [DONE]`."
    f" With `{RETURN_TRACE_HEADER}: true` or `databricks_options.return_trace`, the turn is traced"
    ' with MLflow and its id returned in `metadata.trace_id` (streamed: a last `{"trace_id"}` event).'
)
_RESPONSES: dict[int | str, dict[str, object]] = {
    **ERRORS,
    200: {
        # Each Server-Sent Event (how SSE-aware clients and validators read the stream).
        "content": {"text/event-stream": {"schema": _SSE_EVENT}},
        "description": "A ResponsesAgentResponse (`output`, `custom_outputs`), or its event stream",
    },
    409: {"model": ErrorBody, "description": "thread_busy: another turn is running (see Retry-After)"},
    501: {"model": ErrorBody, "description": "tracing_unavailable: a trace id was asked for without MLflow"},
    502: {"model": ErrorBody, "description": "turn_failed: the agent failed; nothing was saved"},
    504: {"model": ErrorBody, "description": "turn_timeout: nothing was saved"},
}
ReturnTraceHeader = Annotated[str | None, Header(alias=RETURN_TRACE_HEADER, include_in_schema=False)]


async def _run(
    body: ResponsesRequest, owner: str, runs: RunsDep, limits: LimitsDep, trace: TurnTrace | None
) -> Response:
    turn = plan_turn(body, limits)
    request = TurnRequest(
        owner=owner, thread_id=turn.thread_id, messages=turn.messages, stream=bool(body.stream)
    )
    handle = await runs.submit(request)
    headers = {"X-Run-Id": handle.run.run_id}
    if body.stream:
        events = stream_events(
            handle.events(), thread_id=turn.thread_id, run_id=handle.run.run_id, result=handle.result
        )
        if trace is not None:
            events = traced_events(events, trace)
        return responses_sse_response(events, headers=headers, ping_seconds=15)
    answer = response_body(await handle.result())
    if trace is not None:
        answer["metadata"] = {"trace_id": trace.trace_id}
        await trace.end(answer, failed=False)
    return JSONResponse(answer, headers=headers)


@router.post("/invocations", description=_DESCRIPTION, responses=_RESPONSES)
@router.post("/responses", description=_DESCRIPTION + " An alias of `/invocations`.", responses=_RESPONSES)
async def invocations(
    body: ResponsesRequest,
    owner: OwnerDep,
    runs: RunsDep,
    limits: LimitsDep,
    return_trace: ReturnTraceHeader = None,
) -> Response:
    if not trace_requested(return_trace, body.databricks_options):
        return await _run(body, owner, runs, limits, None)
    trace = await start_trace("invocations", body.model_dump(mode="json", exclude_none=True))
    try:
        return await _run(body, owner, runs, limits, trace)
    except BaseException:
        await trace.end(None, failed=True)
        raise

"""`POST /invocations`: the MLflow `ResponsesAgent` protocol over HTTP.

The same request and response bodies (and stream events) as the model on Model Serving, through
the same mapping (`app.serving.responses`) and the same runs service, so Databricks' chat front
ends and clients of the serving endpoint work with the App unchanged. The caller's identity comes
from the transport (`AUTH_MODE`), never from `context.user_id`.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from app.api.deps import LimitsDep, OwnerDep, RunsDep
from app.api.schemas import ErrorBody
from app.api.threads import ERRORS
from app.services.run_model import TurnRequest
from app.serving.responses import ResponsesRequest, plan_turn, response_body, stream_events
from app.streaming import responses_sse_response, sse_event_schema

router = APIRouter(tags=["responses"])

_SSE_EVENT = sse_event_schema("A Responses stream event as JSON, or `[DONE]`")


@router.post(
    "/invocations",
    description=(
        "Run one turn, ResponsesAgent style. The thread is `custom_inputs.thread_id`, else"
        " `context.conversation_id`, else a new one; it is returned in `custom_outputs.thread_id`."
        " On a named thread only the trailing user messages of `input` are new (the rest is in the"
        " thread's memory). With `stream: true` the answer streams as Server-Sent Events: one"
        " `data:` frame per Responses stream event (`response.output_text.delta`,"
        " `response.output_item.done`, `response.completed` or `error`), then `data: [DONE]`."
    ),
    responses={
        **ERRORS,
        200: {
            # Each Server-Sent Event (how SSE-aware clients and validators read the stream).
            "content": {"text/event-stream": {"schema": _SSE_EVENT}},
            "description": "A ResponsesAgentResponse (`output`, `custom_outputs`), or its event stream",
        },
        409: {"model": ErrorBody, "description": "thread_busy: another turn is running (see Retry-After)"},
        502: {"model": ErrorBody, "description": "turn_failed: the agent failed; nothing was saved"},
        504: {"model": ErrorBody, "description": "turn_timeout: nothing was saved"},
    },
)
async def invocations(body: ResponsesRequest, owner: OwnerDep, runs: RunsDep, limits: LimitsDep) -> Response:
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
        return responses_sse_response(events, headers=headers, ping_seconds=15)
    return JSONResponse(response_body(await handle.result()), headers=headers)

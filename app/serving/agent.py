"""The MLflow `ResponsesAgent` for Model Serving: the service's own runs service, not a second agent.

Each model process opens the pool, the graph and the services once (`app.lifespan.open_resources`,
on the first request, on a background event loop; see `app.serving.runtime`), reuses them for
every request and closes them at exit. A request is one turn through `RunService.start`, so the
per-thread rule, the failure rules and the memory are exactly the HTTP service's.

Owner. Model Serving gives the model no verified caller identity: who may query the endpoint is
decided by its permissions. So every thread belongs to `SERVING_OWNER` (default `LOCAL_OWNER`),
and a thread id (a random uuid4 unless the caller picks one) is what separates conversations.
With `SERVING_TRUST_REQUEST_USER=true` the request's `context.user_id` (else
`custom_inputs.user`) is the owner instead, for callers that fill it from an authenticated user.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator, Sequence
from contextlib import AbstractAsyncContextManager

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import ErrorCode
from mlflow.pyfunc.model import ResponsesAgent
from mlflow.types.responses import ResponsesAgentRequest, ResponsesAgentResponse, ResponsesAgentStreamEvent

from app.errors import ServiceError, as_service_error
from app.lifespan import Resources, open_resources
from app.services.run_model import TurnRequest
from app.serving.responses import (
    ResponsesRequest,
    parse_request,
    plan_turn,
    request_user,
    response_body,
    stream_events,
)
from app.serving.runtime import BackgroundResources
from app.settings import Settings, canonical_owner

logger = logging.getLogger(__name__)

# How a ServiceError's HTTP status reads as an MLflow error code (the scoring server maps it back).
_MLFLOW_CODES = {
    400: "INVALID_PARAMETER_VALUE",
    401: "UNAUTHENTICATED",
    404: "RESOURCE_DOES_NOT_EXIST",
    409: "RESOURCE_CONFLICT",
    413: "INVALID_PARAMETER_VALUE",
    422: "INVALID_PARAMETER_VALUE",
    503: "TEMPORARILY_UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class ServingError(MlflowException):
    """A service error as MLflow reports it; `code` is the service's stable code (`thread_busy`)."""

    def __init__(self, error: ServiceError) -> None:
        name = _MLFLOW_CODES.get(error.status_code, "INTERNAL_ERROR")
        super().__init__(f"{error.code}: {error.message}", error_code=ErrorCode.Value(name))
        self.code = error.code
        self.status_code = error.status_code
        self.headers = error.headers


class _Unexpected(ServiceError):
    status_code = 500
    code = "internal_error"


def _serving_error(exc: Exception) -> ServingError:
    mapped = as_service_error(exc)
    if mapped is None:
        # Library text can hold connection strings or SQL: log it, never return it.
        logger.exception("unexpected error in the serving model")
        mapped = _Unexpected("An unexpected error occurred; it has been logged.")
    return ServingError(mapped)


class MemoryResponsesAgent(ResponsesAgent):
    """The agent with durable thread memory, as an MLflow `ResponsesAgent`."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        model: BaseChatModel | None = None,
        tools: Sequence[BaseTool] | None = None,
    ) -> None:
        """`settings` default to the environment's, read on the first request (in the serving
        process); `model` and `tools` replace the ones settings would choose, as in
        `open_resources`."""
        self._settings = settings
        self._model = model
        self._tools = tools
        self._background: BackgroundResources | None = None
        self._lock = threading.Lock()

    def _open(self, settings: Settings) -> AbstractAsyncContextManager[Resources]:
        return open_resources(settings, model=self._model, tools=self._tools)

    def _runtime(self) -> BackgroundResources:
        with self._lock:
            if self._background is None:
                self._background = BackgroundResources(self._settings or Settings(), opener=self._open)
            return self._background

    def close(self) -> None:
        """Close the pool now (it is closed at process exit anyway)."""
        with self._lock:
            background, self._background = self._background, None
        if background is not None:
            background.close()

    def _owner(self, settings: Settings, request: ResponsesRequest) -> str:
        if settings.serving.trust_request_user and (user := request_user(request)):
            return canonical_owner(user)
        return canonical_owner(settings.serving.owner or settings.auth.local_owner)

    def _plan(
        self, runtime: BackgroundResources, request: ResponsesAgentRequest, *, stream: bool
    ) -> TurnRequest:
        ours = parse_request(request.model_dump(exclude_none=True))
        settings = runtime.settings
        turn = plan_turn(ours, settings.limits)
        return TurnRequest(
            owner=self._owner(settings, ours), thread_id=turn.thread_id, messages=turn.messages, stream=stream
        )

    # ResponsesAgent narrows PythonModel's (context, model_input, params) signatures; so must we.
    def predict(self, request: ResponsesAgentRequest) -> ResponsesAgentResponse:  # type: ignore[override]
        runtime = self._runtime()
        try:
            turn = self._plan(runtime, request, stream=False)
            runs = runtime.resources().runs
            handle = runtime.run(runs.submit(turn))
            result = runtime.run(handle.result())
        except Exception as exc:
            raise _serving_error(exc) from exc
        return ResponsesAgentResponse(**response_body(result))

    def predict_stream(  # type: ignore[override]
        self, request: ResponsesAgentRequest
    ) -> Generator[ResponsesAgentStreamEvent, None, None]:
        runtime = self._runtime()
        try:
            turn = self._plan(runtime, request, stream=True)
            runs = runtime.resources().runs
            handle = runtime.run(runs.submit(turn))
        except Exception as exc:
            raise _serving_error(exc) from exc
        events = stream_events(
            handle.events(), thread_id=turn.thread_id, run_id=handle.run.run_id, result=handle.result
        )
        for event in runtime.iterate(events):
            yield ResponsesAgentStreamEvent(**event)

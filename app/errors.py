"""Domain errors and the one place they become HTTP responses.

Every failure a client can cause is a `ServiceError` subclass carrying its status and a stable
`code`; the handlers below render all of them, FastAPI's validation errors, Starlette's HTTP
errors, database outages and anything unexpected as `{"error": {"code", "message"}}`. Messages
are written for the client; exception text from libraries is never sent (it can hold SQL,
connection strings or tokens).
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
import psycopg_pool
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.agent.model_errors import ModelCallError
from app.memory.credentials import CredentialUnavailable

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    status_code: int = 400
    code: str = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}


class InvalidInput(ServiceError):
    status_code = 422
    code = "invalid_input"


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"


class ThreadNotFound(ServiceError):
    status_code = 404
    code = "thread_not_found"

    def __init__(self, thread_id: str) -> None:
        super().__init__(f"Thread {thread_id!r} does not exist.")


class CheckpointNotFound(ServiceError):
    status_code = 404
    code = "checkpoint_not_found"

    def __init__(self, thread_id: str, checkpoint_id: str) -> None:
        super().__init__(f"Thread {thread_id!r} has no checkpoint {checkpoint_id!r}.")


class TurnNotFound(ServiceError):
    status_code = 404
    code = "turn_not_found"

    def __init__(self, thread_id: str, run_id: str) -> None:
        super().__init__(f"Thread {thread_id!r} has no completed turn with run id {run_id!r}.")


class TracingUnavailable(ServiceError):
    """A trace id was asked for, but MLflow (the `serving` or `databricks` extra) is not installed."""

    status_code = 501
    code = "tracing_unavailable"


class ThreadExists(ServiceError):
    status_code = 409
    code = "thread_exists"

    def __init__(self, thread_id: str) -> None:
        super().__init__(f"Thread {thread_id!r} already exists.")


class NothingToTitle(ServiceError):
    status_code = 409
    code = "no_exchange"

    def __init__(self, thread_id: str) -> None:
        super().__init__(
            f"Thread {thread_id!r} has no completed question and answer to title it from yet;"
            " try again after its first turn."
        )


class ThreadBusy(ServiceError):
    status_code = 409
    code = "thread_busy"

    def __init__(self, thread_id: str, retry_after: int) -> None:
        super().__init__(
            f"Thread {thread_id!r} is running another turn; retry after it finishes.",
            headers={"Retry-After": str(retry_after)},
        )


class ThreadInterrupted(ServiceError):
    status_code = 409
    code = "thread_interrupted"

    def __init__(self, thread_id: str) -> None:
        super().__init__(
            f"Thread {thread_id!r} is waiting for a decision on a paused turn (an approval). Resume it"
            " with `resume`, or send the message with `abandon_interrupt: true` to leave it unanswered.",
        )


class NotInterrupted(ServiceError):
    status_code = 409
    code = "not_interrupted"

    def __init__(self, thread_id: str, interrupt_id: str | None = None) -> None:
        which = f"interrupt {interrupt_id!r}" if interrupt_id else "an interrupt"
        super().__init__(
            f"Thread {thread_id!r} is not waiting on {which}: it was resumed already, or never paused."
        )


class RunNotFound(ServiceError):
    status_code = 404
    code = "run_not_found"

    def __init__(self, run_id: str) -> None:
        super().__init__(f"Run {run_id!r} does not exist on this thread.")


class RunNotActive(ServiceError):
    status_code = 409
    code = "run_not_active"

    def __init__(self, run_id: str, status: str) -> None:
        super().__init__(
            f"Run {run_id!r} is already {status}; only pending or running runs can be cancelled."
        )


class AssistantNotFound(ServiceError):
    status_code = 404
    code = "assistant_not_found"

    def __init__(self, assistant_id: str, served: list[str]) -> None:
        super().__init__(
            f"No assistant or graph {assistant_id!r} is served here; served: {', '.join(served)}."
        )


class GraphMismatch(ServiceError):
    status_code = 409
    code = "graph_mismatch"

    def __init__(self, thread_id: str, graph: str) -> None:
        super().__init__(
            f"Thread {thread_id!r} runs on the graph {graph!r}; start a new thread for another graph."
        )


class RunStillActive(ServiceError):
    status_code = 409
    code = "run_active"

    def __init__(self, run_id: str, status: str) -> None:
        super().__init__(f"Run {run_id!r} is still {status}; cancel it first.")


class RunCancelled(ServiceError):
    """The run was cancelled (by a client, or by a newer run's interrupt/rollback strategy)."""

    status_code = 409
    code = "cancelled"


class WorkerLost(ServiceError):
    """The process running the turn died; nothing was saved and a retry is safe."""

    status_code = 503
    code = "worker_lost"


class IdempotencyConflict(ServiceError):
    status_code = 422
    code = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__("This Idempotency-Key was already used for a different request on this thread.")


class TurnFailed(ServiceError):
    """The agent could not complete the turn; nothing of it was saved."""

    status_code = 502
    code = "turn_failed"


class TurnTimeout(ServiceError):
    status_code = 504
    code = "turn_timeout"


class MemoryNotFound(ServiceError):
    status_code = 404
    code = "memory_not_found"


class LongTermMemoryOff(ServiceError):
    status_code = 404
    code = "long_term_memory_off"

    def __init__(self) -> None:
        super().__init__("Long-term memory is off on this service (LONG_TERM_MEMORY=false).")


class ServiceUnavailable(ServiceError):
    status_code = 503
    code = "service_unavailable"


class DatabaseUnavailable(ServiceError):
    status_code = 503
    code = "database_unavailable"

    def __init__(self, retry_after: int = 2) -> None:
        super().__init__(
            "The database is unreachable right now; retry shortly.",
            headers={"Retry-After": str(retry_after)},
        )


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def error_response(exc: ServiceError) -> JSONResponse:
    return JSONResponse(
        error_body(exc.code, exc.message, exc.details),
        status_code=exc.status_code,
        headers=exc.headers,
    )


def error_for(code: str, message: str) -> ServiceError:
    """The error a finished run's stored code stands for (a run joined from its record)."""
    statuses = {
        cls.code: cls.status_code
        for cls in (
            TurnFailed,
            TurnTimeout,
            ServiceUnavailable,
            DatabaseUnavailable,
            RunCancelled,
            WorkerLost,
            CheckpointNotFound,
            InvalidInput,
            ThreadInterrupted,
            NotInterrupted,
        )
    }
    error = ServiceError(message, headers={"Retry-After": "1"} if statuses.get(code) == 503 else None)
    error.status_code = statuses.get(code, TurnFailed.status_code)
    error.code = code
    return error


def as_service_error(exc: BaseException) -> ServiceError | None:
    """Map infrastructure failures to the error the client should see, or None if unexpected."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, ModelCallError):  # its message is written for the client
        return TurnTimeout(exc.message) if exc.timed_out else TurnFailed(exc.message)
    if isinstance(exc, psycopg_pool.PoolTimeout | psycopg.OperationalError | CredentialUnavailable):
        return DatabaseUnavailable()
    if isinstance(exc, psycopg.DataError | UnicodeEncodeError):
        # Input the schemas let through but PostgreSQL cannot store (a NUL, a lone surrogate):
        # the client's to fix.
        return InvalidInput("A value in the request cannot be stored (for example a NUL character).")
    return None


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def _validation_message(exc: RequestValidationError) -> tuple[int, str, str]:
    errors = exc.errors()
    for err in errors:
        if err.get("type") == "json_invalid":
            return 400, "malformed_json", "The request body is not valid JSON."
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        # pydantic prefixes our validators' messages with "Value error, ": noise for a client.
        parts.append(f"{loc or 'body'}: {str(err.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return 422, "invalid_input", "; ".join(parts) or "The request is invalid."


def install_error_handlers(app: FastAPI) -> None:
    async def on_service_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServiceError)
        return error_response(exc)

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        status, code, message = _validation_message(exc)
        return JSONResponse(error_body(code, message), status_code=status)

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        mapped = as_service_error(exc)
        if mapped is not None:
            # Logged as what it was mapped to: a client's bad value is not an outage.
            logger.warning(
                "%s on %s %s: %s", mapped.code, request.method, request.url.path, type(exc).__name__
            )
            return error_response(mapped)
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body("internal_error", "An unexpected error occurred; it has been logged."),
            status_code=500,
        )

    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(psycopg.Error, on_unexpected)
    app.add_exception_handler(psycopg_pool.PoolTimeout, on_unexpected)
    app.add_exception_handler(CredentialUnavailable, on_unexpected)
    app.add_exception_handler(UnicodeEncodeError, on_unexpected)
    app.add_exception_handler(Exception, on_unexpected)

"""MLflow traces of Responses turns, when the caller asks for the trace id.

Databricks' chat front ends and the Review App ask with the `x-mlflow-return-trace-id: true`
header (MLflow's agent server) or `databricks_options.return_trace` in the body; the answer then
carries `metadata.trace_id`, and a stream ends with a `{"trace_id": ...}` event before
`[DONE]`, as MLflow's agent server does. The trace (one AGENT span: the request in, the response
out) goes wherever MLflow is configured to log (`MLFLOW_TRACKING_URI`, `MLFLOW_EXPERIMENT_ID`).

MLflow is optional (the `serving` or `databricks` extra) and heavy to import, so it is imported
on the first traced request, off the event loop; span export may write to a file or call the
tracking server, so ending a span runs off the loop too.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from app.errors import TracingUnavailable
from app.serving.responses import DatabricksOptions

RETURN_TRACE_HEADER = "x-mlflow-return-trace-id"


def trace_requested(header: str | None, options: DatabricksOptions | None) -> bool:
    """Whether the caller asked for the trace id (header value `true`, or `return_trace`)."""
    return (header or "").strip().lower() == "true" or (options is not None and options.return_trace)


@dataclass(frozen=True)
class TurnTrace:
    trace_id: str
    span: Any

    async def end(self, outputs: dict[str, Any] | None, *, failed: bool) -> None:
        await asyncio.to_thread(self.span.end, outputs=outputs, status="ERROR" if failed else "OK")


async def start_trace(name: str, inputs: dict[str, Any]) -> TurnTrace:
    """Open the turn's root span; `TracingUnavailable` (501) without MLflow."""
    try:
        mlflow = await asyncio.to_thread(importlib.import_module, "mlflow")
    except ImportError:
        raise TracingUnavailable(
            "A trace id was asked for, but MLflow is not installed here: install the `serving` extra."
        ) from None
    span = await asyncio.to_thread(mlflow.start_span_no_context, name=name, span_type="AGENT", inputs=inputs)
    return TurnTrace(trace_id=str(span.trace_id), span=span)


async def traced_events(
    events: AsyncIterator[dict[str, Any]], trace: TurnTrace
) -> AsyncIterator[dict[str, Any]]:
    """The stream, then `{"trace_id": ...}`; the span ends with the completed response (or as
    failed when the turn failed or the client went away)."""
    completed: dict[str, Any] | None = None
    failed = False
    try:
        async for event in events:
            if event.get("type") == "response.completed":
                completed = event
            failed = failed or event.get("type") == "error"
            yield event
    finally:
        await trace.end(completed, failed=failed or completed is None)
    yield {"trace_id": trace.trace_id}

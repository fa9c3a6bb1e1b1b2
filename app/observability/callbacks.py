"""LangChain callbacks that time model and tool calls for the metrics, per turn."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from app.observability.metrics import Metrics


class MetricsCallback(AsyncCallbackHandler):
    """Model latency and tokens by provider; tool calls by tool and outcome, with latency."""

    def __init__(self, metrics: Metrics, provider: str) -> None:
        self._metrics = metrics
        self._provider = provider
        self._started: dict[UUID, float] = {}
        self._tools: dict[UUID, str] = {}

    async def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], *, run_id: UUID, **kwargs: Any
    ) -> None:
        self._started[run_id] = time.perf_counter()

    async def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        started = self._started.pop(run_id, None)
        if started is not None:
            self._metrics.model_latency.labels(provider=self._provider).observe(time.perf_counter() - started)
        for generations in response.generations:
            for generation in generations:
                usage = (
                    getattr(generation.message, "usage_metadata", None)
                    if isinstance(generation, ChatGeneration)
                    else None
                )
                if usage:
                    self._metrics.model_tokens.labels(provider=self._provider, direction="in").inc(
                        usage.get("input_tokens", 0)
                    )
                    self._metrics.model_tokens.labels(provider=self._provider, direction="out").inc(
                        usage.get("output_tokens", 0)
                    )

    async def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        started = self._started.pop(run_id, None)
        if started is not None:
            self._metrics.model_latency.labels(provider=self._provider).observe(time.perf_counter() - started)

    async def on_tool_start(
        self, serialized: dict[str, Any], input_str: str, *, run_id: UUID, **kwargs: Any
    ) -> None:
        self._started[run_id] = time.perf_counter()
        self._tools[run_id] = str((serialized or {}).get("name") or kwargs.get("name") or "unknown")

    def _tool_done(self, run_id: UUID, outcome: str) -> None:
        started = self._started.pop(run_id, None)
        tool = self._tools.pop(run_id, "unknown")
        self._metrics.tool_calls.labels(tool=tool, outcome=outcome).inc()
        if started is not None:
            self._metrics.tool_latency.labels(tool=tool).observe(time.perf_counter() - started)

    async def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._tool_done(run_id, "success")

    async def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._tool_done(run_id, "timeout" if isinstance(error, TimeoutError) else "error")

"""Model and tool call metrics, fed by the agent graph's observer hook (app/agent/graph.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.observability.metrics import Metrics


class GraphMetrics:
    """Model latency and tokens by provider; tool calls by tool and outcome, with latency."""

    def __init__(self, metrics: Metrics, provider: str) -> None:
        self._metrics = metrics
        self._provider = provider

    def model_call(self, seconds: float, usage: Mapping[str, Any] | None) -> None:
        self._metrics.model_latency.labels(provider=self._provider).observe(seconds)
        if usage:
            tokens = self._metrics.model_tokens
            tokens.labels(provider=self._provider, direction="in").inc(int(usage.get("input_tokens", 0) or 0))
            tokens.labels(provider=self._provider, direction="out").inc(
                int(usage.get("output_tokens", 0) or 0)
            )

    def tool_call(self, tool: str, outcome: str, seconds: float) -> None:
        self._metrics.tool_calls.labels(tool=tool, outcome=outcome).inc()
        self._metrics.tool_latency.labels(tool=tool).observe(seconds)

"""Test doubles, in one place. Production code never bends to fit them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.tools import BaseTool, StructuredTool

from app.agent.offline_model import OfflineChatModel


class ExplodingModel(OfflineChatModel):
    """Plans like the offline model, but fails on its `fail_on`-th call (1-based)."""

    fail_on: int = 1
    calls: int = 0

    def _count_call(self) -> None:
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("model endpoint exploded: secret=hunter2")

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self._count_call()
        return super()._generate(messages, stop, run_manager, **kwargs)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        self._count_call()
        async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
            yield chunk


def broken_threat_tool() -> BaseTool:
    async def get_cyber_threat_info(threat_type: str) -> str:
        """Always fails, like a database or UC function that is down."""
        raise ConnectionError("threat table unreachable")

    return StructuredTool.from_function(coroutine=get_cyber_threat_info, name="get_cyber_threat_info")

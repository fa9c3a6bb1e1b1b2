"""The one place a chat model is chosen from settings (MODEL_PROVIDER).

- `offline`: the project's deterministic model (no endpoint, no network);
- `databricks`: a Model Serving chat endpoint (app/agent/databricks_model.py);
- `openai`: any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, ...) through `ChatOpenAI`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr

from app.agent.databricks_model import build_databricks_model, workspace_client
from app.agent.model_check import check_model_endpoint
from app.agent.offline_model import OfflineChatModel
from app.settings import ModelProvider, ModelSettings


def build_model(settings: ModelSettings, *, workspace: Any | None = None) -> BaseChatModel:
    """The chat model `settings` describe; `workspace` is the databricks-sdk WorkspaceClient for
    MODEL_PROVIDER=databricks (default: one from the environment). Raises `ModelConfigError`
    for a configuration that cannot work; blocking (Databricks auth may call the host)."""
    if settings.provider is ModelProvider.OFFLINE:
        return OfflineChatModel(token_delay_seconds=settings.offline_token_delay_ms / 1000)
    if settings.provider is ModelProvider.DATABRICKS:
        return build_databricks_model(settings, workspace=workspace)
    return _openai(settings)


async def prepare_model(settings: ModelSettings, *, workspace: Any | None = None) -> BaseChatModel:
    """`build_model`, then (MODEL_STARTUP_CHECK) one short request to the endpoint, so a wrong
    URL, endpoint name or credential fails at start-up with a `ModelConfigError`, not at the
    first user's turn."""
    if settings.provider is ModelProvider.DATABRICKS:
        workspace = await asyncio.to_thread(workspace_client, workspace)
    model = await asyncio.to_thread(build_model, settings, workspace=workspace)
    if settings.startup_check:
        await check_model_endpoint(settings, workspace=workspace)
    return model


def _openai(settings: ModelSettings) -> BaseChatModel:
    from langchain_openai import ChatOpenAI

    assert settings.base_url is not None and settings.name is not None  # settings validate both
    return ChatOpenAI(
        model=settings.name,
        base_url=settings.base_url,
        # Local servers (vLLM, Ollama) take any key; the openai client refuses to run without one.
        api_key=settings.api_key or SecretStr("not-needed"),
        timeout=httpx.Timeout(settings.timeout_seconds),
        max_retries=settings.max_retries,
        stream_chunk_timeout=settings.timeout_seconds,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
    )

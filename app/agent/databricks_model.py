"""Databricks Model Serving chat endpoints, authenticated by databricks-sdk unified auth.

Two routes to the same endpoint. With the `databricks` extra installed, `ChatDatabricks` from
databricks-langchain. Without it (the extra pulls full MLflow and databricks-connect), the
endpoint's OpenAI-compatible API at `{host}/serving-endpoints` through langchain-openai's
`ChatOpenAI`, whose sync AND async httpx clients carry `DatabricksAuth`: databricks-sdk's own
`get_open_ai_client` helper authenticates only the sync client, and a token fixed at start-up
would expire under a long-running service, so headers are asked of the SDK on every request
(it caches and refreshes OAuth tokens itself).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator
from typing import Any

import httpx
from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr

from app.agent.model_errors import ModelConfigError
from app.settings import DatabricksChatClient, ModelSettings

EXTRA_HINT = "pip install 'lakebase-memory-agent[databricks]' (or: uv sync --extra databricks)"


class DatabricksAuth(httpx.Auth):
    """Fresh Databricks auth headers on every request, from a databricks-sdk `Config`."""

    def __init__(self, config: Any) -> None:
        self._config = config

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self._config.authenticate())
        yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        # A refresh is an HTTP call in the SDK (blocking): keep it off the event loop.
        headers = await asyncio.to_thread(self._config.authenticate)
        request.headers.update(headers)
        yield request


def workspace_client(workspace: Any | None) -> Any:
    """The given WorkspaceClient, or one from the environment (env vars, profile, OAuth M2M,
    a Databricks App's service principal). Blocking: it may probe the host."""
    if workspace is not None:
        return workspace
    from databricks.sdk import WorkspaceClient

    try:
        return WorkspaceClient()
    except ValueError as exc:  # the SDK's "cannot configure default credentials" and friends
        raise ModelConfigError(
            "Databricks authentication is not configured: set DATABRICKS_HOST with DATABRICKS_TOKEN,"
            " or DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET, or DATABRICKS_CONFIG_PROFILE"
            f" ({' '.join(str(exc).split())[:200]})"
        ) from exc


def has_databricks_langchain() -> bool:
    """Whether the `databricks` extra can be used: imported for real (it is needed right after
    whenever this is asked), so a half-installed extra counts as missing."""
    try:
        import databricks_langchain  # noqa: F401
    except ImportError:
        return False
    return True


def uses_chat_databricks(settings: ModelSettings) -> bool:
    """Whether the `databricks-langchain` route is chosen (checking the extra when asked for)."""
    choice = settings.databricks_client
    if choice is DatabricksChatClient.OPENAI:
        return False
    if choice is DatabricksChatClient.LANGCHAIN and not has_databricks_langchain():
        raise ModelConfigError(
            "DATABRICKS_CHAT_CLIENT=databricks-langchain needs the `databricks` extra: "
            f"{EXTRA_HINT}; or set DATABRICKS_CHAT_CLIENT=openai"
        )
    return has_databricks_langchain()


def build_databricks_model(settings: ModelSettings, *, workspace: Any | None = None) -> BaseChatModel:
    client = workspace_client(workspace)
    if uses_chat_databricks(settings):
        return _chat_databricks(settings, client)
    return _openai_compatible(settings, client)


def _chat_databricks(settings: ModelSettings, client: Any) -> BaseChatModel:
    from databricks_langchain import ChatDatabricks

    kwargs: dict[str, Any] = {
        "model": settings.serving_endpoint,
        "workspace_client": client,
        "timeout": settings.timeout_seconds,
        "max_retries": settings.max_retries,
    }
    if settings.temperature is not None:
        kwargs["temperature"] = settings.temperature
    if settings.max_tokens is not None:
        kwargs["max_tokens"] = settings.max_tokens
    model: BaseChatModel = ChatDatabricks(**kwargs)
    return model


def _openai_compatible(settings: ModelSettings, client: Any) -> BaseChatModel:
    from langchain_openai import ChatOpenAI

    config = client.config
    auth = DatabricksAuth(config)
    timeout = httpx.Timeout(settings.timeout_seconds)
    return ChatOpenAI(
        model=settings.serving_endpoint,
        base_url=f"{config.host.rstrip('/')}/serving-endpoints",
        # The openai client insists on a key; DatabricksAuth replaces its header on every request.
        api_key=SecretStr("set-per-request"),
        http_client=httpx.Client(auth=auth, timeout=timeout),
        http_async_client=httpx.AsyncClient(auth=auth, timeout=timeout),
        timeout=settings.timeout_seconds,
        max_retries=settings.max_retries,
        stream_chunk_timeout=settings.timeout_seconds,
        temperature=settings.temperature,
        # ChatOpenAI sends max_tokens as `max_completion_tokens`; serving endpoints read `max_tokens`.
        extra_body={"max_tokens": settings.max_tokens} if settings.max_tokens is not None else None,
    )

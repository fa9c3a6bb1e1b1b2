"""A start-up probe of the model endpoint: one short request, an error that names the setting.

Only what is certainly wrong fails start-up (nothing listening, credentials refused, no such
serving endpoint); anything else the endpoint answers (a server without `/models`, say) passes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from app.agent.model_errors import ModelConfigError
from app.settings import ModelProvider, ModelSettings

logger = logging.getLogger(__name__)


def _shown(url: str) -> str:
    """The URL without any user:password part, fit for an error message."""
    return str(httpx.URL(url).copy_with(username=None, password=None))


async def check_model_endpoint(settings: ModelSettings, *, workspace: Any | None = None) -> None:
    if settings.provider is ModelProvider.OPENAI:
        await _check_openai(settings)
    elif settings.provider is ModelProvider.DATABRICKS:
        await _check_databricks(settings, workspace)


async def _get(url: str, headers: dict[str, str], seconds: float) -> httpx.Response:
    async with httpx.AsyncClient(timeout=seconds) as client:
        return await client.get(url, headers=headers)


async def _check_openai(settings: ModelSettings) -> None:
    assert settings.base_url is not None
    headers = {}
    if settings.api_key is not None:
        headers["Authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
    url = f"{settings.base_url.rstrip('/')}/models"
    try:
        response = await _get(url, headers, settings.startup_check_timeout)
    except httpx.HTTPError as exc:
        raise ModelConfigError(
            f"OPENAI_BASE_URL={_shown(settings.base_url)!r} is unreachable ({type(exc).__name__} within"
            f" {settings.startup_check_timeout:g} s): check the URL and that the server runs"
            " (MODEL_STARTUP_CHECK=false skips this check)"
        ) from exc
    if response.status_code in (401, 403):
        raise ModelConfigError(
            f"the endpoint at OPENAI_BASE_URL refused the credentials (HTTP {response.status_code}):"
            " check OPENAI_API_KEY"
        )


async def _check_databricks(settings: ModelSettings, workspace: Any) -> None:
    config = workspace.config
    name = settings.serving_endpoint
    url = f"{config.host.rstrip('/')}/api/2.0/serving-endpoints/{name}"
    try:
        headers = await asyncio.to_thread(config.authenticate)
        response = await _get(url, headers, settings.startup_check_timeout)
    except httpx.HTTPError as exc:
        raise ModelConfigError(
            f"DATABRICKS_HOST={_shown(config.host)!r} is unreachable ({type(exc).__name__} within"
            f" {settings.startup_check_timeout:g} s) (MODEL_STARTUP_CHECK=false skips this check)"
        ) from exc
    except ValueError as exc:  # the SDK could not produce credentials
        raise ModelConfigError(
            f"Databricks authentication failed ({' '.join(str(exc).split())[:200]}): check DATABRICKS_*"
        ) from exc
    if response.status_code in (401, 403):
        raise ModelConfigError(
            f"Databricks refused the credentials for serving endpoint {name!r} (HTTP {response.status_code}):"
            " check DATABRICKS_TOKEN / DATABRICKS_CLIENT_ID and the endpoint's permissions"
        )
    if response.status_code == 404:
        raise ModelConfigError(
            f"this workspace has no serving endpoint {name!r}: set DATABRICKS_SERVING_ENDPOINT"
            " to the name of a chat endpoint"
        )
    if response.is_success:
        ready = (response.json().get("state") or {}).get("ready")
        if ready and ready != "READY":
            # Scaled to zero or updating: it may still answer (slowly), so only say so.
            logger.warning("serving endpoint %s is %s", name, ready)

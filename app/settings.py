"""Service settings, read from the environment (and an optional `.env` file).

Each group is its own model so a reader finds every knob of one concern in one place; the
environment names are flat (`DB_POOL_MAX_SIZE`, not `DATABASE__POOL_MAX_SIZE`) because they are
the names the seed and Databricks Apps already use. Every name is documented in the README.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BeforeValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.database_url import database_url_problem
from app.memory_settings import EmbeddingProvider as EmbeddingProvider
from app.memory_settings import MemorySettings as MemorySettings


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


# A list setting written as "a,b,c" in the environment.
CsvList = Annotated[list[str], NoDecode, BeforeValidator(_split_csv)]


def canonical_owner(owner: str) -> str:
    """One spelling per owner: an email is case-insensitive (`Alice@Corp.com` is `alice@corp.com`);
    migration 5 rewrote owners stored before this rule the same way."""
    return owner.lower() if "@" in owner else owner


class AuthMode(StrEnum):
    NONE = "none"
    API_KEY = "api_key"
    DATABRICKS = "databricks"


class BusyMode(StrEnum):
    REJECT = "reject"
    WAIT = "wait"


class MultitaskStrategy(StrEnum):
    """What a new run does when its thread already has a run (the Agent Protocol's names)."""

    REJECT = "reject"  # 409 thread_busy (or wait, with THREAD_BUSY_MODE=wait)
    ENQUEUE = "enqueue"  # wait as `pending`, start when the thread is free, in creation order
    INTERRUPT = "interrupt"  # cancel the active runs, then start
    ROLLBACK = "rollback"  # cancel and delete the active runs, then start


def default_embedded_dir() -> Path:
    """Where the embedded PostgreSQL keeps its data when no folder is configured.

    The embedded server runs as a separate system user when we are root and must be able to
    traverse every parent folder; it makes them world-readable to get there. So as root the data
    lives under /var/lib, never under the root user's home.
    """
    if os.name != "nt" and os.geteuid() == 0:
        return Path("/var/lib/lakebase-memory-agent/pgdata")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "lakebase-memory-agent" / "pgdata"


class _Group(BaseSettings):
    # hide_input_in_errors: a validation error (printed by uvicorn's worker on a failed start)
    # must not echo a value, which can be a password or a key.
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", frozen=True, populate_by_name=True, hide_input_in_errors=True
    )


class DatabaseSettings(_Group):
    url: SecretStr | None = Field(
        default=None,
        validation_alias="DATABASE_URL",
        description="PostgreSQL URL. Unset: an embedded PostgreSQL is started under EMBEDDED_PG_DIR.",
    )
    embedded_dir: Path = Field(default_factory=default_embedded_dir, validation_alias="EMBEDDED_PG_DIR")
    pool_min_size: int = Field(default=1, ge=0, validation_alias="DB_POOL_MIN_SIZE")
    pool_max_size: int = Field(default=10, ge=1, validation_alias="DB_POOL_MAX_SIZE")
    pool_timeout: float = Field(default=30.0, gt=0, validation_alias="DB_POOL_TIMEOUT")
    pool_max_idle: float = Field(default=300.0, gt=0, validation_alias="DB_POOL_MAX_IDLE")
    pool_max_lifetime: float = Field(default=1800.0, gt=0, validation_alias="DB_POOL_MAX_LIFETIME")
    # A pooled connection idle longer than this is checked with a round trip before use.
    check_idle_after: float = Field(default=2.0, ge=0, validation_alias="DB_POOL_CHECK_IDLE_AFTER")
    # psycopg's prepare_threshold; -1 turns prepared statements off (needed behind transaction poolers).
    prepare_threshold: int = Field(default=0, ge=-1, validation_alias="DB_PREPARE_THRESHOLD")
    load_sample_data: bool = Field(default=True, validation_alias="LOAD_SAMPLE_DATA")
    # Create/upgrade tables at start. False for a least-privilege role (deploy/grants.sql):
    # an admin runs `init-db` instead, and start-up only checks the tables are there.
    migrate: bool = Field(default=True, validation_alias="DB_MIGRATE")
    # All tables (ours and the checkpointer's) live in this schema; created if missing.
    schema_name: str | None = Field(
        default=None,
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        validation_alias=AliasChoices("DB_SCHEMA", "LAKEBASE_SCHEMA"),
    )

    @field_validator("url")
    @classmethod
    def _parsable_url(cls, value: SecretStr | None) -> SecretStr | None:
        problem = None if value is None else database_url_problem(value.get_secret_value())
        if problem is not None:
            raise ValueError(f"DATABASE_URL is not a valid PostgreSQL URL: {problem}")
        return value

    @model_validator(mode="after")
    def _pool_sizes(self) -> DatabaseSettings:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError(
                f"DB_POOL_MIN_SIZE ({self.pool_min_size}) is larger than DB_POOL_MAX_SIZE"
                f" ({self.pool_max_size})"
            )
        return self


class LakebaseSettings(_Group):
    """Databricks Lakebase: used when DATABASE_URL is not set and one of these identifies it."""

    instance_name: str | None = Field(default=None, validation_alias="LAKEBASE_INSTANCE_NAME")
    # Autoscaling: the endpoint's resource name, or project (+ branch) to find its read-write endpoint.
    endpoint: str | None = Field(default=None, validation_alias="LAKEBASE_ENDPOINT")
    project: str | None = Field(default=None, validation_alias="LAKEBASE_PROJECT")
    branch: str = Field(default="production", validation_alias="LAKEBASE_BRANCH")
    host: str | None = Field(default=None, validation_alias=AliasChoices("LAKEBASE_HOST", "PGHOST"))
    port: int = Field(default=5432, ge=1, le=65535, validation_alias=AliasChoices("LAKEBASE_PORT", "PGPORT"))
    database: str = Field(
        default="databricks_postgres", validation_alias=AliasChoices("LAKEBASE_DATABASE", "PGDATABASE")
    )
    user: str | None = Field(default=None, validation_alias=AliasChoices("LAKEBASE_USER", "PGUSER"))
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = Field(
        default="require", validation_alias=AliasChoices("LAKEBASE_SSLMODE", "PGSSLMODE")
    )
    # Refresh a token when less than this many seconds (or half its life) are left.
    token_refresh_margin: float = Field(default=900.0, ge=0, validation_alias="LAKEBASE_TOKEN_REFRESH_MARGIN")
    mint_timeout: float = Field(default=10.0, gt=0, validation_alias="LAKEBASE_MINT_TIMEOUT")

    def configured(self) -> bool:
        return bool(self.instance_name or self.endpoint or self.project)


class AuthSettings(_Group):
    mode: AuthMode = Field(default=AuthMode.NONE, validation_alias="AUTH_MODE")
    # "key:owner,key:owner". A SecretStr so a settings dump or a traceback never shows the keys.
    api_keys: SecretStr = Field(default=SecretStr(""), validation_alias="API_KEYS")
    local_owner: str = Field(default="local", min_length=1, validation_alias="LOCAL_OWNER")
    # Owners allowed on /admin routes (comma-separated). With AUTH_MODE=none the local owner is one.
    admin_owners: CsvList = Field(default=[], validation_alias="ADMIN_OWNERS")
    # AUTH_MODE=databricks believes X-Forwarded-Email from whoever reaches the port. `serve`
    # refuses a non-loopback address outside Databricks Apps unless this says the port is
    # reachable only through the Apps proxy (or another proxy that sets those headers itself).
    trust_forwarded_headers: bool = Field(default=False, validation_alias="TRUST_FORWARDED_HEADERS")
    # A bearer token that may read /metrics (Prometheus' `authorization` credentials). Unset:
    # /metrics is open with AUTH_MODE=none and for admin owners only in the other modes.
    metrics_token: SecretStr | None = Field(default=None, min_length=16, validation_alias="METRICS_TOKEN")

    @model_validator(mode="after")
    def _keys_for_mode(self) -> AuthSettings:
        # Checked here so a bad value stops the start, instead of failing every request later.
        if self.mode is AuthMode.API_KEY:
            owners = self.api_key_owners()  # raises naming API_KEYS, never echoing a key
            if not owners:
                raise ValueError(
                    "AUTH_MODE=api_key needs API_KEYS, a comma-separated list of key:owner pairs"
                )
        return self

    def is_admin(self, owner: str) -> bool:
        admins = {canonical_owner(a) for a in self.admin_owners}
        return canonical_owner(owner) in admins or (
            self.mode is AuthMode.NONE and owner == canonical_owner(self.local_owner)
        )

    def api_key_owners(self) -> dict[str, str]:
        owners: dict[str, str] = {}
        for item in self.api_keys.get_secret_value().split(","):
            item = item.strip()
            if not item:
                continue
            key, sep, owner = item.partition(":")
            if not sep or not key.strip() or not owner.strip():
                raise ValueError("API_KEYS must be a comma-separated list of key:owner pairs")
            owners[key.strip()] = owner.strip()
        return owners


class ModelProvider(StrEnum):
    OFFLINE = "offline"
    DATABRICKS = "databricks"
    OPENAI = "openai"


class DatabricksChatClient(StrEnum):
    AUTO = "auto"  # ChatDatabricks when the `databricks` extra is installed, else the OpenAI route
    LANGCHAIN = "databricks-langchain"
    OPENAI = "openai"


class ModelSettings(_Group):
    """The chat model (app/agent/model_factory.py) and what it is shown (prompt, history window)."""

    provider: ModelProvider = Field(default=ModelProvider.OFFLINE, validation_alias="MODEL_PROVIDER")
    # Pause between streamed tokens of the offline model; 0 in production, >0 to see streaming.
    offline_token_delay_ms: float = Field(default=0.0, ge=0, validation_alias="OFFLINE_TOKEN_DELAY_MS")
    # MODEL_PROVIDER=databricks: a Model Serving chat endpoint, auth by databricks-sdk unified auth.
    serving_endpoint: str = Field(
        default="databricks-claude-3-7-sonnet",
        validation_alias=AliasChoices("DATABRICKS_SERVING_ENDPOINT", "LLM_ENDPOINT_NAME"),
    )
    databricks_client: DatabricksChatClient = Field(
        default=DatabricksChatClient.AUTO, validation_alias="DATABRICKS_CHAT_CLIENT"
    )
    # MODEL_PROVIDER=openai: any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, ...).
    base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    name: str | None = Field(default=None, validation_alias="MODEL_NAME")
    # None: the endpoint's default (some models accept no temperature at all).
    temperature: float | None = Field(default=None, ge=0, le=2, validation_alias="MODEL_TEMPERATURE")
    max_tokens: int | None = Field(default=None, ge=1, validation_alias="MODEL_MAX_TOKENS")
    timeout_seconds: float = Field(default=60.0, gt=0, validation_alias="MODEL_TIMEOUT_SECONDS")
    max_retries: int = Field(default=2, ge=0, le=10, validation_alias="MODEL_MAX_RETRIES")
    # At start-up, ask the endpoint once (short timeout) so a wrong URL or name fails fast.
    startup_check: bool = Field(default=True, validation_alias="MODEL_STARTUP_CHECK")
    startup_check_timeout: float = Field(default=5.0, gt=0, validation_alias="MODEL_STARTUP_CHECK_TIMEOUT")
    # The system prompt; `{tools}` is replaced by the tool list. Default: app/agent/prompt.py.
    system_prompt: str | None = Field(default=None, validation_alias="SYSTEM_PROMPT")
    system_prompt_file: Path | None = Field(default=None, validation_alias="SYSTEM_PROMPT_FILE")
    # What the model sees of a thread (app/agent/window.py); the stored thread is never trimmed.
    max_history_messages: int = Field(default=60, ge=2, validation_alias="MODEL_MAX_HISTORY_MESSAGES")
    max_history_tokens: int | None = Field(default=None, ge=100, validation_alias="MODEL_MAX_HISTORY_TOKENS")

    @model_validator(mode="after")
    def _complete_for_provider(self) -> ModelSettings:
        # Messages name the variable to set: they are what an operator sees at start-up.
        if self.provider is ModelProvider.OPENAI:
            if not self.base_url:
                raise ValueError(
                    "MODEL_PROVIDER=openai needs OPENAI_BASE_URL, the endpoint's base URL"
                    " (for example https://api.openai.com/v1 or http://localhost:11434/v1)"
                )
            if not self.base_url.startswith(("http://", "https://")):
                raise ValueError("OPENAI_BASE_URL must start with http:// or https://")
            if not self.name:
                raise ValueError("MODEL_PROVIDER=openai needs MODEL_NAME, the model to ask for")
        if self.provider is ModelProvider.DATABRICKS and not self.serving_endpoint.strip():
            raise ValueError(
                "MODEL_PROVIDER=databricks needs DATABRICKS_SERVING_ENDPOINT, the name of a Model"
                " Serving chat endpoint (default databricks-claude-3-7-sonnet)"
            )
        if self.system_prompt is not None and self.system_prompt_file is not None:
            raise ValueError("set SYSTEM_PROMPT or SYSTEM_PROMPT_FILE, not both")
        if self.system_prompt_file is not None and not self.system_prompt_file.is_file():
            raise ValueError(f"SYSTEM_PROMPT_FILE={str(self.system_prompt_file)!r} is not a readable file")
        return self


class ToolSettings(_Group):
    """The agent's tools (app/agent/tool_factory.py): local SQL tools, or Databricks ones."""

    # "catalog.schema.function,..." (or catalog.schema.*): Unity Catalog functions replace the
    # local SQL tools. Needs the `databricks` extra.
    uc_functions: CsvList = Field(default=[], validation_alias="UC_FUNCTIONS")
    # "catalog.schema.index": adds a Vector Search retriever tool. Needs the `databricks` extra.
    vector_search_index: str | None = Field(default=None, validation_alias="VECTOR_SEARCH_INDEX")
    vector_search_tool_name: str | None = Field(default=None, validation_alias="VECTOR_SEARCH_TOOL_NAME")
    vector_search_description: str | None = Field(
        default=None, validation_alias="VECTOR_SEARCH_TOOL_DESCRIPTION"
    )
    vector_search_num_results: int = Field(
        default=5, ge=1, le=100, validation_alias="VECTOR_SEARCH_NUM_RESULTS"
    )
    # A tool that does not return within this becomes "tool failed: ..." for the model.
    timeout_seconds: float = Field(default=30.0, gt=0, validation_alias="TOOL_TIMEOUT_SECONDS")
    # Tools whose calls wait for a person's approval ("get_user_info,...", or "*" for every
    # tool): the turn pauses on an interrupt until a resume approves, edits or rejects them.
    approval: CsvList = Field(default=[], validation_alias="TOOL_APPROVAL")

    @field_validator("uc_functions")
    @classmethod
    def _three_part_functions(cls, value: list[str]) -> list[str]:
        for name in value:
            if len(name.split(".")) != 3 or not all(name.split(".")):
                raise ValueError(f"UC_FUNCTIONS entry {name!r} is not a catalog.schema.function name")
        return value

    @field_validator("vector_search_index")
    @classmethod
    def _three_part_index(cls, value: str | None) -> str | None:
        if value is not None and (len(value.split(".")) != 3 or not all(value.split("."))):
            raise ValueError(f"VECTOR_SEARCH_INDEX={value!r} is not a catalog.schema.index name")
        return value


# Per cache and process (CACHE_MAX_BYTES).
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024
# A list channel is stored whole at least every this many versions (CHECKPOINT_SNAPSHOT_EVERY).
DEFAULT_SNAPSHOT_EVERY = 100


class RunSettings(_Group):
    busy_mode: BusyMode = Field(default=BusyMode.REJECT, validation_alias="THREAD_BUSY_MODE")
    busy_wait_seconds: float = Field(default=10.0, ge=0, validation_alias="THREAD_BUSY_WAIT_SECONDS")
    lease_seconds: float = Field(default=30.0, ge=2, validation_alias="RUN_LEASE_SECONDS")
    turn_timeout_seconds: float = Field(default=300.0, gt=0, validation_alias="TURN_TIMEOUT_SECONDS")
    shutdown_grace_seconds: float = Field(default=20.0, ge=0, validation_alias="SHUTDOWN_GRACE_SECONDS")
    recursion_limit: int = Field(default=25, ge=4, validation_alias="RECURSION_LIMIT")
    # How much of the thread's transcript a turn loads for the model (it may trim further).
    history_messages: int = Field(default=200, ge=0, validation_alias="HISTORY_MESSAGES")
    # Each per-process cache (history windows, recent checkpoints) holds at most this many bytes
    # (estimated by app/lru.py); beyond, the least recently used entries go.
    cache_max_bytes: int = Field(default=DEFAULT_CACHE_BYTES, ge=0, validation_alias="CACHE_MAX_BYTES")
    # Checkpoints store a list channel's new version as what it appends to the one before, and
    # the whole list at least every this many versions (1: always whole, as the stock saver).
    snapshot_every: int = Field(
        default=DEFAULT_SNAPSHOT_EVERY, ge=1, validation_alias="CHECKPOINT_SNAPSHOT_EVERY"
    )
    # The strategy of a request that names none.
    multitask_strategy: MultitaskStrategy = Field(
        default=MultitaskStrategy.REJECT, validation_alias="MULTITASK_STRATEGY"
    )
    # How long a finished run's events stay for rejoining and replay (swept by the sweeper).
    events_ttl_seconds: int = Field(default=86_400, ge=60, validation_alias="RUN_EVENTS_TTL_SECONDS")
    # A streaming run stores its events in batches at most this far apart.
    events_flush_ms: float = Field(default=50.0, ge=1, le=5000, validation_alias="RUN_EVENTS_FLUSH_MS")
    # Queued runs one process starts at most at once (each a turn on its own thread).
    max_queued_starts: int = Field(default=16, ge=1, validation_alias="RUN_QUEUE_BATCH")


class LimitSettings(_Group):
    max_content_chars: int = Field(default=32_000, ge=1, validation_alias="MAX_CONTENT_CHARS")
    max_messages_per_request: int = Field(default=20, ge=1, validation_alias="MAX_MESSAGES_PER_REQUEST")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, validation_alias="MAX_BODY_BYTES")
    body_read_timeout_seconds: float = Field(default=15.0, gt=0, validation_alias="BODY_READ_TIMEOUT_SECONDS")
    max_page_size: int = Field(default=200, ge=1, validation_alias="MAX_PAGE_SIZE")
    max_metadata_bytes: int = Field(default=16_384, ge=2, validation_alias="MAX_METADATA_BYTES")
    # Nesting and key count of thread metadata; the depth's ceiling keeps every stored value
    # servable (app/services/storable.py).
    max_metadata_depth: int = Field(default=16, ge=1, le=100, validation_alias="MAX_METADATA_DEPTH")
    max_metadata_keys: int = Field(default=256, ge=1, validation_alias="MAX_METADATA_KEYS")
    # The whole body must arrive within this, however it is trickled (BODY_READ_TIMEOUT_SECONDS
    # bounds each pause; this bounds the sum).
    body_deadline_seconds: float = Field(default=60.0, gt=0, validation_alias="BODY_DEADLINE_SECONDS")
    # The server's own limits (app/http_server.py): a request head's size and header count
    # (431 beyond), the time to send a head (408; a connection that sends nothing is closed), how
    # long a kept-alive connection may idle, open connections per process (an idle one is closed
    # to make room), and requests in progress per process (503 beyond; health probes exempt).
    max_header_bytes: int = Field(default=32_768, ge=1024, validation_alias="MAX_HEADER_BYTES")
    max_header_count: int = Field(default=100, ge=10, validation_alias="MAX_HEADER_COUNT")
    header_timeout_seconds: float = Field(default=10.0, gt=0, validation_alias="HEADER_TIMEOUT_SECONDS")
    keepalive_timeout_seconds: float = Field(default=5.0, gt=0, validation_alias="KEEPALIVE_TIMEOUT_SECONDS")
    max_connections: int = Field(default=1000, ge=2, validation_alias="MAX_CONNECTIONS")
    max_concurrent_requests: int = Field(default=200, ge=1, validation_alias="MAX_CONCURRENT_REQUESTS")


class GraphSettings(_Group):
    """Users' own graphs, served beside the built-in agent (app/agent/graph_loader.py)."""

    # A langgraph.json-compatible file: {"graphs": {"name": "./path.py:attr", ...}}.
    config: Path | None = Field(default=None, validation_alias="LANGGRAPH_CONFIG")
    # Or inline: "name=path.py:attr,...".
    graphs: str | None = Field(default=None, validation_alias="GRAPHS")

    @field_validator("config")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"LANGGRAPH_CONFIG={str(value)!r} is not a readable file")
        return value


class RetentionSettings(_Group):
    # Threads idle longer than this are deleted (None: kept forever); a thread's own TTL wins.
    thread_ttl_seconds: int | None = Field(default=None, ge=60, validation_alias="THREAD_TTL_SECONDS")
    # Checkpoints of threads idle longer than this are compacted to the latest (None: never).
    compact_idle_seconds: int | None = Field(default=None, ge=60, validation_alias="COMPACT_IDLE_SECONDS")
    sweep_interval_seconds: float = Field(default=300.0, gt=0, validation_alias="SWEEP_INTERVAL_SECONDS")
    sweep_batch: int = Field(default=200, ge=1, validation_alias="SWEEP_BATCH")


# uvicorn's names; `trace` is below debug.
_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


class ServerSettings(_Group):
    host: str = Field(default="127.0.0.1", validation_alias="HOST")
    port: int = Field(
        default=8000, ge=1, le=65535, validation_alias=AliasChoices("PORT", "DATABRICKS_APP_PORT")
    )
    log_level: str = Field(default="info", validation_alias="LOG_LEVEL")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.lower() not in _LOG_LEVELS:
            raise ValueError(f"LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}")
        return value.lower()

    # Off by default: logs never carry message content unless this is turned on for debugging.
    log_content: bool = Field(default=False, validation_alias="LOG_CONTENT")
    log_json: bool = Field(default=True, validation_alias="LOG_JSON")
    cors_origins: CsvList = Field(default=[], validation_alias="CORS_ORIGINS")


class ServingSettings(_Group):
    """The MLflow model (app/serving/): Model Serving has no transport identity of its own."""

    # Owner of the model's threads; unset: LOCAL_OWNER. Endpoint permissions decide who may call.
    owner: str | None = Field(default=None, min_length=1, validation_alias="SERVING_OWNER")
    # Use the request's context.user_id (else custom_inputs.user) as the owner. Only for callers
    # that set it from an authenticated identity: the body itself proves nothing.
    trust_request_user: bool = Field(default=False, validation_alias="SERVING_TRUST_REQUEST_USER")


class Settings(_Group):
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    lakebase: LakebaseSettings = Field(default_factory=LakebaseSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    tools: ToolSettings = Field(default_factory=ToolSettings)
    runs: RunSettings = Field(default_factory=RunSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    graphs: GraphSettings = Field(default_factory=GraphSettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)

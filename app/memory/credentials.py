"""OAuth database credentials for Lakebase: minted with databricks-sdk, cached, rotated early.

A Lakebase token is the connection's password and lives an hour, but PostgreSQL checks it only
at login: an open connection outlives its token. So rotation is simply "every new connection
gets a token that is still fresh", and this cache provides one:

* a token is reused until less than `refresh_fraction` of its life (at most `refresh_margin`)
  is left, then the next connection mints a new one;
* minting is a blocking SDK call, so it runs in a worker thread, never on the event loop, and
  only one mint runs at a time (concurrent connects wait for it);
* a failed mint is retried with exponential backoff within `mint_timeout`, then raises
  `CredentialUnavailable`, which the service answers with 503 `database_unavailable`;
* tokens are held as `SecretStr` and never logged, put in an error or used as a label.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import SecretStr

logger = logging.getLogger(__name__)


class CredentialUnavailable(Exception):
    """A database credential could not be minted (the message never holds a secret)."""


@dataclass(frozen=True)
class Credential:
    token: SecretStr
    expires_at: float  # time.time() seconds


class CredentialSource(Protocol):
    """Mints one credential; blocking (it calls the Databricks API)."""

    description: str

    def mint(self) -> Credential: ...


def _expiry(value: Any, default_lifetime: float) -> float:
    """Expiry of an SDK credential: a protobuf-style Timestamp, an ISO string, or unknown."""
    if value is None:
        return time.time() + default_lifetime
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    to_datetime = getattr(value, "ToDatetime", None)
    if callable(to_datetime):
        converted = to_datetime()
        if isinstance(converted, datetime):
            return converted.replace(tzinfo=UTC).timestamp()
    seconds = getattr(value, "seconds", None)
    if isinstance(seconds, int | float):
        return float(seconds)
    return time.time() + default_lifetime


class InstanceCredentials:
    """Provisioned Lakebase instance: `database.generate_database_credential`."""

    def __init__(self, workspace: Any, instance_name: str) -> None:
        self._workspace = workspace
        self._instance = instance_name
        self.description = f"Lakebase instance {instance_name!r}"

    def mint(self) -> Credential:
        cred = self._workspace.database.generate_database_credential(
            request_id=str(uuid.uuid4()), instance_names=[self._instance]
        )
        return Credential(SecretStr(cred.token), _expiry(getattr(cred, "expiration_time", None), 3600))


class EndpointCredentials:
    """Autoscaling Lakebase endpoint: `postgres.generate_database_credential`."""

    def __init__(self, workspace: Any, endpoint: str) -> None:
        self._workspace = workspace
        self._endpoint = endpoint
        self.description = f"Lakebase endpoint {endpoint!r}"

    def mint(self) -> Credential:
        cred = self._workspace.postgres.generate_database_credential(endpoint=self._endpoint)
        return Credential(SecretStr(cred.token), _expiry(getattr(cred, "expire_time", None), 3600))


class WorkspaceOAuthCredentials:
    """The workspace OAuth token of the caller (the App's service principal under Databricks
    Apps), which Lakebase accepts as a password; the SDK refreshes it itself."""

    description = "the workspace OAuth token"

    def __init__(self, workspace: Any) -> None:
        self._workspace = workspace

    def mint(self) -> Credential:
        token = self._workspace.config.oauth_token()
        return Credential(SecretStr(token.access_token), _expiry(getattr(token, "expiry", None), 1800))


class TokenCache:
    def __init__(
        self,
        source: CredentialSource,
        *,
        refresh_margin: float = 900.0,
        refresh_fraction: float = 0.5,
        mint_timeout: float = 10.0,
        on_mint: Callable[[bool], None] | None = None,
    ) -> None:
        self._source = source
        self._refresh_margin = refresh_margin
        self._refresh_fraction = refresh_fraction
        self._mint_timeout = mint_timeout
        self._on_mint = on_mint
        self._current: Credential | None = None
        self._minted_at = 0.0
        self._lock = asyncio.Lock()

    def _fresh(self, now: float) -> bool:
        current = self._current
        if current is None:
            return False
        lifetime = max(current.expires_at - self._minted_at, 0.0)
        margin = min(self._refresh_margin, lifetime * self._refresh_fraction)
        return current.expires_at - now > margin

    async def password(self) -> str:
        if self._fresh(time.time()):
            assert self._current is not None
            return self._current.token.get_secret_value()
        async with self._lock:  # one mint at a time; the others reuse its result
            if not self._fresh(time.time()):
                self._current = await self._mint_with_retries()
                self._minted_at = time.time()
            assert self._current is not None
            return self._current.token.get_secret_value()

    async def _mint_with_retries(self) -> Credential:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._mint_timeout
        delay = 0.2
        attempt = 0
        while True:
            attempt += 1
            try:
                remaining = max(deadline - loop.time(), 0.1)
                credential = await asyncio.wait_for(asyncio.to_thread(self._source.mint), remaining)
            except Exception as exc:  # noqa: BLE001 - any SDK or network failure is retried
                if self._on_mint is not None:
                    self._on_mint(False)
                # The exception type only: SDK messages can echo request details.
                logger.warning(
                    "minting a database credential for %s failed (attempt %d): %s",
                    self._source.description,
                    attempt,
                    type(exc).__name__,
                )
                if loop.time() + delay >= deadline:
                    raise CredentialUnavailable(
                        f"could not mint a database credential for {self._source.description}"
                    ) from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if self._on_mint is not None:
                self._on_mint(True)
            logger.info("minted a database credential for %s", self._source.description)
            return credential

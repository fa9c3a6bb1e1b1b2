"""Test doubles, in one place. Production code never bends to fit them."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import psycopg
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.tools import BaseTool, StructuredTool
from psycopg import sql

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


class FakeWorkspaceClient:
    """Duck-typed `databricks.sdk.WorkspaceClient` for Lakebase over a real PostgreSQL cluster.

    Each `generate_database_credential` issues a new random password and `ALTER ROLE`s the
    database role to it, so the old password stops working at once (stricter than Lakebase,
    where an old token still logs in until it expires). Tokens say they expire after
    `token_lifetime` seconds. Set `failing` to make minting raise.
    """

    def __init__(self, *, admin_url: str, role: str, host: str, token_lifetime: float = 3600.0) -> None:
        self.admin_url = admin_url
        self.role = role
        self.host = host
        self.token_lifetime = token_lifetime
        self.failing = False
        self.tokens: list[str] = []
        self.rotated_at: list[datetime] = []
        outer = self

        class _Database:
            def generate_database_credential(
                self, *, request_id: str | None = None, instance_names: list[str] | None = None
            ) -> SimpleNamespace:
                return outer._mint(instance_names or [])

            def get_database_instance(self, name: str) -> SimpleNamespace:
                return SimpleNamespace(name=name, read_write_dns=outer.host)

        class _CurrentUser:
            def me(self) -> SimpleNamespace:
                return SimpleNamespace(user_name=outer.role)

        class _Postgres:  # autoscaling projects
            def _endpoint(self, name: str) -> SimpleNamespace:
                status = SimpleNamespace(
                    endpoint_type="ENDPOINT_TYPE_READ_WRITE", hosts=SimpleNamespace(host=outer.host)
                )
                return SimpleNamespace(name=name, status=status)

            def list_endpoints(self, parent: str) -> list[SimpleNamespace]:
                outer.calls.append(("list_endpoints", parent))
                read_only = SimpleNamespace(
                    name=f"{parent}/endpoints/ro",
                    status=SimpleNamespace(endpoint_type="ENDPOINT_TYPE_READ_ONLY"),
                )
                return [read_only, self._endpoint(f"{parent}/endpoints/rw")]

            def get_endpoint(self, name: str) -> SimpleNamespace:
                return self._endpoint(name)

            def generate_database_credential(self, endpoint: str) -> SimpleNamespace:
                outer.calls.append(("endpoint_credential", endpoint))
                minted = outer._mint([endpoint])
                return SimpleNamespace(token=minted.token, expire_time=minted.expiration_time)

        class _Config:  # the caller's own OAuth token (a Databricks App's service principal)
            def oauth_token(self) -> SimpleNamespace:
                outer.calls.append(("oauth_token", ""))
                minted = outer._mint(["workspace-oauth"])
                return SimpleNamespace(access_token=minted.token, expiry=None)

        self.calls: list[tuple[str, str]] = []
        self.database = _Database()
        self.current_user = _CurrentUser()
        self.postgres = _Postgres()
        self.config = _Config()

    def _mint(self, instance_names: list[str]) -> SimpleNamespace:
        if self.failing:
            raise ConnectionError("workspace unreachable")
        assert instance_names, "instance_names is required"
        token = f"tok-{secrets.token_urlsafe(24)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(self.role), sql.Literal(token))
            )
        self.tokens.append(token)
        self.rotated_at.append(datetime.now(UTC))
        expires = datetime.now(UTC) + timedelta(seconds=self.token_lifetime)
        return SimpleNamespace(token=token, expiration_time=expires.isoformat())

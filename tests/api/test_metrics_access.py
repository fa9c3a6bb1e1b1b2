"""/metrics is not for whoever reaches the port: in api_key and databricks modes it needs
METRICS_TOKEN or an admin owner's credentials; with AUTH_MODE=none it stays open."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import make_settings, real_server

TOKEN = "scrape-token-0123456789"
KEYS = "admin-key:ops,user-key:alice"


async def _status(base_url: str, headers: dict[str, str]) -> int:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        response = await client.get("/metrics", headers=headers)
        if response.status_code == 200:
            assert "lma_" in response.text
        else:
            assert set(response.json()["error"]) >= {"code", "message"}
        return response.status_code


@pytest.mark.parametrize("with_token", [False, True])
async def test_metrics_need_credentials_in_api_key_mode(database_url: str, with_token: bool) -> None:
    auth = {"mode": "api_key", "api_keys": KEYS, "admin_owners": ["ops"]}
    if with_token:
        auth["metrics_token"] = TOKEN
    async with real_server(make_settings(database_url, auth=auth)) as url:
        assert await _status(url, {}) == 401
        assert await _status(url, {"authorization": "Bearer wrong-token-0123456789"}) == 401
        assert await _status(url, {"authorization": "Bearer user-key"}) == 403
        assert await _status(url, {"authorization": "Bearer admin-key"}) == 200
        assert await _status(url, {"authorization": f"Bearer {TOKEN}"}) == (200 if with_token else 401)


async def test_metrics_need_an_admin_in_databricks_mode(database_url: str) -> None:
    auth = {"mode": "databricks", "admin_owners": ["ops@corp.example"]}
    async with real_server(make_settings(database_url, auth=auth)) as url:
        assert await _status(url, {}) == 401
        assert await _status(url, {"x-forwarded-email": "alice@corp.example"}) == 403
        assert await _status(url, {"x-forwarded-email": "ops@corp.example"}) == 200


async def test_metrics_stay_open_without_auth_and_take_the_token_when_set(database_url: str) -> None:
    async with real_server(make_settings(database_url)) as url:
        assert await _status(url, {}) == 200
    async with real_server(make_settings(database_url, auth={"metrics_token": TOKEN})) as url:
        assert await _status(url, {}) == 401
        assert await _status(url, {"authorization": f"Bearer {TOKEN}"}) == 200

"""Which database the service connects to, from settings alone (no connection is made)."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict
from pydantic import ValidationError

from app.memory.credentials import EndpointCredentials, InstanceCredentials, WorkspaceOAuthCredentials
from app.memory.lakebase import DatabaseConfigError, resolve_target
from app.settings import DatabaseSettings, LakebaseSettings
from tests.fakes import FakeWorkspaceClient


def fake() -> FakeWorkspaceClient:
    return FakeWorkspaceClient(admin_url="unused", role="sp-app-id", host="instance.database.example.com")


def test_database_url_wins_and_needs_no_workspace() -> None:
    target = resolve_target(
        DatabaseSettings(url="postgresql://u:secret@db.example.com:6543/mem"),
        LakebaseSettings(instance_name="ignored"),
    )
    assert target is not None and target.source is None
    assert "secret" not in target.description and "db.example.com:6543/mem" in target.description


def test_nothing_configured_means_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABRICKS_HOST", "DATABRICKS_CLIENT_ID", "DATABRICKS_APP_NAME"):
        monkeypatch.delenv(name, raising=False)
    assert resolve_target(DatabaseSettings(url=None), LakebaseSettings()) is None


def test_provisioned_instance_resolves_host_and_user_and_requires_tls() -> None:
    target = resolve_target(
        DatabaseSettings(url=None), LakebaseSettings(instance_name="mem"), workspace=fake()
    )
    assert target is not None and isinstance(target.source, InstanceCredentials)
    params = conninfo_to_dict(target.conninfo)
    assert params == {
        "host": "instance.database.example.com",
        "port": "5432",
        "dbname": "databricks_postgres",
        "user": "sp-app-id",
        "sslmode": "require",
    }
    assert "password" not in params


def test_autoscaling_project_picks_the_read_write_endpoint() -> None:
    workspace = fake()
    target = resolve_target(DatabaseSettings(url=None), LakebaseSettings(project="p1"), workspace=workspace)
    assert target is not None and isinstance(target.source, EndpointCredentials)
    assert ("list_endpoints", "projects/p1/branches/production") in workspace.calls
    assert "projects/p1/branches/production/endpoints/rw" in target.description


def test_apps_pg_variables_use_the_workspace_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHOST", "apps-db.example.com")
    monkeypatch.setenv("PGUSER", "app-sp")
    monkeypatch.setenv("PGDATABASE", "appdb")
    monkeypatch.setenv("DATABRICKS_APP_NAME", "memory-agent")
    target = resolve_target(DatabaseSettings(url=None), LakebaseSettings(), workspace=fake())
    assert target is not None and isinstance(target.source, WorkspaceOAuthCredentials)
    params = conninfo_to_dict(target.conninfo)
    assert (params["host"], params["user"], params["dbname"]) == ("apps-db.example.com", "app-sp", "appdb")


def test_missing_host_names_the_setting_to_fix() -> None:
    workspace = fake()
    workspace.host = ""
    with pytest.raises(DatabaseConfigError, match="LAKEBASE_HOST"):
        resolve_target(DatabaseSettings(url=None), LakebaseSettings(instance_name="mem"), workspace=workspace)


def test_schema_name_is_validated() -> None:
    assert DatabaseSettings(url=None, schema_name="agent_memory").schema_name == "agent_memory"
    with pytest.raises(ValidationError):
        DatabaseSettings(url=None, schema_name="bad; DROP TABLE x")

"""Where the database is: a URL, a Lakebase instance or endpoint, the `PG*` variables of a
Databricks App, or (nothing configured) the embedded server.

Resolution may call the Databricks API (host of an instance, the caller's user name), so it is
blocking and runs in a worker thread at start-up. The workspace client is created here, lazily,
from databricks-sdk's unified auth (environment, profile, OAuth M2M, the App's service principal);
a caller may pass its own (tests pass a fake).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from app.memory.credentials import (
    CredentialSource,
    EndpointCredentials,
    InstanceCredentials,
    WorkspaceOAuthCredentials,
)
from app.settings import DatabaseSettings, LakebaseSettings

logger = logging.getLogger(__name__)

# Set in a Databricks App or wherever databricks-sdk auth is configured by environment.
_DATABRICKS_ENV = ("DATABRICKS_HOST", "DATABRICKS_CLIENT_ID", "DATABRICKS_APP_NAME")


class DatabaseConfigError(ValueError):
    """The database settings are incomplete or inconsistent; the message names the setting."""


@dataclass(frozen=True)
class Target:
    conninfo: str  # never holds an OAuth token; a DATABASE_URL may hold a static password
    source: CredentialSource | None  # mints the password of every new connection
    description: str  # safe to log


def _workspace(given: Any | None) -> Any:
    if given is not None:
        return given
    try:
        from databricks.sdk import WorkspaceClient
    except ImportError as exc:  # pragma: no cover - databricks-sdk is a core dependency
        raise DatabaseConfigError("Lakebase needs databricks-sdk installed") from exc
    return WorkspaceClient()


def _endpoint_name(workspace: Any, lakebase: LakebaseSettings) -> str:
    if lakebase.endpoint:
        return lakebase.endpoint
    parent = f"projects/{lakebase.project}/branches/{lakebase.branch}"
    endpoints = list(workspace.postgres.list_endpoints(parent=parent))
    if not endpoints:
        raise DatabaseConfigError(
            f"no endpoint found in {parent}: check LAKEBASE_PROJECT and LAKEBASE_BRANCH,"
            " or set LAKEBASE_ENDPOINT"
        )
    for endpoint in endpoints:
        kind = str(getattr(getattr(endpoint, "status", None), "endpoint_type", "") or "")
        if "READ_WRITE" in kind.upper():
            return str(endpoint.name)
    return str(endpoints[0].name)


def _endpoint_host(workspace: Any, name: str) -> str:
    endpoint = workspace.postgres.get_endpoint(name=name)
    hosts = getattr(getattr(endpoint, "status", None), "hosts", None)
    host = getattr(hosts, "host", None)
    if not host:
        raise DatabaseConfigError(f"endpoint {name!r} reports no host yet; set LAKEBASE_HOST")
    return str(host)


def resolve_target(
    database: DatabaseSettings, lakebase: LakebaseSettings, *, workspace: Any | None = None
) -> Target | None:
    """The database to connect to, or None for the embedded server. Blocking."""
    if database.url is not None:
        url = database.url.get_secret_value()
        params = conninfo_to_dict(url)
        where = f"{params.get('host', 'localhost')}:{params.get('port', 5432)}/{params.get('dbname', '')}"
        return Target(conninfo=url, source=None, description=f"DATABASE_URL ({where})")

    databricks_env = workspace is not None or any(os.environ.get(k) for k in _DATABRICKS_ENV)
    if lakebase.configured() or (lakebase.host and databricks_env):
        client = _workspace(workspace)
        source: CredentialSource
        if lakebase.instance_name:
            instance = lakebase.instance_name
            host = lakebase.host or client.database.get_database_instance(name=instance).read_write_dns
            source = InstanceCredentials(client, lakebase.instance_name)
        elif lakebase.endpoint or lakebase.project:
            name = _endpoint_name(client, lakebase)
            host = lakebase.host or _endpoint_host(client, name)
            source = EndpointCredentials(client, name)
        else:  # a Databricks App with a database resource: PG* variables + the App's identity
            host = lakebase.host
            source = WorkspaceOAuthCredentials(client)
        if not host:
            raise DatabaseConfigError("could not find the Lakebase host; set LAKEBASE_HOST")
        user = lakebase.user or getattr(client.current_user.me(), "user_name", None)
        if not user:
            raise DatabaseConfigError("could not find the database user; set LAKEBASE_USER (or PGUSER)")
        conninfo = make_conninfo(
            host=host, port=lakebase.port, dbname=lakebase.database, user=user, sslmode=lakebase.sslmode
        )
        return Target(
            conninfo=conninfo,
            source=source,
            description=f"{source.description} at {host}:{lakebase.port}/{lakebase.database} as {user}",
        )

    if lakebase.host:  # plain PG* environment, no Databricks identity: libpq reads PGPASSWORD itself
        conninfo = make_conninfo(
            host=lakebase.host, port=lakebase.port, dbname=lakebase.database, user=lakebase.user
        )
        return Target(conninfo=conninfo, source=None, description=f"PGHOST ({lakebase.host}:{lakebase.port})")
    return None

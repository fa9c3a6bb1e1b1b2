"""Console entry point: `lakebase-memory-agent serve | init-db | load-sample-data | load-data |
prune | stats`."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import ipaddress
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import AliasChoices, ValidationError

from app.agent.model_errors import ModelConfigError
from app.observability.logging import configure_logging
from app.settings import AuthMode, EmbeddingProvider, Settings

if TYPE_CHECKING:
    from fastapi import FastAPI


def configure_logging_from(settings: Settings) -> None:
    server = settings.server
    configure_logging(server.log_level, json_lines=server.log_json, log_content=server.log_content)


def build_app() -> FastAPI:
    """App factory for uvicorn (also in each worker process): logging first, then the app."""
    from app.gc_tuning import tune_gc_for_serving
    from app.main import create_app

    settings = Settings()
    configure_logging_from(settings)
    app = create_app(settings)
    tune_gc_for_serving()
    return app


def _config_error_text(exc: ValueError) -> str:
    """The problems, one per line, without pydantic's echo of the input (it holds secrets)."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        message = error["msg"].removeprefix("Value error, ")
        where = ".".join(_env_name(str(part)) for part in error["loc"])
        lines.append(f"{where}: {message}" if where and not message.startswith(where) else message)
    return "\n  ".join(lines)


def _env_name(field: str) -> str:
    """The environment variable(s) of a settings field whose error is located by field name
    (fields with several accepted names), else `field` unchanged."""
    names: list[str] = []
    for group in Settings.model_fields.values():
        fields = getattr(group.annotation, "model_fields", {})
        alias = fields[field].validation_alias if field in fields else None
        if isinstance(alias, AliasChoices):  # several groups may have a field of that name
            names.extend(str(choice) for choice in alias.choices)
    return " or ".join(names) or field


# Databricks Apps inject these into an app's process; their presence says the Apps proxy, which
# authenticates users and sets X-Forwarded-Email itself, is the only way in.
_DATABRICKS_APP_ENV = ("DATABRICKS_APP_NAME", "DATABRICKS_APP_PORT")


class UnsafeListenAddress(ValueError):
    """`serve` would trust identity headers from anyone who can reach its address."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def check_forwarded_headers(settings: Settings, host: str, environ: Mapping[str, str]) -> None:
    """AUTH_MODE=databricks takes the caller's identity from headers anyone could send: refuse
    to listen beyond loopback unless inside Databricks Apps or TRUST_FORWARDED_HEADERS=true."""
    auth = settings.auth
    if auth.mode is not AuthMode.DATABRICKS or auth.trust_forwarded_headers or _is_loopback(host):
        return
    if all(environ.get(name) for name in _DATABRICKS_APP_ENV):
        return
    raise UnsafeListenAddress(
        f"AUTH_MODE=databricks on {host} would believe X-Forwarded-Email from anyone who reaches the"
        " port. Outside Databricks Apps, listen on 127.0.0.1 behind a proxy that sets those headers,"
        " or set TRUST_FORWARDED_HEADERS=true if only such a proxy can reach this port."
    )


async def _preflight(settings: Settings) -> None:
    """The model and tool checks of start-up, run before the server so a misconfiguration is
    one clear line instead of a failed lifespan's traceback."""
    from app.agent.model_factory import prepare_model
    from app.agent.tool_factory import check_tool_settings

    check_tool_settings(settings.tools)
    await prepare_model(settings.model)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from app.http_server import ConnectionLimits, ServingConfig
    from app.workers import BalancedMultiprocess, reuse_port_sockets, reuse_port_supported

    workers = args.workers or 1
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several processes: metrics go through files that /metrics aggregates.
        folder = tempfile.mkdtemp(prefix="lma-prometheus-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        atexit.register(shutil.rmtree, folder, True)
    limits = settings.limits
    config = ServingConfig(
        "app.cli:build_app",
        limits=ConnectionLimits.from_settings(limits),
        timeout_keep_alive=limits.keepalive_timeout_seconds,
        factory=True,
        workers=workers,
        host=args.host or settings.server.host,
        port=args.port or settings.server.port,
        log_level=settings.server.log_level,
        log_config=None,  # ours: JSON lines (app.observability.logging)
        access_log=False,  # ours has the route template, latency and request id
        # Long turns finish (or are cancelled and not saved) before the process exits.
        timeout_graceful_shutdown=int(settings.runs.shutdown_grace_seconds) + 5,
    )
    if workers == 1:
        server = uvicorn.Server(config)
        server.run()
        return 0 if server.started else 3
    configure_logging_from(settings)
    with contextlib.suppress(KeyboardInterrupt):
        if reuse_port_supported():
            BalancedMultiprocess(
                config, reuse_port_sockets(config.host, config.port, workers, backlog=config.backlog)
            ).run()
        else:
            Multiprocess(config, sockets=[config.bind_socket()]).run()
    return 0


async def _prune(settings: Settings, *, compact_idle: int | None) -> int:
    from app.memory.checkpointer import PooledPostgresSaver
    from app.memory.pool import open_database
    from app.memory.retention import Retention

    async with open_database(settings.database, settings.lakebase) as database:
        retention = Retention(
            database.pool,
            PooledPostgresSaver(database.pool),
            default_ttl=settings.retention.thread_ttl_seconds,
            compact_idle=compact_idle
            if compact_idle is not None
            else settings.retention.compact_idle_seconds,
            batch=settings.retention.sweep_batch,
        )
        result = await retention.sweep()
    print(json.dumps({"expired": result.expired, "compacted": result.compacted, "skipped": result.skipped}))
    return 0


async def _stats(settings: Settings, *, top: int, days: int) -> int:
    from app.memory.pool import open_database
    from app.memory.stats import collect_stats

    async with open_database(settings.database, settings.lakebase) as database:
        stats = await collect_stats(database.pool, top=top, days=days)
    report = {"totals": stats.totals, "top_threads": stats.top_threads, "per_day": stats.per_day}
    print(json.dumps(report, indent=2, default=str))
    return 0


async def _init_db(settings: Settings, *, sample_data: bool) -> int:
    from app.agent.sample_data import load_sample_data
    from app.memory.checkpointer import PooledPostgresSaver
    from app.memory.pool import open_database
    from app.memory.schema import migrate

    async with open_database(settings.database, settings.lakebase) as database:
        await migrate(database.pool, PooledPostgresSaver(database.pool), schema=settings.database.schema_name)
        if settings.memory.enabled and settings.memory.embedding_provider is not EmbeddingProvider.NONE:
            from app.agent.embeddings import embedding_dims
            from app.memory.longterm_schema import ensure_vector_index

            await ensure_vector_index(database.pool, dims=embedding_dims(settings.memory), create=True)
        if sample_data:
            inserted = await load_sample_data(database.pool)
            print(f"sample data: {inserted} rows inserted")
    print("database ready")
    return 0


def _run_load_data(settings: Settings, args: argparse.Namespace) -> int:
    from app.agent.data_files import DataFileError
    from app.memory.demo_tables import THREAT_TABLE, USER_TABLE

    files = {t: p for t, p in ((THREAT_TABLE, args.threats), (USER_TABLE, args.users)) if p is not None}
    if not files:
        print("load-data: give --threats FILE and/or --users FILE", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_load_data(settings, files, replace=args.replace))
    except DataFileError as exc:
        print(f"load-data: {exc}; nothing was loaded", file=sys.stderr)
        return 1


async def _load_data(settings: Settings, files: dict[str, Path], *, replace: bool) -> int:
    from app.agent.data_files import read_table_file
    from app.memory.checkpointer import PooledPostgresSaver
    from app.memory.demo_tables import load_rows
    from app.memory.pool import open_database
    from app.memory.schema import migrate

    # Every file is read and checked before the database is touched.
    rows = {table: read_table_file(path, table) for table, path in files.items()}
    async with open_database(settings.database, settings.lakebase) as database:
        await migrate(database.pool, PooledPostgresSaver(database.pool), schema=settings.database.schema_name)
        loaded = await load_rows(database.pool, rows, replace=replace)
    for part in loaded:
        skipped = f", {part.skipped} skipped (id already there)" if part.skipped else ""
        print(f"{part.table}: {part.inserted} rows {'loaded' if replace else 'added'}{skipped}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lakebase-memory-agent")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="worker processes (metrics aggregate across them)")
    sub.add_parser("init-db", help="create or upgrade the tables")
    sub.add_parser("load-sample-data", help="create the tables and load the demo's sample data")
    load = sub.add_parser(
        "load-data", help="load your own demo tables from parquet or CSV files (see README)"
    )
    load.add_argument("--threats", type=Path, help="rows for cyber_threat_detection (.parquet or .csv)")
    load.add_argument("--users", type=Path, help="rows for user_info (.parquet or .csv)")
    load.add_argument("--replace", action="store_true", help="replace the tables' rows (one transaction)")
    prune = sub.add_parser("prune", help="delete expired threads and compact idle ones (one sweep)")
    prune.add_argument("--compact-idle", type=int, help="compact threads idle this many seconds")
    stats = sub.add_parser("stats", help="print conversation analytics as JSON")
    stats.add_argument("--top", type=int, default=10)
    stats.add_argument("--days", type=int, default=30)
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValueError as exc:
        print(f"configuration error: {_config_error_text(exc)}", file=sys.stderr)
        return 2
    if args.command == "serve":
        try:
            check_forwarded_headers(settings, args.host or settings.server.host, os.environ)
            asyncio.run(_preflight(settings))
        except (ModelConfigError, UnsafeListenAddress) as exc:
            print(f"configuration error: {exc}", file=sys.stderr)
            return 2
        return _serve(settings, args)
    configure_logging_from(settings)
    if args.command == "prune":
        return asyncio.run(_prune(settings, compact_idle=args.compact_idle))
    if args.command == "stats":
        return asyncio.run(_stats(settings, top=args.top, days=args.days))
    if args.command == "load-data":
        return _run_load_data(settings, args)
    return asyncio.run(_init_db(settings, sample_data=args.command == "load-sample-data"))


if __name__ == "__main__":
    raise SystemExit(main())

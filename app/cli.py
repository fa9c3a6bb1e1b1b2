"""Console entry point: `lakebase-memory-agent serve | init-db | load-sample-data`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from app.settings import Settings


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app

    uvicorn.run(
        create_app(settings),
        host=args.host or settings.server.host,
        port=args.port or settings.server.port,
        log_level=settings.server.log_level,
        # Long turns finish (or are cancelled and not saved) before the process exits.
        timeout_graceful_shutdown=int(settings.runs.shutdown_grace_seconds) + 5,
    )
    return 0


async def _init_db(settings: Settings, *, sample_data: bool) -> int:
    from app.agent.sample_data import load_sample_data
    from app.memory.checkpointer import PooledPostgresSaver
    from app.memory.pool import open_database
    from app.memory.schema import migrate

    async with open_database(settings.database, settings.lakebase) as database:
        await migrate(database.pool, PooledPostgresSaver(database.pool), schema=settings.database.schema_name)
        if sample_data:
            inserted = await load_sample_data(database.pool)
            print(f"sample data: {inserted} rows inserted")
    print("database ready")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lakebase-memory-agent")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    sub.add_parser("init-db", help="create or upgrade the tables")
    sub.add_parser("load-sample-data", help="create the tables and load the demo's sample data")
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValueError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.server.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if args.command == "serve":
        return _serve(settings, args)
    return asyncio.run(_init_db(settings, sample_data=args.command == "load-sample-data"))


if __name__ == "__main__":
    raise SystemExit(main())

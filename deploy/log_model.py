"""Log the agent as an MLflow model (from code), optionally register it in Unity Catalog and deploy
it to Model Serving with databricks-agents.

    python deploy/log_model.py [--experiment /Users/me/lakebase-memory-agent] \
        [--llm-endpoint NAME] [--lakebase-instance NAME | --lakebase-project NAME] \
        [--uc-function CAT.SCH.FN ...] [--grant-role ROLE ...] \
        [--register CATALOG.SCHEMA.MODEL [--deploy] [--env KEY=VALUE ...]]

Every name is a flag or an environment variable; nothing is hard-coded. Works from a checkout
(`uv run`) and from the installed wheel (the bundle's job): the model is `app/serving/model.py`
of the installed `app` package, shipped with the package as code, with requirements pinned to the
versions installed here (the project's dependencies and its `serving` extra).

The flags configure the agent the endpoint serves, not only the resources it may use:
`--llm-endpoint` selects `MODEL_PROVIDER=databricks` on that endpoint and `--uc-function` sets
`UC_FUNCTIONS` (both add the `databricks` extra to the model's requirements). `--grant-role`
first prepares the memory as this process's identity: tables created or upgraded, then the
roles of the other processes (the App's service principal, the endpoint's) granted their rows.

MLflow runs the input example through the agent while logging, so this process must reach the
database the endpoint will use: the endpoint's environment (the `--env` values, the Lakebase and
model flags) applies here too (secret references excepted), on top of DATABASE_URL / LAKEBASE_*
already set. The example runs on one fixed thread (`--example-thread`), so logging again adds a
turn to that thread instead of starting a new one. Prints the model URI (and the registered
version) as the last lines of output.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

DISTRIBUTION = "lakebase-memory-agent"
DEFAULT_QUESTION = "Who committed the latest malware threat?"
DEFAULT_EXAMPLE_THREAD = "log-model-input-example"


def _env_list(name: str) -> list[str]:
    return [v.strip() for v in os.environ.get(name, "").split(",") if v.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    p.add_argument("--registry-uri", default=os.environ.get("MLFLOW_REGISTRY_URI"))
    p.add_argument("--experiment", default=os.environ.get("MLFLOW_EXPERIMENT_NAME"))
    p.add_argument(
        "--name", default=os.environ.get("MODEL_ARTIFACT_NAME", "agent"), help="the logged model's name"
    )
    p.add_argument("--question", default=DEFAULT_QUESTION, help="the input example's user message")
    p.add_argument(
        "--example-thread",
        default=os.environ.get("EXAMPLE_THREAD_ID", DEFAULT_EXAMPLE_THREAD),
        help="the thread the input example runs on (the same one every time)",
    )
    p.add_argument(
        "--llm-endpoint",
        default=os.environ.get("LLM_ENDPOINT_NAME"),
        help="serving endpoint the agent's model calls (a DatabricksServingEndpoint resource)",
    )
    p.add_argument(
        "--lakebase-instance",
        default=os.environ.get("LAKEBASE_INSTANCE_NAME"),
        help="Lakebase database instance holding the memory (a DatabricksLakebase resource)",
    )
    p.add_argument(
        "--lakebase-project",
        default=os.environ.get("LAKEBASE_PROJECT"),
        help="Lakebase Autoscaling project holding the memory (its LAKEBASE_BRANCH, default production)",
    )
    p.add_argument(
        "--uc-function",
        action="append",
        default=_env_list("UC_FUNCTIONS"),
        help="Unity Catalog function(s) the agent calls (repeatable or comma-separated; env UC_FUNCTIONS)",
    )
    p.add_argument(
        "--extra-requirement",
        action="append",
        default=_env_list("EXTRA_REQUIREMENTS"),
        help="another pip requirement for the serving environment (repeatable)",
    )
    p.add_argument(
        "--register",
        metavar="CATALOG.SCHEMA.MODEL",
        default=os.environ.get("UC_MODEL_NAME"),
        help="register the logged model under this Unity Catalog name",
    )
    p.add_argument(
        "--deploy", action="store_true", help="deploy the registered version with databricks-agents"
    )
    p.add_argument("--endpoint-name", default=os.environ.get("SERVING_ENDPOINT_NAME"))
    p.add_argument(
        "--grant-role",
        action="append",
        default=[],
        metavar="ROLE",
        help="first create or upgrade the tables as this process's identity, then grant the role"
        " (a service principal's application id or a user name) rows per deploy/grants.sql"
        " (repeatable; empty values are skipped)",
    )
    p.add_argument("--scale-to-zero", action="store_true")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment variable of the serving endpoint (repeatable; '{{secrets/scope/key}}' works)",
    )
    args = p.parse_args(argv)
    args.uc_function = [n.strip() for item in args.uc_function for n in item.split(",") if n.strip()]
    args.grant_role = [role for role in args.grant_role if role.strip()]
    if args.lakebase_instance and args.lakebase_project:
        p.error("--lakebase-instance and --lakebase-project name two databases: give one")
    if args.deploy and not args.register:
        p.error("--deploy needs --register CATALOG.SCHEMA.MODEL (or UC_MODEL_NAME)")
    if args.register and args.register.count(".") != 2:
        p.error("--register takes a three-part Unity Catalog name: CATALOG.SCHEMA.MODEL")
    for item in args.env:
        if "=" not in item or not item.split("=", 1)[0]:
            p.error(f"--env takes KEY=VALUE, not {item!r}")
    return args


def package_dir() -> Path:
    """The installed `app` package (a checkout's, or the wheel's)."""
    import app.serving

    return Path(app.serving.__file__).resolve().parent.parent


def extras(args: argparse.Namespace) -> list[str]:
    """The project's extras the served agent needs: `serving`, and `databricks` for
    ChatDatabricks and the Unity Catalog toolkit."""
    return ["serving", "databricks"] if args.llm_endpoint or args.uc_function else ["serving"]


def pinned_requirements(extra: list[str], project_extras: tuple[str, ...] = ("serving",)) -> list[str]:
    """The project's runtime dependencies and the given extras, pinned to the installed versions."""
    from packaging.requirements import Requirement

    pinned: list[str] = []
    for spec in importlib.metadata.requires(DISTRIBUTION) or []:
        requirement = Requirement(spec)
        if requirement.marker is not None and not any(
            requirement.marker.evaluate({"extra": name}) for name in project_extras
        ):
            continue
        try:
            version = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            raise SystemExit(
                f"{requirement.name} is not installed: install the extras {list(project_extras)} first"
            ) from None
        extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
        pinned.append(f"{requirement.name}{extras}=={version}")
    return pinned + list(extra)


def resources(args: argparse.Namespace) -> list[Any]:
    """Databricks resources the endpoint needs credentials for; imported only when named."""
    found: list[Any] = []
    if args.llm_endpoint:
        from mlflow.models.resources import DatabricksServingEndpoint

        found.append(DatabricksServingEndpoint(endpoint_name=args.llm_endpoint))
    if args.lakebase_instance:
        from mlflow.models.resources import DatabricksLakebase

        found.append(DatabricksLakebase(database_instance_name=args.lakebase_instance))
    if args.uc_function:
        from mlflow.models.resources import DatabricksFunction

        found.extend(DatabricksFunction(function_name=name) for name in args.uc_function)
    return found


def endpoint_env(args: argparse.Namespace) -> dict[str, str]:
    """The serving endpoint's environment: the memory settings in force here, the agent the flags
    describe (model, tools, Lakebase), then --env."""
    env = {
        key: os.environ[key]
        for key in (
            "LAKEBASE_INSTANCE_NAME",
            "LAKEBASE_PROJECT",
            "LAKEBASE_BRANCH",
            "LAKEBASE_DATABASE",
            "LAKEBASE_SCHEMA",
            "DB_SCHEMA",
            "SERVING_OWNER",
        )
        if os.environ.get(key)
    }
    if args.lakebase_instance:
        env.pop("LAKEBASE_PROJECT", None)
        env["LAKEBASE_INSTANCE_NAME"] = args.lakebase_instance
    if args.lakebase_project:
        env.pop("LAKEBASE_INSTANCE_NAME", None)
        env["LAKEBASE_PROJECT"] = args.lakebase_project
    if args.llm_endpoint:
        env["MODEL_PROVIDER"] = "databricks"
        env["DATABRICKS_SERVING_ENDPOINT"] = args.llm_endpoint
    if args.uc_function:
        env["UC_FUNCTIONS"] = ",".join(args.uc_function)
    env.update(item.split("=", 1) for item in args.env)
    return env


def input_example(args: argparse.Namespace) -> dict[str, Any]:
    """The request MLflow runs while logging: on one fixed thread, so that logging the model
    again does not leave a new thread behind in the production memory every time."""
    return {
        "input": [{"role": "user", "content": args.question}],
        "custom_inputs": {"thread_id": args.example_thread},
    }


def psql_statements(text: str, variables: dict[str, str]) -> list[bytes]:
    """The statements of a psql script whose only psql feature is `:"name"` identifier variables
    (deploy/grants.sql), with each variable quoted as an identifier."""
    from psycopg import sql

    statements = []
    for statement in re.sub(r"^\s*--.*$", "", text, flags=re.MULTILINE).split(";"):
        if statement.strip():
            for name, value in variables.items():
                statement = statement.replace(f':"{name}"', sql.Identifier(value).as_string(None))
            statements.append(statement.strip().encode())
    return statements


async def _grant(roles: list[str], script: str) -> None:
    from app.memory.pool import open_database
    from app.settings import Settings

    settings = Settings()
    schema = settings.database.schema_name or "public"
    async with (
        open_database(settings.database, settings.lakebase) as database,
        database.pool.connection() as conn,
    ):
        for role in roles:
            for statement in psql_statements(script, {"schema": schema, "role": role}):
                await conn.execute(statement)


def prepare_memory(roles: list[str]) -> None:
    """As this process's identity (the job's runner, who owns the Lakebase database): create or
    upgrade the tables and the sample data, then give each role exactly the rows it needs
    (deploy/grants.sql), so the App and the endpoint run with DB_MIGRATE=false and one identity
    owns every table."""
    subprocess.run([sys.executable, "-m", "app.cli", "load-sample-data"], check=True)
    asyncio.run(_grant(roles, (Path(__file__).resolve().parent / "grants.sql").read_text()))
    print(f"granted: {', '.join(roles)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = endpoint_env(args)
    # The input example runs here: against the database the endpoint will use.
    os.environ.update({k: v for k, v in env.items() if not v.startswith("{{secrets/")})
    if args.grant_role:
        prepare_memory(args.grant_role)
    import mlflow

    if args.tracking_uri:
        mlflow.set_tracking_uri(args.tracking_uri)
    if args.registry_uri:
        mlflow.set_registry_uri(args.registry_uri)
    elif args.register:
        mlflow.set_registry_uri("databricks-uc")
    if args.experiment:
        mlflow.set_experiment(args.experiment)

    with mlflow.start_run():
        package = package_dir()
        info = mlflow.pyfunc.log_model(
            name=args.name,
            python_model=str(package / "serving" / "model.py"),
            code_paths=[str(package)],
            input_example=input_example(args),
            pip_requirements=pinned_requirements(args.extra_requirement, tuple(extras(args))),
            resources=resources(args) or None,
        )
    print(f"model_uri: {info.model_uri}")
    if not args.register:
        return 0
    version = mlflow.register_model(info.model_uri, args.register)
    print(f"registered: {args.register} version {version.version}")
    if args.deploy:
        # databricks-agents is heavy and only needed here; it has no type information.
        agents = importlib.import_module("databricks.agents")
        options: dict[str, Any] = {
            "scale_to_zero": args.scale_to_zero,
            "environment_vars": env,
        }
        if args.endpoint_name:
            options["endpoint_name"] = args.endpoint_name
        deployment = agents.deploy(args.register, version.version, **options)
        print(f"deployed: {getattr(deployment, 'endpoint_name', deployment)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

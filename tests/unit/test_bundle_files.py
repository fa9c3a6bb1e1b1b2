"""The Databricks bundle (deploy/databricks.yml + resources), the App's app.yaml and requirements:
`databricks bundle validate` needs a workspace, so their structure is checked here: every file
they name exists, every `${var.x}` and `${resources...}` they use is defined, and what they hand
to the service and to deploy/log_model.py is accepted by them."""

from __future__ import annotations

import glob
import importlib.util
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.settings import AuthMode, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
REFERENCE = re.compile(r"\$\{([^}]+)\}")


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    return data


def _bundle() -> tuple[dict[str, Any], dict[Path, dict[str, Any]]]:
    """databricks.yml, and each included file with its content."""
    main = _load(DEPLOY / "databricks.yml")
    included: dict[Path, dict[str, Any]] = {}
    for pattern in main["include"]:
        matches = sorted(glob.glob(str(DEPLOY / pattern)))
        assert matches, f"include {pattern!r} matches no file"
        for match in matches:
            included[Path(match)] = _load(Path(match))
    return main, included


def _resources(included: dict[Path, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for content in included.values():
        for kind, items in content["resources"].items():
            for key, item in items.items():
                assert key not in merged.setdefault(kind, {}), f"{kind}.{key} defined twice"
                merged[kind][key] = item
    return merged


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return []


def _log_model_script() -> Any:
    spec = importlib.util.spec_from_file_location("log_model", DEPLOY / "log_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_variable_and_resource_reference_is_defined() -> None:
    main, included = _bundle()
    variables = main["variables"]
    resources = _resources(included)
    for name in ("catalog", "schema", "instance_name", "endpoint_name"):
        assert name in variables
    used: set[str] = set()
    for text in _strings(main) + [s for content in included.values() for s in _strings(content)]:
        for reference in REFERENCE.findall(text):
            parts = reference.split(".")
            if parts[0] == "var":
                assert parts[1] in variables, f"${{{reference}}} is not a bundle variable"
                used.add(parts[1])
            elif parts[0] == "resources":
                assert parts[2] in resources.get(parts[1], {}), f"${{{reference}}} is not a bundle resource"
            else:
                assert parts[0] in {"workspace", "bundle"}, f"unknown reference ${{{reference}}}"
    assert used == set(variables), f"unused variables: {set(variables) - used}"
    for name, variable in variables.items():
        assert variable.get("description"), f"variable {name} has no description"


def test_the_database_the_app_and_the_job_fit_together() -> None:
    _, included = _bundle()
    resources = _resources(included)
    [instance_key] = resources["database_instances"]
    [catalog] = resources["database_catalogs"].values()
    assert catalog["database_instance_name"] == f"${{resources.database_instances.{instance_key}.name}}"

    [app] = resources["apps"].values()
    [database] = [r["database"] for r in app["resources"] if "database" in r]
    assert database["instance_name"] == catalog["database_instance_name"]
    assert database["database_name"] == catalog["database_name"]
    assert database["permission"] == "CAN_CONNECT_AND_CREATE"

    [job] = resources["jobs"].values()
    [task] = job["tasks"]
    assert [e["environment_key"] for e in job["environments"]] == [task["environment_key"]]
    parameters = task["spark_python_task"]["parameters"]
    assert "--deploy" in parameters
    assert parameters[parameters.index("--register") + 1] == "${var.catalog}.${var.schema}.${var.model_name}"
    assert parameters[parameters.index("--lakebase-instance") + 1] == "${var.instance_name}"
    # The flags are the script's own: it parses them (variables stood in for by their names).
    args = _log_model_script().parse_args(
        [REFERENCE.sub(lambda m: m[1].split(".")[-1], p) for p in parameters]
    )
    assert args.register == "catalog.schema.model_name" and args.deploy
    assert args.endpoint_name == "endpoint_name"
    assert sorted(args.env) == ["LAKEBASE_DATABASE=database_name", "LAKEBASE_SCHEMA=memory_schema"]


def test_every_file_the_bundle_names_exists_or_is_built_by_it() -> None:
    main, included = _bundle()
    [artifact] = main["artifacts"].values()
    artifact_dir = (DEPLOY / artifact["path"]).resolve()
    assert (artifact_dir / "pyproject.toml").is_file()
    build = shlex.split(artifact["build"].replace("&&", " && "))
    built = {
        (artifact_dir / build[i + 1]).resolve()
        for i, word in enumerate(build)
        if word in {"--out-dir", "--output-file"}
    }
    out_dir = (artifact_dir / build[build.index("--out-dir") + 1]).resolve()
    assert (out_dir / "requirements.txt").resolve() in built
    assert {(artifact_dir / f["source"]).resolve().parent for f in artifact["files"]} == {out_dir}

    def exists(base: Path, relative: str) -> None:
        target = (base / relative).resolve()
        if target == out_dir:
            return
        if target.parent == out_dir:  # made by the artifact build, before upload
            assert target.suffix == ".whl" or target in built, relative
            return
        assert target.exists(), f"{relative} (from {base}) does not exist"

    for path, content in included.items():
        for kind, items in content["resources"].items():
            for item in items.values():
                if kind == "apps":
                    source = (path.parent / item["source_code_path"]).resolve()
                    assert (source / "app.yaml").is_file() and (source / "requirements.txt").is_file()
                    for line in (source / "requirements.txt").read_text().splitlines():
                        if line.startswith(("-r ", "--find-links ")):
                            exists(source, line.split(maxsplit=1)[1])
                if kind == "jobs":
                    for task in item["tasks"]:
                        exists(path.parent, task["spark_python_task"]["python_file"])
                    for environment in item["environments"]:
                        for dependency in environment["spec"]["dependencies"]:
                            if dependency.startswith("."):
                                exists(path.parent, dependency)
    # The App's source folder holds the built files: they must be uploaded although not in git.
    assert any(p.startswith(out_dir.relative_to(DEPLOY).as_posix()) for p in main["sync"]["include"])


def test_app_yaml_runs_the_service_as_databricks_apps_expects(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _load(DEPLOY / "app.yaml")
    command = config["command"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert command[0] in project["scripts"]
    assert command[1:] == ["serve", "--host", "0.0.0.0"]
    env = {e["name"]: e["value"] for e in config["env"]}
    assert env["AUTH_MODE"] == "databricks"
    for name in [*env, "DATABASE_URL", "PORT", "DATABRICKS_APP_PORT", "PGHOST", "LAKEBASE_SCHEMA"]:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # What the platform sets: the port, and the database resource's PG* variables.
    monkeypatch.setenv("DATABRICKS_APP_PORT", "8123")
    monkeypatch.setenv("PGHOST", "instance.database.example.com")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.server.port == 8123
    assert settings.auth.mode is AuthMode.DATABRICKS
    assert settings.database.schema_name == env["LAKEBASE_SCHEMA"]
    assert settings.lakebase.host == "instance.database.example.com"


def test_app_requirements_pin_this_project_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    lines = [x for x in (DEPLOY / "requirements.txt").read_text().splitlines() if x and not x.startswith("#")]
    assert f"lakebase-memory-agent=={version}" in lines

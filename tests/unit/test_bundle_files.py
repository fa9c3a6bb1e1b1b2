"""The Databricks bundle (deploy/databricks.yml + resources/), read as the Databricks CLI reads it
(tests/bundle.py): valid against the CLI's published JSON schema, every variable given a value in
every target, names unique per target and per developer, production targets as target-mode
validation wants them, and the App and the endpoint configured for the real agent (a Databricks
LLM and the Unity Catalog tools) on the same memory. `databricks bundle validate` needs a
workspace; tests/integration/test_bundle_build.py runs the artifact build and resolves paths."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.settings import AuthMode, ModelProvider, Settings
from tests.bundle import DEPLOY, ROOT, USER, Bundle, app_environment, load_bundle, schema_errors

BUNDLE = load_bundle()
TARGETS = BUNDLE.targets
SECRET = re.compile(r"^\{\{secrets/[^/}]+/[^/}]+\}\}$")
# Names a workspace (or Unity Catalog) holds once: the App, the Lakebase instance or project, the
# catalog of the database, the job and the experiment (and, below, the model and the endpoint).
UNIQUE_NAMES = [
    ("apps", "memory_agent_app", "name"),
    ("database_instances", "memory_db", "name"),
    ("postgres_projects", "memory", "project_id"),
    ("database_catalogs", "memory_catalog", "name"),
    ("postgres_catalogs", "memory_catalog", "catalog_id"),
    ("jobs", "log_register_deploy", "name"),
    ("experiments", "agent", "name"),
]


def _log_model_script() -> Any:
    spec = importlib.util.spec_from_file_location("log_model", DEPLOY / "log_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LOG_MODEL = _log_model_script()


def _job_task(config: dict[str, Any]) -> dict[str, Any]:
    [job] = config["resources"]["jobs"].values()
    [task] = job["tasks"]
    assert isinstance(task, dict)
    return task


def _job_args(config: dict[str, Any]) -> Any:
    return LOG_MODEL.parse_args(_job_task(config)["spark_python_task"]["parameters"])


def _settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    """The service's settings in a process whose environment is exactly `env` (plus the
    platform's port and database variables)."""
    for name in list(os.environ):
        if name.isupper() and not name.startswith(("PATH", "HOME", "PYTHON", "UV", "VIRTUAL_ENV")):
            monkeypatch.delenv(name)
    for name, value in {**env, "DATABRICKS_APP_PORT": "8123", "PGHOST": "db.example.com"}.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)


def test_every_bundle_file_and_every_target_is_valid_against_the_cli_schema() -> None:
    for path, content in BUNDLE.files.items():
        assert schema_errors(content) == [], path.name
    for target in TARGETS:
        assert schema_errors(BUNDLE.resolved(target)) == [], target


def test_the_schema_check_can_fail() -> None:
    # The check itself, on what the audit found: a deprecated-free spec with an unknown key and a
    # permission the App resource does not have.
    broken = BUNDLE.resolved("dev")
    [app] = broken["resources"]["apps"].values()
    app["resources"][0]["serving_endpoint"]["permission"] = "CAN_EAT"
    app["source_path"] = ".."
    errors = schema_errors(broken)
    assert any("CAN_EAT" in e for e in errors) and any("source_path" in e for e in errors)


def test_no_deprecated_setting_is_used() -> None:
    for target in TARGETS:
        for job in BUNDLE.resolved(target)["resources"]["jobs"].values():
            for environment in job["environments"]:
                assert "client" not in environment["spec"], "`client` is deprecated: environment_version"
                assert environment["spec"]["environment_version"]


@pytest.mark.parametrize("target", TARGETS)
def test_every_variable_has_a_value_and_every_reference_resolves(target: str) -> None:
    values = BUNDLE.variables(target)  # a variable without a value fails here, as in the CLI
    config = BUNDLE.resolved(target)  # an unknown ${var.*} or ${resources.*} fails here
    assert "${var." not in str(config)
    assert values["catalog"] and values["schema"]


def test_every_variable_is_used_and_described() -> None:
    text = "\n".join(path.read_text() for path in BUNDLE.files)
    for name, variable in BUNDLE.main["variables"].items():
        assert f"${{var.{name}}}" in text, f"variable {name} is never used"
        assert variable.get("description"), f"variable {name} has no description"


def _unique_names(bundle: Bundle, target: str, user: dict[str, str]) -> set[tuple[str, str]]:
    """(kind, name) of everything a workspace holds once; kinds are separate namespaces."""
    resources = bundle.resolved(target, user)["resources"]
    names = {
        (kind, str(resources[kind][key][field]))
        for kind, key, field in UNIQUE_NAMES
        if key in resources.get(kind, {})
    }
    [task] = resources["jobs"]["log_register_deploy"]["tasks"]
    parameters = task["spark_python_task"]["parameters"]
    names |= {(flag, parameters[parameters.index(flag) + 1]) for flag in ("--register", "--endpoint-name")}
    return names


def test_names_differ_between_targets_and_between_developers() -> None:
    other = {"userName": "sam.roe@example.com", "short_name": "sam_roe", "domain_friendly_name": "sam-roe"}
    seen: dict[tuple[str, str], str] = {}
    for target in TARGETS:
        names = _unique_names(BUNDLE, target, USER)
        # App, Lakebase, catalog, job, experiment, model, endpoint
        assert len(names) == 7, (target, names)
        for name in names:
            assert name not in seen, f"{name} is used by {seen.get(name)} and {target}"
            seen[name] = target
        if BUNDLE.main["targets"][target]["mode"] == "development":
            assert not names & _unique_names(BUNDLE, target, other), f"two developers collide in {target}"
    for target in TARGETS:
        [app] = BUNDLE.resolved(target)["resources"]["apps"].values()
        # Apps: 2-30 lowercase letters, digits and dashes.
        assert re.fullmatch(r"[a-z0-9-]{2,30}", app["name"]), app["name"]


@pytest.mark.parametrize("target", TARGETS)
def test_production_targets_pass_the_cli_target_mode_validation(target: str) -> None:
    # bundle/config/mutator/resourcemutator/validate_target_mode.go: production needs an explicit
    # workspace.root_path; development paths must contain the user's name.
    definition = BUNDLE.main["targets"][target]
    config = BUNDLE.resolved(target)
    if definition["mode"] == "production":
        root_path = config["workspace"]["root_path"]
        assert USER["userName"] in root_path and target in root_path
        assert config["run_as"]["user_name"] or config["run_as"]["service_principal_name"]
    else:
        assert definition["mode"] == "development"
        for key, path in (config.get("workspace") or {}).items():
            assert USER["userName"] in path or USER["short_name"] in path, key


@dataclass(frozen=True)
class Deployed:
    """One target as the CLI deploys it: the configuration and the variables' values."""

    config: dict[str, Any]
    variables: dict[str, str]


@pytest.fixture(params=TARGETS)
def deployed(request: pytest.FixtureRequest) -> Deployed:
    return Deployed(config=BUNDLE.resolved(request.param), variables=BUNDLE.values(request.param))


def test_the_app_runs_the_databricks_model_with_the_uc_tools_on_the_memory_schema(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, variables = deployed.config, deployed.variables
    [app] = config["resources"]["apps"].values()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert app["config"]["command"][0] in project["scripts"]
    assert app["config"]["command"][1:] == ["serve", "--host", "0.0.0.0"]
    assert not (Path(app["source_code_path"]) / "app.yaml").exists(), "one App configuration: the bundle's"

    by_name = {r["name"]: r for r in app["resources"]}
    assert by_name["llm-endpoint"]["serving_endpoint"] == {
        "name": variables["llm_endpoint"],
        "permission": "CAN_QUERY",
    }
    memory = by_name["memory-db"]
    kind = "postgres" if "postgres_projects" in config["resources"] else "database"
    assert set(memory) == {"name", "description", kind}
    assert memory[kind]["permission"] == "CAN_CONNECT_AND_CREATE"

    settings = _settings(monkeypatch, app_environment(config))
    assert settings.auth.mode is AuthMode.DATABRICKS
    assert settings.model.provider is ModelProvider.DATABRICKS
    assert settings.model.serving_endpoint == variables["llm_endpoint"]
    assert settings.tools.uc_functions == variables["uc_functions"].split(",")
    assert settings.database.schema_name == variables["memory_schema"]
    assert settings.database.migrate is False  # the job owns the tables and grants the App rows
    assert settings.lakebase.host == "db.example.com" and settings.server.port == 8123


def test_the_endpoint_serves_the_same_agent_on_the_same_memory(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, variables = deployed.config, deployed.variables
    args = _job_args(config)  # the script's own parser accepts the job's parameters
    assert args.deploy and args.register.count(".") == 2
    # Before logging, the job prepares the tables and grants the App's principal (and the
    # endpoint's, when named) their rows.
    assert args.grant_role[0] == "${resources.apps.memory_agent_app.service_principal_client_id}"
    assert config["resources"]["apps"]["memory_agent_app"]
    assert set(LOG_MODEL.extras(args)) == {"serving", "databricks"}
    env = LOG_MODEL.endpoint_env(args)
    app_env = app_environment(config)
    for name in ("MODEL_PROVIDER", "DATABRICKS_SERVING_ENDPOINT", "UC_FUNCTIONS", "LAKEBASE_SCHEMA"):
        assert env[name] == app_env[name], name
    secrets = {k: v for k, v in env.items() if v.startswith("{{")}
    assert all(SECRET.fullmatch(v) for v in secrets.values()), secrets

    settings = _settings(monkeypatch, {k: v for k, v in env.items() if k not in secrets})
    assert settings.model.provider is ModelProvider.DATABRICKS
    assert settings.tools.uc_functions and settings.model.serving_endpoint == variables["llm_endpoint"]
    assert settings.lakebase.database == variables["database_name"]
    lakebase_name = f"{variables['instance_name']}-{variables['name_suffix']}"
    if "postgres_projects" in config["resources"]:
        assert settings.lakebase.project == lakebase_name and settings.lakebase.instance_name is None
        assert config["resources"]["postgres_projects"]["memory"]["project_id"] == lakebase_name
        assert set(secrets) == {"DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET"}
    else:
        assert settings.lakebase.instance_name == lakebase_name and settings.lakebase.project is None
        assert config["resources"]["database_instances"]["memory_db"]["name"] == lakebase_name
        assert any(type(r).__name__ == "DatabricksLakebase" for r in LOG_MODEL.resources(args))


def test_the_job_installs_the_wheel_with_its_serving_extra_and_the_project_mlflow_floor() -> None:
    [job] = BUNDLE.files[DEPLOY / "resources" / "model_job.yml"]["resources"]["jobs"].values()
    dependencies = job["environments"][0]["spec"]["dependencies"]
    [wheel] = [d for d in dependencies if d.endswith("]") and ".whl[" in d]
    assert {"serving", "databricks"} <= set(wheel.split("[")[1].rstrip("]").split(","))
    floor = next(
        d.split(">=")[1]
        for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][
            "serving"
        ]
        if d.startswith("mlflow-skinny>=")
    )
    [mlflow] = [d for d in dependencies if d.startswith("mlflow>=")]
    assert tuple(map(int, mlflow.split(">=")[1].split("."))) >= tuple(map(int, floor.split(".")))


def test_app_requirements_pin_this_project_version_with_the_databricks_extra() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    lines = [x for x in (DEPLOY / "requirements.txt").read_text().splitlines() if x and not x.startswith("#")]
    assert f"lakebase-memory-agent[databricks]=={version}" in lines


def _documented_commands() -> list[str]:
    """Every `databricks bundle ...` command of the README and of databricks.yml's header, verbatim."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, flags=re.DOTALL)
    header = [
        line.lstrip("# ")
        for line in (DEPLOY / "databricks.yml").read_text().splitlines()
        if line.startswith("#")
    ]
    lines = [line.strip() for block in blocks for line in block.splitlines()] + header
    return [line.split("#")[0].strip() for line in lines if line.startswith("databricks bundle")]


def test_the_documented_deploy_commands_name_only_existing_targets_variables_and_resources() -> None:
    commands = _documented_commands()
    assert len(commands) >= 6
    verbs = set()
    for command in commands:
        words = shlex.split(command)
        verbs.add(words[2])
        target = (
            words[words.index("-t") + 1]
            if "-t" in words
            else next(t for t, d in BUNDLE.main["targets"].items() if d.get("default"))
        )
        assert target in TARGETS, command
        for i, word in enumerate(words):
            if word == "--var":
                name = words[i + 1].split("=", 1)[0]
                assert name in BUNDLE.main["variables"], command
        if words[2] == "run":
            key = next(w for w in words[3:] if not w.startswith("-") and w != target)
            resources = BUNDLE.resolved(target)["resources"]
            assert key in resources["apps"] or key in resources["jobs"], command
    assert {"validate", "deploy", "run"} <= verbs

"""`databricks bundle deploy` without a workspace: in a copy of the project, run the bundle's
artifact build as the CLI does (in the artifact's `path`), then resolve every path of every target
as the CLI does (tests/bundle.py) and check that it names what the build made or what is in git,
inside the sync root. Then install the App's requirements.txt and the endpoint's pinned
requirements into fresh virtual environments and check that, with the environments the bundle
gives them, the service selects ChatDatabricks and the Unity Catalog toolkit and has them."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bundle import ROOT, app_environment, is_library_local, load_bundle, split_wheel_extras

pytestmark = pytest.mark.slow

# Generous bounds: a cold uv cache downloads a few hundred MB.
BUILD_TIMEOUT = 600
INSTALL_TIMEOUT = 900

# Run in each fresh environment: what the service would choose and whether it can.
CHECK = """
import json
from app.agent.databricks_model import has_databricks_langchain, uses_chat_databricks
from app.agent.tool_factory import check_tool_settings
from app.settings import Settings
settings = Settings(_env_file=None)
check_tool_settings(settings.tools)  # raises when UC_FUNCTIONS is set and the extra is missing
from databricks_langchain import ChatDatabricks, DatabricksFunctionClient, UCFunctionToolkit
import mlflow.pyfunc
print(json.dumps({
    "provider": settings.model.provider.value,
    "chat_databricks": uses_chat_databricks(settings.model),
    "uc_functions": settings.tools.uc_functions,
    "langchain": has_databricks_langchain(),
}))
"""


def _uv() -> str:
    found = shutil.which("uv")
    assert found, "the artifact build needs uv on PATH (as `databricks bundle deploy` does)"
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the project (its git files) in which the bundle's artifacts were built."""
    copy = tmp_path_factory.mktemp("bundle") / "project"
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    bundle = load_bundle(copy / "deploy")
    env = {**os.environ, "PATH": f"{Path(_uv()).parent}{os.pathsep}{os.environ['PATH']}"}
    for artifact in bundle.config("dev")["artifacts"].values():
        # bundle/artifacts/build.go: the build command runs in the artifact's path.
        subprocess.run(
            artifact["build"], shell=True, cwd=artifact["path"], env=env, check=True, timeout=BUILD_TIMEOUT
        )
    yield copy


def _inside(path: str, root: Path) -> bool:
    return Path(path).resolve().is_relative_to(root.resolve())


def test_every_path_of_every_target_resolves_after_the_artifact_build(built: Path) -> None:
    bundle = load_bundle(built / "deploy")
    sync_root = bundle.root
    synced = {
        Path(match).resolve()
        for pattern in bundle.main["sync"]["include"]
        for match in glob.glob(str(sync_root / pattern))
    }
    for target in bundle.targets:
        config = bundle.resolved(target)
        for name, artifact in config["artifacts"].items():
            for file in artifact["files"]:
                matches = glob.glob(file["source"])  # bundle/artifacts/expand_globs.go
                assert len(matches) == 1 and matches[0].endswith(".whl"), (target, name, file, matches)
        for app in config["resources"]["apps"].values():
            source = Path(app["source_code_path"])
            assert source.is_dir() and _inside(str(source), sync_root), source
            for line in (source / "requirements.txt").read_text().splitlines():
                if line.startswith(("-r ", "--find-links ")):
                    named = (source / line.split(maxsplit=1)[1]).resolve()
                    assert named.exists(), line
                    # (uv also leaves a .gitignore in its output folder: nothing pip reads)
                    built_files = [named] if named.is_file() else list(named.glob("[!.]*"))
                    assert built_files and all(f in synced for f in built_files), (
                        f"{line}: built but not uploaded (sync.include)"
                    )
        for job in config["resources"]["jobs"].values():
            for task in job["tasks"]:
                python_file = task["spark_python_task"]["python_file"]
                assert Path(python_file).is_file() and _inside(python_file, sync_root), python_file
            for environment in job["environments"]:
                for dependency in environment["spec"]["dependencies"]:
                    if not is_library_local(dependency):
                        continue
                    path, extras = split_wheel_extras(dependency)
                    matches = glob.glob(path)
                    assert len(matches) == 1 and _inside(matches[0], sync_root), (target, dependency)
                    assert "serving" in extras, dependency


def _venv(where: Path) -> Path:
    subprocess.run([_uv(), "venv", "-q", "--python", sys.executable, str(where)], check=True, timeout=120)
    return where / "bin" / "python"


def _install(python: Path, *args: str, cwd: Path) -> None:
    subprocess.run(
        [_uv(), "pip", "install", "-q", "--python", str(python), *args],
        cwd=cwd,
        check=True,
        timeout=INSTALL_TIMEOUT,
    )


def _run_json(python: Path, code: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `code` in that interpreter (in a scratch folder, so no `app` package is found there by
    accident) and read the JSON object it prints last."""
    out = subprocess.run(
        [str(python), "-c", code, *args],
        cwd=python.parent,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert isinstance(result, dict)
    return result


def _check(python: Path, env: dict[str, str], code_path: Path | None = None) -> dict[str, Any]:
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env}
    if code_path is not None:  # the MLflow model ships the `app` package as code, not installed
        clean["PYTHONPATH"] = str(code_path)
    return _run_json(python, CHECK, env=clean)


def test_the_app_and_the_endpoint_install_and_select_the_databricks_model_and_uc_tools(
    built: Path, tmp_path: Path
) -> None:
    bundle = load_bundle(built / "deploy")
    config = bundle.resolved("dev")
    expected = bundle.values("dev")["uc_functions"].split(",")

    # The App: Databricks Apps installs requirements.txt from the source folder, then runs the
    # command with the bundle's `config.env`.
    [app] = config["resources"]["apps"].values()
    source = Path(app["source_code_path"])
    app_python = _venv(tmp_path / "app")
    _install(app_python, "-r", "requirements.txt", cwd=source)
    found = _check(app_python, app_environment(config))
    assert found == {
        "provider": "databricks",
        "chat_databricks": True,
        "uc_functions": expected,
        "langchain": True,
    }

    # The endpoint: Model Serving installs the model's pinned requirements, computed by
    # log_model.py in the job's environment (the wheel with its extras), and gets its environment.
    [job] = config["resources"]["jobs"].values()
    parameters = job["tasks"][0]["spark_python_task"]["parameters"]
    script = built / "deploy" / "log_model.py"
    model = _run_json(
        app_python,
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('log_model', {str(script)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "args = m.parse_args(json.loads(sys.argv[1]))\n"
        "print(json.dumps({'requirements': m.pinned_requirements([], tuple(m.extras(args))),"
        " 'env': m.endpoint_env(args)}))",
        json.dumps(parameters),
    )
    assert any(r.startswith("databricks-langchain==") for r in model["requirements"])
    endpoint_python = _venv(tmp_path / "endpoint")
    _install(endpoint_python, *model["requirements"], cwd=tmp_path)
    env = {k: v for k, v in model["env"].items() if not v.startswith("{{secrets/")}
    assert _check(endpoint_python, env, code_path=built) == found

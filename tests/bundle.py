"""Load the Databricks bundle in deploy/ the way the Databricks CLI does, for the bundle tests.

The CLI (databricks/cli) is not installed here and needs a workspace, so the parts of its loading
that decide whether `bundle deploy` works are reproduced from its source:

* `include` globs are relative to the bundle root (the folder of databricks.yml);
* `artifacts.*.files[].source` and `artifacts.*.path` are relative to the folder of the file that
  defines the artifact (`bundle/artifacts/prepare.go`), and so are resource paths
  (`source_code_path`, `python_file`, local environment dependencies: `normalize_paths.go`,
  `translate_paths*.go`), which must also lie inside the sync root;
* a target's settings are merged over the root: maps key by key, sequences concatenated
  (`libs/dyn/merge`); then job tasks are merged by `task_key` and App resources by `name`
  (`merge_job_tasks.go`, `merge_apps.go`);
* a wheel dependency's `[extras]` suffix is split off before globbing
  (`libs/patchwheel/extras.go`), and globs that match nothing are errors (`expand_globs.go`,
  `libraries/expand_glob_references.go`);
* `${var.*}` takes the target's value, else the default, and a variable with neither is the
  error "no value assigned to required variable".
"""

from __future__ import annotations

import copy
import glob
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
REFERENCE = re.compile(r"\$\{([^}]+)\}")
_WHEEL_EXTRAS = re.compile(r"(?i)\.whl(\[[^\]]*\])$")
_PACKAGE = re.compile(r"^[a-zA-Z0-9\-_]+\s?(\[.*\])?\s?((==|!=|<=|>=|~=|>|<)\s?[0-9][0-9a-zA-Z.+!_-]*,?)*$")
_PIP_FLAG = re.compile(r"(^|\s+)--?[a-zA-Z0-9-]+(([\s|=]+)|$)")

# What `${workspace.current_user.*}` resolves to in the tests: a user whose names differ in form.
USER = {
    "userName": "jane.doe@example.com",
    "short_name": "jane_doe",
    "domain_friendly_name": "jane-doe",
}


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path} is not a mapping"
    return data


def is_library_local(dependency: str) -> bool:
    """`libraries.IsLibraryLocal`: a relative path, not a package spec, a pip flag or a URL."""
    if dependency.startswith("."):
        return True
    if _PIP_FLAG.search(dependency) or _PACKAGE.match(dependency):
        return False
    return "://" not in dependency and not dependency.startswith("/")


def split_wheel_extras(path: str) -> tuple[str, str]:
    match = _WHEEL_EXTRAS.search(path)
    return (path[: match.start(1)], match[1]) if match else (path, "")


def _absolute(base: Path, relative: str) -> str:
    return str((base / relative).resolve()) if not relative.startswith("/") else relative


def _normalize_resources(resources: dict[str, Any], base: Path) -> None:
    for app in (resources.get("apps") or {}).values():
        if "source_code_path" in app:
            app["source_code_path"] = _absolute(base, app["source_code_path"])
    for job in (resources.get("jobs") or {}).values():
        for task in job.get("tasks") or []:
            python_task = task.get("spark_python_task") or {}
            if "python_file" in python_task:
                python_task["python_file"] = _absolute(base, python_task["python_file"])
        for environment in job.get("environments") or []:
            spec = environment.get("spec") or {}
            spec["dependencies"] = [
                _absolute(base, d) if is_library_local(d) else d for d in spec.get("dependencies") or []
            ]


def _normalize_artifacts(artifacts: dict[str, Any], base: Path) -> None:
    for artifact in artifacts.values():
        if "path" in artifact:
            artifact["path"] = _absolute(base, artifact["path"])
        for file in artifact.get("files") or []:
            file["source"] = _absolute(base, file["source"])


def _normalize(content: dict[str, Any], base: Path) -> dict[str, Any]:
    """Every relative path of one file made absolute against that file's folder."""
    content = copy.deepcopy(content)
    sections = [content, *(t or {} for t in (content.get("targets") or {}).values())]
    for section in sections:
        _normalize_resources(section.get("resources") or {}, base)
        _normalize_artifacts(section.get("artifacts") or {}, base)
    return content


def merge(left: Any, right: Any) -> Any:
    """`libs/dyn/merge.Merge`: maps merged key by key, sequences concatenated, scalars replaced."""
    if isinstance(left, dict) and isinstance(right, dict):
        out = dict(left)
        for key, value in right.items():
            out[key] = merge(left[key], value) if key in left else value
        return out
    if isinstance(left, list) and isinstance(right, list):
        return left + right
    return right


def _merge_by_key(items: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for item in items:
        name = item[key]
        merged[name] = merge(merged[name], item) if name in merged else item
    return list(merged.values())


@dataclass(frozen=True)
class Bundle:
    """The files of the bundle (each as written, and with its paths made absolute)."""

    root: Path
    files: dict[Path, dict[str, Any]]
    normalized: dict[Path, dict[str, Any]]

    @property
    def main(self) -> dict[str, Any]:
        return self.files[self.root / "databricks.yml"]

    @property
    def targets(self) -> list[str]:
        return list(self.main["targets"])

    def config(self, target: str) -> dict[str, Any]:
        """The configuration the CLI deploys for `target`, before interpolation."""
        root: dict[str, Any] = {}
        for content in self.normalized.values():
            root = merge(root, {k: v for k, v in content.items() if k != "targets"})
        for content in self.normalized.values():
            # A target's `variables` are values for the root's declarations (see variables()).
            override = (content.get("targets") or {}).get(target) or {}
            root = merge(
                root, {k: v for k, v in override.items() if k not in {"variables", "default", "mode"}}
            )
        for job in (root.get("resources", {}).get("jobs") or {}).values():
            job["tasks"] = _merge_by_key(job.get("tasks") or [], "task_key")
        for app in (root.get("resources", {}).get("apps") or {}).values():
            app["resources"] = _merge_by_key(app.get("resources") or [], "name")
        return root

    def variables(self, target: str) -> dict[str, str]:
        """Each variable's value in `target`: the target's, else the default; none is an error."""
        declared = self.main["variables"]
        given = (self.main["targets"][target] or {}).get("variables") or {}
        values: dict[str, str] = {}
        for name, variable in declared.items():
            value = given.get(name, variable.get("default"))
            assert value is not None, f"no value assigned to required variable {name} (target {target})"
            values[name] = str(value)
        return values

    def _substitute(self, target: str, user: dict[str, str], config: dict[str, Any]) -> Any:
        variables = self.variables(target)
        resources = config.get("resources") or {}

        def substitute(text: str) -> str:
            def one(match: re.Match[str]) -> str:
                parts = match[1].split(".")
                if parts[0] == "var":
                    assert parts[1] in variables, f"${{{match[1]}}} is not a bundle variable"
                    return substitute(variables[parts[1]])
                if parts == ["bundle", "target"]:
                    return target
                if parts[0] == "bundle":
                    return str(config["bundle"][parts[1]])
                if parts[:2] == ["workspace", "current_user"]:
                    return user[parts[2]]
                if parts[0] == "resources":
                    assert parts[2] in (resources.get(parts[1]) or {}), (
                        f"${{{match[1]}}} is not a resource of target {target}"
                    )
                    return match[0]
                raise AssertionError(f"unknown reference ${{{match[1]}}}")

            return REFERENCE.sub(one, text)

        def walk(node: Any) -> Any:
            if isinstance(node, str):
                return substitute(node)
            if isinstance(node, dict):
                return {k: walk(v) for k, v in node.items()}
            if isinstance(node, list):
                return [walk(v) for v in node]
            return node

        return walk

    def resolved(self, target: str, user: dict[str, str] = USER) -> dict[str, Any]:
        """`config(target)` with `${var.*}`, `${bundle.*}` and `${workspace.current_user.*}`
        (as `user`) substituted; `${resources.*}` is checked to name a resource of the target."""
        config = self.config(target)
        resolved = self._substitute(target, user, config)(config)
        assert isinstance(resolved, dict)
        return resolved

    def values(self, target: str, user: dict[str, str] = USER) -> dict[str, str]:
        """Each variable's value in `target`, with its own references substituted."""
        walk = self._substitute(target, user, self.config(target))
        return {name: str(walk(value)) for name, value in self.variables(target).items()}


def load_bundle(root: Path = DEPLOY) -> Bundle:
    """The bundle whose databricks.yml is in `root` (its bundle root and sync root)."""
    main = load_yaml(root / "databricks.yml")
    files = {root / "databricks.yml": main}
    for pattern in main.get("include") or []:
        matches = sorted(glob.glob(str(root / pattern)))
        assert matches, f"include {pattern!r} matches no file"
        files.update({Path(m): load_yaml(Path(m)) for m in matches})
    normalized = {p: _normalize(c, p.parent) for p, c in files.items()}
    return Bundle(root=root, files=files, normalized=normalized)


# What an App resource's `value_from` injects, by the resource's kind (Databricks Apps docs).
_VALUE_FROM = {"serving_endpoint": "name", "experiment": "experiment_id", "sql_warehouse": "id"}


def app_environment(config: dict[str, Any]) -> dict[str, str]:
    """The App's environment from its `config.env` (a `value_from` becomes the value the platform
    injects: the referenced App resource's name or id)."""
    [app] = config["resources"]["apps"].values()
    by_name = {r["name"]: r for r in app.get("resources") or []}
    env: dict[str, str] = {}
    for item in app["config"]["env"]:
        if "value_from" in item:
            resource = by_name[item["value_from"]]
            [(kind, spec)] = [(k, v) for k, v in resource.items() if k not in {"name", "description"}]
            env[item["name"]] = str(spec[_VALUE_FROM[kind]])
        else:
            env[item["name"]] = item["value"]
    return env


# The CLI's published bundle schema (databricks/cli bundle/schema/jsonschema.json), kept beside
# the project for developers and CI (../shared/databricks/README.md).
SCHEMA = ROOT.parent / "shared" / "databricks" / "bundle-schema.json"


def schema_errors(instance: dict[str, Any]) -> list[str]:
    """What the CLI's JSON schema rejects in `instance`. Its patterns use RE2's `\\p{L}` classes,
    which only the `regex` module reads, so `pattern` is checked with it."""
    import json

    import jsonschema
    import regex

    def pattern(validator: Any, expected: str, value: Any, schema: Any) -> Any:
        if isinstance(value, str) and not regex.search(expected, value):
            yield jsonschema.ValidationError(f"{value!r} does not match {expected!r}")

    def leaves(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
        if not error.context:
            return [error]
        return [leaf for child in error.context for leaf in leaves(child)]

    # types-jsonschema leaves `validators.extend` unannotated.
    validator_class = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        jsonschema.Draft7Validator, {"pattern": pattern}
    )
    validator = validator_class(json.loads(SCHEMA.read_text()))
    found = []
    for error in validator.iter_errors(instance):
        for leaf in leaves(error):
            # Every object in the schema may also be a `${var.*}` string: that branch's
            # complaint about an object says nothing.
            if leaf.validator == "type" and leaf.validator_value == "string":
                continue
            found.append(f"{'/'.join(str(p) for p in leaf.absolute_path)}: {leaf.message}")
    return found

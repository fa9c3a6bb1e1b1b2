"""Dockerfile, docker-compose.yml and .dockerignore. No Docker engine runs here, so the compose
file is checked by Debian's docker-compose (`config` parses and resolves it without an engine)
and the Dockerfile by its structure."""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from psycopg.conninfo import conninfo_to_dict

from tests.conftest import system_tool
from tests.faults.processes import running_service

ROOT = Path(__file__).resolve().parents[2]


def _compose_config() -> dict[str, Any]:
    compose = system_tool("docker-compose", "docker-compose")
    done = subprocess.run(
        [compose, "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=120,
        # Defaults of the file, not whatever this shell happens to export.
        env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def test_compose_starts_the_service_on_a_healthy_pgvector_database() -> None:
    config = _compose_config()
    db, agent = config["services"]["db"], config["services"]["agent"]

    assert re.fullmatch(r"pgvector/pgvector:\d+\.\d+\.\d+-pg16", db["image"]), "a pinned release"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    [volume] = db["volumes"]
    assert volume.split(":")[:2] == ["pgdata", "/var/lib/postgresql/data"]
    assert "pgdata" in config["volumes"]

    assert agent["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert Path(agent["build"]["context"]) == ROOT
    assert {"published": 8000, "target": 8000} in agent["ports"]
    env = agent["environment"]
    assert env["HOST"] == "0.0.0.0"
    assert env["PORT"] == "8000"
    url = conninfo_to_dict(env["DATABASE_URL"])
    assert url["host"] == "db"
    assert url["user"] == db["environment"]["POSTGRES_USER"]
    assert url["password"] == db["environment"]["POSTGRES_PASSWORD"]
    assert url["dbname"] == db["environment"]["POSTGRES_DB"]


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1]) for line in lines]


def test_dockerfile_is_multi_stage_locked_non_root_and_health_checked() -> None:
    instructions = _instructions()
    stages = [args for op, args in instructions if op == "FROM"]
    assert len(stages) == 2
    assert all(s.startswith("python:${PYTHON_VERSION}-slim") for s in stages)
    assert all(s.startswith("python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE}") for s in stages)
    [version] = [
        args.split("=", 1)[1] for op, args in instructions if op == "ARG" and args.startswith("PYTHON_")
    ]
    assert re.fullmatch(r"3\.11\.\d+", version), "a pinned patch release"
    assert ("ARG", "DEBIAN_RELEASE=bookworm") in instructions
    runs = [args for op, args in instructions if op == "RUN"]
    syncs = [r for r in runs if r.startswith("uv sync")]
    assert syncs and all("--locked" in r and "--no-dev" in r for r in syncs)

    runtime = instructions[[i for i, (op, _) in enumerate(instructions) if op == "FROM"][-1] :]
    [user] = [args for op, args in runtime if op == "USER"]
    assert user not in {"root", "0"}
    assert any(op == "RUN" and "useradd" in args and user in args for op, args in runtime)
    env = " ".join(args for op, args in runtime if op == "ENV")
    assert "HOST=0.0.0.0" in env
    [healthcheck] = [args for op, args in runtime if op == "HEALTHCHECK"]
    assert "/healthz" in healthcheck and "curl" not in healthcheck
    [cmd] = [args for op, args in runtime if op == "CMD"]
    assert cmd == '["lakebase-memory-agent", "serve"]'


def test_everything_the_dockerfile_copies_reaches_the_build_context() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {".venv", ".git", "tests"} <= set(ignored)
    copied = [
        word
        for op, args in _instructions()
        if op == "COPY" and not args.startswith("--from")
        for word in args.split()[:-1]
        if not word.startswith("--")
    ]
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), source
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source


def _probes() -> dict[str, str]:
    """The Python one-liners of the image's health check (liveness) and of compose's (readiness)."""
    [healthcheck] = [args for op, args in _instructions() if op == "HEALTHCHECK"]
    liveness = re.search(r'"-c", "(.*)"\]', healthcheck)
    assert liveness is not None
    test = _compose_config()["services"]["agent"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    return {"liveness": liveness[1], "readiness": test[3]}


def test_the_health_checks_probe_liveness_and_readiness_of_a_running_service(database_url: str) -> None:
    probes = _probes()
    assert "/healthz" in probes["liveness"] and "/readyz" in probes["readiness"]

    def probe(code: str, port: int) -> int:
        env = {"PATH": os.environ["PATH"], "PORT": str(port)}
        return subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, timeout=30
        ).returncode

    with running_service(database_url) as service:
        assert {name: probe(code, service.port) for name, code in probes.items()} == {
            "liveness": 0,
            "readiness": 0,
        }
    # Nothing listening any more: both fail, so an orchestrator would notice.
    assert all(probe(code, service.port) != 0 for code in probes.values())

"""Start-up as an operator meets it: every configuration error stops every command at once with
one line naming the variable and never the secret; debug logs carry no message content."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.faults.processes import run_cli, running_service

pytestmark = pytest.mark.slow

SECRET = "s3cretPW"
BAD_URLS = [
    (f"postgresql://app:{SECRET}%zz@127.0.0.1:5432/db", "percent-encode"),
    (f"postgresql://app:{SECRET}@[::1/db", "IPv6"),
    (f"postgresql://app:{SECRET}@127.0.0.1:port/db", "port"),
    (f"mysql://app:{SECRET}@127.0.0.1/db", "postgresql://"),
    (f"host=127.0.0.1 password={SECRET} port", "cannot parse"),
]
COMMANDS = [["serve"], ["init-db"], ["load-sample-data"], ["stats"], ["prune"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_bad_database_url_names_the_problem_never_the_secret(command: list[str]) -> None:
    for url, problem in BAD_URLS:
        done = run_cli(command, DATABASE_URL=url)
        output = done.stdout + done.stderr
        assert done.returncode == 2, output
        assert SECRET not in output
        assert "DATABASE_URL" in output and problem in output, output
        assert "Traceback" not in output


CONFIG_ERRORS = [
    ({"AUTH_MODE": "api_key", "API_KEYS": "not-a-pair"}, "API_KEYS"),
    ({"AUTH_MODE": "api_key", "API_KEYS": f"{SECRET}"}, "API_KEYS"),
    ({"AUTH_MODE": "api_key", "API_KEYS": ""}, "API_KEYS"),
    ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL"),
    ({"DB_POOL_MIN_SIZE": "5", "DB_POOL_MAX_SIZE": "2"}, "DB_POOL_MIN_SIZE"),
    ({"PGSSLMODE": "sometimes"}, "SSLMODE"),
    ({"PORT": "eighty"}, "PORT"),
    ({"DB_SCHEMA": "Not-A-Schema"}, "DB_SCHEMA"),
    ({"MAX_METADATA_DEPTH": "1000"}, "MAX_METADATA_DEPTH"),
    ({"MODEL_PROVIDER": "openai"}, "OPENAI_BASE_URL"),
]


@pytest.mark.parametrize(("env", "variable"), CONFIG_ERRORS, ids=[v for _, v in CONFIG_ERRORS])
def test_a_configuration_error_stops_the_start_naming_the_variable(
    env: dict[str, str], variable: str
) -> None:
    done = run_cli(["serve"], DATABASE_URL="postgresql://postgres@127.0.0.1:1/none", **env)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert output.startswith("configuration error:") and variable in output, output
    assert SECRET not in output and "Traceback" not in output


def test_debug_logs_carry_no_message_content_unless_asked(database_url: str) -> None:
    for log_content in (False, True):
        # An address no one has: the streamed answer quotes it, so it is this turn's content.
        marker = ".".join(str(b) for b in (10, *uuid.uuid4().bytes[:3]))
        with running_service(
            database_url, LOG_LEVEL="debug", LOG_CONTENT=str(log_content).lower(), LOG_JSON="true"
        ) as service:
            with httpx.stream(
                "POST",
                f"{service.base_url}/threads/t-{uuid.uuid4().hex[:8]}/messages",
                json={"content": f"Who is at {marker}?"},
                headers={"accept": "text/event-stream"},
                timeout=60,
            ) as response:
                assert response.status_code == 200
                assert marker in "".join(response.iter_text())
            log = service.log()
        # With LOG_CONTENT the libraries' debug lines are written, and they hold the content.
        assert ('"level": "debug"' in log) is log_content
        assert (marker in log) is log_content, log[-3000:]

"""The Agent Protocol through the official JS client, `@langchain/langgraph-sdk`, under Node's own
test runner: the service runs as a real process on 127.0.0.1 against the session's fresh database,
and `node --test` runs a file of tests/js/ against it (its base URL in LG_API_URL). The browser
test bundles a `useStream` page and drives it in Debian's chromium (see conftest.py).

The npm packages are installed with `npm ci` from tests/js/package-lock.json, once a session;
without `node` or `npm` the tests skip saying so.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.api.protocol import PREFIX
from tests.conftest import free_port
from tests.e2e.conftest import JS_DIR, LAUNCH_ARGS, node_tool
from tests.faults.processes import ServiceProcess, running_service

pytestmark = pytest.mark.slow

# Long enough for a turn to be joined, dropped, cancelled or reloaded while it runs.
TOKEN_DELAY_MS = 60
NODE_TEST_SECONDS = 300


@pytest.fixture(scope="module")
def node(js_packages: Path) -> str:
    """Node, with tests/js/node_modules installed from the lock file."""
    return node_tool("node")


@pytest.fixture(scope="module")
def page_port() -> int:
    """Where the browser test serves its page (the service allows that origin)."""
    return free_port()


@pytest.fixture(scope="module")
def service(database_url: str, page_port: int) -> Iterator[ServiceProcess]:
    with running_service(
        database_url,
        OFFLINE_TOKEN_DELAY_MS=str(TOKEN_DELAY_MS),
        CORS_ORIGINS=f"http://127.0.0.1:{page_port}",
    ) as service:
        yield service


def node_test(node: str, test_file: str, service: ServiceProcess, **env: str) -> None:
    """`node --test` on one file of tests/js/; its report is the failure message."""
    done = subprocess.run(
        [node, "--test", "--test-reporter=tap", test_file],
        cwd=JS_DIR,
        env={**os.environ, "LG_API_URL": service.base_url + PREFIX, **env},
        capture_output=True,
        text=True,
        timeout=NODE_TEST_SECONDS,
    )
    assert done.returncode == 0, f"{test_file} failed:\n{done.stdout}\n{done.stderr}\n{service.log_tail()}"
    passed = re.search(r"^# pass (\d+)$", done.stdout, re.MULTILINE)
    assert passed is not None and int(passed[1]) > 0, f"{test_file} ran no test:\n{done.stdout}"


def test_js_client_speaks_the_protocol(node: str, service: ServiceProcess) -> None:
    node_test(node, "client.test.mjs", service)


def test_use_stream_page_in_chromium(
    node: str, service: ServiceProcess, page_port: int, chromium_path: str
) -> None:
    node_test(
        node,
        "browser.test.mjs",
        service,
        PAGE_PORT=str(page_port),
        CHROMIUM_PATH=chromium_path,
        CHROMIUM_ARGS=" ".join(LAUNCH_ARGS),
    )

"""End-to-end fixtures: Debian's chromium, driven headless by Playwright, against the real service.

The browser is the system's (`/usr/bin/chromium`), installed here with apt-get when missing:
Playwright's own browser download is never used. Where no browser can be installed the tests
skip with the reason. Every page collects console errors and uncaught exceptions; a test fails
if any appear that it did not expect.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Error, Page, async_playwright

from tests.conftest import make_settings, one_worker_at_a_time, real_server

CHROMIUM = Path("/usr/bin/chromium")
JS_DIR = Path(__file__).resolve().parents[1] / "js"
ARTIFACTS = Path(__file__).parent / "artifacts"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Slow enough to see tokens arrive one by one, fast enough to keep the suite quick.
TOKEN_DELAY_MS = 20


def _apt_install_chromium() -> str | None:
    """Install Debian's chromium; the reason it cannot be, or None when it is there."""
    if CHROMIUM.exists():
        return None
    if shutil.which("apt-get") is None:
        return f"{CHROMIUM} is missing and there is no apt-get to install Debian's chromium"
    if os.geteuid() != 0:
        return f"{CHROMIUM} is missing; installing it needs root (apt-get install chromium)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [
        "apt-get",
        "install",
        "-y",
        "--no-install-recommends",
        "-o",
        "DPkg::Lock::Timeout=300",
        "chromium",
    ]
    result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        # A fresh machine has no package lists yet, or stale ones: update, then try again.
        subprocess.run(
            ["apt-get", "update", "-o", "DPkg::Lock::Timeout=300"],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0 or not CHROMIUM.exists():
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        return "apt-get install chromium failed: " + " | ".join(tail)
    return None


@pytest.fixture(scope="session")
def chromium_path() -> str:
    with one_worker_at_a_time("apt"):
        reason = _apt_install_chromium()
    if reason is not None:
        pytest.skip(f"no browser for the end-to-end tests: {reason}")
    return str(CHROMIUM)


@pytest.fixture(scope="session")
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path, args=LAUNCH_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture(scope="session")
async def server(database_url: str) -> AsyncIterator[str]:
    """The service on 127.0.0.1 with the offline model streaming slowly enough to watch."""
    settings = make_settings(database_url, model={"offline_token_delay_ms": TOKEN_DELAY_MS})
    async with real_server(settings) as base_url:
        yield base_url


def node_tool(command: str) -> str:
    """`node` or `npm` from PATH; the test is skipped, saying so, where there is none."""
    found = shutil.which(command)
    if found is None:
        pytest.skip(f"`{command}` is not on PATH: this test needs Node.js 20+ with npm")
    return found


@pytest.fixture(scope="session")
def js_packages() -> Path:
    """tests/js/node_modules, installed with `npm ci` from the lock file: by one worker, once for
    each version of the lock file (a marker in node_modules names the lock file's hash)."""
    npm = node_tool("npm")
    lock_hash = hashlib.sha256((JS_DIR / "package-lock.json").read_bytes()).hexdigest()[:16]
    marker = JS_DIR / "node_modules" / f".installed-{lock_hash}"
    with one_worker_at_a_time("npm"):
        if not marker.exists():
            installed = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=JS_DIR,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert installed.returncode == 0, f"npm ci failed:\n{installed.stdout}\n{installed.stderr}"
            marker.touch()
    return JS_DIR / "node_modules"


@pytest.fixture(scope="session")
def axe_source(js_packages: Path) -> str:
    """axe-core's browser build, at the version of tests/js/package-lock.json."""
    return (js_packages / "axe-core" / "axe.min.js").read_text()


async def axe_violations(page: Page, axe_source: str) -> list[str]:
    """What axe-core finds wrong on the page as it is now (WCAG 2.x A and AA, best practices):
    one line per rule and the elements that break it. The page's CSP is bypassed by its context
    (`bypass_csp=True`), so the test can inject axe."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.add_script_tag(content=axe_source)
    found: list[dict[str, Any]] = await page.evaluate(
        """async () => (await axe.run(document, {
              runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']},
              resultTypes: ['violations'],
           })).violations.map(v => ({id: v.id, help: v.help,
              nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ': ' + n.failureSummary)}))"""
    )
    return [f"{v['id']} ({v['help']}): {v['nodes']}" for v in found]


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@dataclass
class ConsoleWatch:
    """Console errors and uncaught exceptions of the pages of one test."""

    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """Expect errors matching `pattern` (say, the browser logging a 409 the page handles)."""
        self.allowed.append(re.compile(pattern))

    def watch(self, page: Page) -> None:
        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append(f"console: {message.text} @ {message.location.get('url', '')}")

        def on_page_error(error: Error) -> None:
            self.errors.append(f"pageerror: {error.message}")

        page.on("console", on_console)
        page.on("pageerror", on_page_error)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


@pytest.fixture
def console() -> Iterator[ConsoleWatch]:
    watch = ConsoleWatch()
    yield watch
    assert watch.unexpected() == [], "the page logged errors"


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(
        viewport={"width": 1280, "height": 800}, permissions=["clipboard-read", "clipboard-write"]
    )
    try:
        yield context
    finally:
        await context.close()


@pytest.fixture
async def page(context: BrowserContext, console: ConsoleWatch) -> Page:
    page = await context.new_page()
    page.set_default_timeout(15_000)
    console.watch(page)
    return page

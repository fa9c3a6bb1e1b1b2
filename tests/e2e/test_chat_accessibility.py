"""The chat page with axe-core (from tests/js's lock file, injected by the test) in every main
state, light and dark, wide and narrow: 0 violations. And what axe cannot see: the conversation
walked message by message, a completed answer announced, the running-turn dot named, and focus
kept inside the phone drawer while it is open."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import pytest
from playwright.async_api import Browser, Page, expect

from tests.conftest import make_settings, real_server, unique
from tests.e2e.chat_helpers import FOLLOW_UP, QUESTION, make_thread, send, shot, wait_idle
from tests.e2e.conftest import ConsoleWatch, axe_violations
from tests.e2e.test_chat_approval_decisions import RESPOND_LABEL

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
async def slow_server(database_url: str) -> AsyncIterator[str]:
    settings = make_settings(database_url, model={"offline_token_delay_ms": 120})
    async with real_server(settings) as base_url:
        yield base_url


async def open_page(
    browser: Browser,
    console: ConsoleWatch,
    *,
    scheme: Literal["light", "dark"],
    width: int = 1280,
    height: int = 800,
) -> Page:
    context = await browser.new_context(
        viewport={"width": width, "height": height},
        color_scheme=scheme,
        bypass_csp=True,  # only so that the test can inject axe-core
        permissions=["clipboard-read", "clipboard-write"],
    )
    page = await context.new_page()
    page.set_default_timeout(15_000)
    console.watch(page)
    return page


async def clean(page: Page, axe_source: str, state: str, found: dict[str, list[str]]) -> None:
    violations = await axe_violations(page, axe_source)
    if violations:
        found[state] = violations


@pytest.fixture(scope="module")
async def approving_server(database_url: str) -> AsyncIterator[str]:
    settings = make_settings(database_url, tools={"approval": ["get_user_info"]})
    async with real_server(settings) as base_url:
        yield base_url


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_no_axe_violations_in_any_state(
    browser: Browser,
    slow_server: str,
    axe_source: str,
    console: ConsoleWatch,
    artifacts: Path,
    scheme: Literal["light", "dark"],
) -> None:
    # This service runs without long-term memory: the memory panel's listing is a 404 it explains.
    console.allow(r"404 \(Not Found\) @ .*/store/items/search")
    found: dict[str, list[str]] = {}
    title = f"Axe {unique()}"
    thread_id = await make_thread(slow_server, title, QUESTION, FOLLOW_UP)
    page = await open_page(browser, console, scheme=scheme)
    await page.goto(slow_server)
    await expect(page.get_by_role("heading", name="Ask the security assistant")).to_be_visible()
    await clean(page, axe_source, "new thread", found)

    await page.goto(f"{slow_server}/#thread={thread_id}")
    await expect(page.locator("article.turn")).to_have_count(2)
    await page.locator("details.step").first.locator("summary").click()
    await clean(page, axe_source, "conversation", found)

    # A turn streaming: Stop instead of Send, steps running, the answer arriving.
    await send(page, "Who committed the latest phishing threat?")
    await page.wait_for_selector(".answer.streaming")
    await clean(page, axe_source, "streaming", found)
    await wait_idle(page)
    # The answer, once complete, is announced (the stream itself is not read token by token).
    await expect(page.locator("#announcer")).to_contain_text("Answer: ")

    await page.get_by_role("button", name="History").click()
    await expect(page.locator("#timeline .cp")).to_have_count(3)
    await page.locator("#timeline .cp").first.get_by_role("button").click()
    await expect(page.locator("#snapshot-bar")).to_be_visible()
    await clean(page, axe_source, "history and a snapshot", found)
    await page.get_by_role("button", name="Back to latest").click()
    await expect(page.locator("#snapshot-bar")).to_be_hidden()

    await page.locator("article.msg-user").first.get_by_role("button", name="Edit the question").click()
    await clean(page, axe_source, "editing a question", found)
    await page.get_by_role("button", name="Cancel").click()

    # A turn of this tab that failed: "not saved", with Retry (as left by a crash).
    await page.evaluate(
        f"""() => sessionStorage.setItem('lma.run.{thread_id}', JSON.stringify({{
              threadId: '{thread_id}', runId: '00000000-0000-0000-0000-000000000000',
              content: {json.dumps(FOLLOW_UP)}, fork: null, lastEventId: null, events: [],
              failed: {{code: 'worker_lost', message: 'The service stopped.'}} }}))"""
    )
    await page.reload()
    await expect(page.locator(".turn.failed")).to_contain_text("Not saved")
    await clean(page, axe_source, "failed turn", found)
    await shot(page, artifacts / f"a11y-failed-{scheme}.png")

    await page.get_by_role("button", name="Memories").click()
    await clean(page, axe_source, "memories", found)
    await page.keyboard.press("Escape")

    await page.get_by_role("button", name="Rename this thread").click()
    await clean(page, axe_source, "rename dialog", found)
    await page.keyboard.press("Escape")
    await page.get_by_role("button", name="Delete this thread").click()
    await clean(page, axe_source, "delete dialog", found)
    await page.keyboard.press("Escape")

    await page.get_by_label("Search thread titles").fill(unique("nothing"))
    await expect(page.locator("#thread-footer")).to_contain_text("No thread title matches")
    await clean(page, axe_source, "search without results", found)

    narrow = await open_page(browser, console, scheme=scheme, width=375, height=740)
    await narrow.goto(f"{slow_server}/#thread={thread_id}")
    await expect(narrow.locator("article.turn")).to_have_count(3)
    await clean(narrow, axe_source, "narrow conversation", found)
    await narrow.get_by_role("button", name="Show threads").click()
    await clean(narrow, axe_source, "narrow drawer", found)
    await shot(page, artifacts / f"a11y-{scheme}.png")
    assert found == {}, json.dumps(found, indent=1)


async def test_focus_stays_in_the_drawer_and_the_busy_dot_is_named(
    browser: Browser, slow_server: str, console: ConsoleWatch
) -> None:
    title = f"Drawer {unique()}"
    thread_id = await make_thread(slow_server, title)
    page = await open_page(browser, console, scheme="light", width=375, height=740)
    await page.goto(f"{slow_server}/#thread={thread_id}")
    await expect(page.locator("#thread-title")).to_have_text(title)
    await send(page, QUESTION)
    await page.wait_for_selector(".answer.streaming")
    # The running turn's dot in the list says what it means.
    await page.get_by_role("button", name="Show threads").click()
    await expect(page.get_by_role("img", name="a turn is running")).to_have_count(1)
    for _ in range(40):
        await page.keyboard.press("Tab")
        inside = await page.evaluate(
            "() => document.getElementById('sidebar').contains(document.activeElement)"
        )
        assert inside, await page.evaluate("() => document.activeElement.outerHTML.slice(0, 120)")
    for _ in range(5):
        await page.keyboard.press("Shift+Tab")
        assert await page.evaluate(
            "() => document.getElementById('sidebar').contains(document.activeElement)"
        )
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("button", name="Show threads")).to_be_focused()
    await wait_idle(page)


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_no_axe_violations_with_an_approval_waiting(
    browser: Browser,
    approving_server: str,
    axe_source: str,
    console: ConsoleWatch,
    artifacts: Path,
    scheme: Literal["light", "dark"],
) -> None:
    """The approval card (named region, its decision buttons, the edit, reject and respond
    forms, an invalid edit, an empty answer refused, a message held back) and the sidebar's
    "Waiting for approval" marker."""
    found: dict[str, list[str]] = {}
    title = f"Approval {unique()}"
    thread_id = await make_thread(approving_server, title, QUESTION)  # it pauses before get_user_info
    page = await open_page(browser, console, scheme=scheme)
    await page.goto(f"{approving_server}/#thread={thread_id}")
    approval = page.get_by_role("region", name="Approval needed: get_user_info")
    await expect(approval).to_be_visible()
    marker = page.locator(".thread-item").filter(has_text=title).locator(".waiting-mark")
    await expect(marker).to_have_text("Waiting for approval")
    await clean(page, axe_source, "approval card and sidebar marker", found)
    await shot(page, artifacts / f"a11y-approval-{scheme}.png")

    # Keyboard only: Tab reaches the decision buttons, Enter opens the edit form.
    await approval.get_by_role("button", name="Approve").focus()
    await page.keyboard.press("Tab")
    await expect(approval.get_by_role("button", name="Edit")).to_be_focused()
    await page.keyboard.press("Enter")
    field = page.get_by_label("Arguments of get_user_info (JSON)")
    await expect(field).to_be_focused()
    await field.fill("{")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")  # Run with these arguments: refused, the error said
    await expect(field).to_have_attribute("aria-invalid", "true")
    await clean(page, axe_source, "editing the arguments, invalid", found)
    await approval.get_by_role("button", name="Cancel").click()
    await approval.get_by_role("button", name="Reject").click()
    await clean(page, axe_source, "rejecting with a reason", found)
    await approval.get_by_role("button", name="Cancel").click()
    await approval.get_by_role("button", name="Respond").click()
    await approval.get_by_role("button", name="Send this answer").click()  # empty: refused, said
    await expect(page.get_by_label(RESPOND_LABEL)).to_have_attribute("aria-invalid", "true")
    await clean(page, axe_source, "responding, an empty answer refused", found)
    await approval.get_by_role("button", name="Cancel").click()

    await send(page, FOLLOW_UP)
    await expect(approval).to_contain_text("Your message was not sent")
    await clean(page, axe_source, "a message held back", found)

    narrow = await open_page(browser, console, scheme=scheme, width=375, height=740)
    await narrow.goto(f"{approving_server}/#thread={thread_id}")
    await expect(narrow.get_by_role("region", name="Approval needed: get_user_info")).to_be_visible()
    await clean(narrow, axe_source, "narrow approval card", found)
    await narrow.get_by_role("button", name="Show threads").click()
    await expect(
        narrow.locator(".thread-item").filter(has_text=title).locator(".waiting-mark")
    ).to_be_visible()
    await clean(narrow, axe_source, "narrow drawer with the marker", found)
    assert found == {}, json.dumps(found, indent=1)

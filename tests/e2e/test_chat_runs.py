"""The chat page when a turn does not simply run to its end: Stop, a reload or a switch away
during a turn, the service crashing mid-turn or down while the user sends. The question is
never lost, a turn that was not saved says so, and the page never blames another tab for its
own turn."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, Request, expect

from tests.conftest import make_settings, real_server, unique
from tests.e2e.chat_helpers import (
    FOLLOW_UP,
    QUESTION,
    get_json,
    make_thread,
    open_from_sidebar,
    send,
    shot,
    thread_item,
    wait_idle,
)
from tests.e2e.conftest import ConsoleWatch
from tests.faults.processes import ServiceProcess

pytestmark = pytest.mark.slow

# Slow enough that a turn is still streaming when the test stops, reloads or kills it.
SLOW_TOKEN_MS = 150


def first_question() -> str:
    """The first question of a thread a test starts from the page: a title of its own, so that
    the tests that find their thread by its title (the first question) never see two."""
    return f"Case {unique()}: who committed the latest malware threat?"


@pytest.fixture
async def slow_server(database_url: str) -> AsyncIterator[str]:
    settings = make_settings(database_url, model={"offline_token_delay_ms": SLOW_TOKEN_MS})
    async with real_server(settings) as base_url:
        yield base_url


@pytest.fixture
async def page_of(browser: Browser, console: ConsoleWatch) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        yield context
    finally:
        await context.close()


async def new_page(context: BrowserContext, console: ConsoleWatch) -> Page:
    page = await context.new_page()
    page.set_default_timeout(15_000)
    console.watch(page)
    return page


async def streaming(page: Page) -> str:
    """Wait until the answer is arriving (a few words of it are on screen); its text so far."""
    partial = await page.wait_for_function(
        """() => { const a = document.querySelector('.answer.streaming');
                   return a && a.textContent.split(' ').length >= 3 ? a.textContent : null }""",
        timeout=30_000,
    )
    text = await partial.json_value()
    assert isinstance(text, str)
    return text


async def open_thread_id(page: Page) -> str:
    thread_id = (await page.locator("#thread-id").text_content()) or ""
    assert thread_id
    return thread_id


async def test_stop_and_escape_cancel_the_turn_and_give_the_question_back(
    page_of: BrowserContext, slow_server: str, console: ConsoleWatch
) -> None:
    page = await new_page(page_of, console)
    await page.goto(slow_server)
    box = page.get_by_label("Message", exact=True)
    question = first_question()
    await send(page, question)
    await streaming(page)
    await page.get_by_role("button", name="Stop", exact=True).click()
    # Nothing of it stays on screen or in the thread; the question is back for editing.
    await expect(box).to_have_value(question)
    await expect(page.locator(".msg-user")).to_have_count(0)
    await expect(page.locator(".turn")).to_have_count(0)
    await expect(page.get_by_role("status").filter(has_text="Stopped: nothing was saved")).to_be_visible()
    await wait_idle(page)
    thread_id = await open_thread_id(page)
    assert (await get_json(slow_server, f"/threads/{thread_id}/messages"))["messages"] == []
    assert [r["status"] for r in await get_json(slow_server, f"/threads/{thread_id}/runs")] == ["interrupted"]

    # Escape does the same from the keyboard, here with the box focused.
    await box.press("Enter")
    await streaming(page)
    await box.press("Escape")
    await expect(box).to_have_value(question)
    await expect(page.locator(".msg-user")).to_have_count(0)
    await wait_idle(page)
    runs = await get_json(slow_server, f"/threads/{thread_id}/runs")
    assert [r["status"] for r in runs] == ["interrupted", "interrupted"]

    # And the question, sent again, runs to its end.
    await box.press("Enter")
    await wait_idle(page)
    await expect(page.locator(".answer")).to_contain_text("committed by")
    await expect(box).to_have_value("")


async def test_a_reload_mid_turn_rejoins_the_run_from_the_last_event_seen(
    page_of: BrowserContext, slow_server: str, console: ConsoleWatch
) -> None:
    page = await new_page(page_of, console)
    resumed: list[str] = []

    def on_request(request: Request) -> None:
        if request.url.endswith("/stream") and request.headers.get("last-event-id"):
            resumed.append(request.headers["last-event-id"])

    page.on("request", on_request)
    await page.goto(slow_server)
    question = first_question()
    await send(page, question)
    await expect(page.locator("details.step")).to_have_count(2)
    partial = await streaming(page)
    thread_id = await open_thread_id(page)
    # The page keeps where it is in the run's stream (per tab, for a reload).
    seen = await page.wait_for_function(
        f"""() => {{ const r = JSON.parse(sessionStorage.getItem('lma.run.{thread_id}') || 'null');
                     const tokens = r && r.events.some(e => e[0] === 'token');
                     return tokens && r.lastEventId ? r.lastEventId : null }}"""
    )
    last_seen = await seen.json_value()

    await page.reload()
    # The running turn is back on screen at once, the user's own question included, and goes on.
    await expect(page.locator(".msg-user .bubble")).to_have_text([question])
    await expect(page.locator("details.step")).to_have_count(2)
    await expect(page.locator(".answer")).to_contain_text(partial)
    await expect(page.get_by_role("button", name="Stop", exact=True)).to_be_visible()
    await wait_idle(page)
    stored = (await get_json(slow_server, f"/threads/{thread_id}/messages"))["messages"]
    # Resumed, not replayed: the stream was asked for what came after an event already seen,
    # and the answer on screen is the stored one, nothing doubled.
    assert resumed and resumed[0].split(":")[0] == last_seen.split(":")[0], (resumed, last_seen)
    await expect(page.locator(".answer")).to_have_text([stored[-1]["content"]])
    await expect(page.locator(".msg-user .bubble")).to_have_text([question])
    assert not await page.evaluate(f"() => sessionStorage.getItem('lma.run.{thread_id}')")

    # Switching to another thread and back during a turn shows it running again.
    await send(page, FOLLOW_UP)
    await streaming(page)
    await page.get_by_role("button", name="New thread").click()
    await expect(page.locator(".msg-user")).to_have_count(0)
    await page.go_back()
    await expect(page.locator(".msg-user .bubble")).to_have_text([question, FOLLOW_UP])
    await wait_idle(page)
    await expect(page.locator(".answer").last).to_have_text(
        (await get_json(slow_server, f"/threads/{thread_id}/messages"))["messages"][-1]["content"]
    )


async def test_a_second_tab_shows_a_turn_sent_from_the_first(
    page_of: BrowserContext, slow_server: str, console: ConsoleWatch
) -> None:
    title = f"Two tabs {unique()}"
    thread_id = await make_thread(slow_server, title)
    first, second = await new_page(page_of, console), await new_page(page_of, console)
    for page in (first, second):
        await page.goto(f"{slow_server}/#thread={thread_id}")
        await expect(page.locator("#thread-title")).to_have_text(title)
    await send(first, QUESTION)
    # The other tab follows the turn live (question, steps, answer arriving), then has it saved.
    await expect(second.locator(".msg-user .bubble")).to_have_text([QUESTION], timeout=10_000)
    await streaming(second)
    await expect(second.get_by_role("button", name="Send", exact=True)).to_be_disabled()
    await expect(second.get_by_role("button", name="Stop", exact=True)).to_be_hidden()
    await wait_idle(second)
    await wait_idle(first)
    await expect(second.locator(".answer")).to_have_text(await first.locator(".answer").all_text_contents())
    # A turn saved by another client (here the API) appears without a reload as well.
    await make_thread_turn(slow_server, thread_id, FOLLOW_UP)
    for page in (first, second):
        await expect(page.locator(".msg-user .bubble")).to_have_text([QUESTION, FOLLOW_UP], timeout=10_000)


async def make_thread_turn(base_url: str, thread_id: str, content: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        response = await http.post(f"/threads/{thread_id}/messages", json={"content": content})
        assert response.status_code == 200, response.text


async def test_drafts_stay_with_their_thread(
    page_of: BrowserContext, server: str, console: ConsoleWatch
) -> None:
    first, second = f"Draft A {unique()}", f"Draft B {unique()}"
    await make_thread(server, first)
    await make_thread(server, second)
    page = await new_page(page_of, console)
    await page.goto(server)
    box = page.get_by_label("Message", exact=True)
    await box.fill("draft for a new thread")
    await open_from_sidebar(page, first)
    await expect(box).to_have_value("")
    await box.fill("their email?")
    await open_from_sidebar(page, second)
    await expect(box).to_have_value("")  # the follow-up did not come along
    await box.fill("something else")
    await open_from_sidebar(page, first)
    await expect(box).to_have_value("their email?")
    await page.reload()
    await expect(page.locator("#thread-title")).to_have_text(first)
    await expect(box).to_have_value("their email?")
    await page.get_by_role("button", name="New thread").click()
    await expect(box).to_have_value("draft for a new thread")


async def test_a_service_crash_mid_turn_loses_no_question(
    page_of: BrowserContext, database_url: str, console: ConsoleWatch, artifacts: Path
) -> None:
    # Requests to the dead service fail in the browser's log; the page explains them.
    console.allow(r"Failed to load resource")
    env = {"OFFLINE_TOKEN_DELAY_MS": str(SLOW_TOKEN_MS), "RUN_LEASE_SECONDS": "3"}
    first = ServiceProcess(database_url, **env)
    second: ServiceProcess | None = None
    try:
        first.start()
        await asyncio.to_thread(first.wait_ready)
        page = await new_page(page_of, console)
        banners: list[str] = []

        def note_banner(text: str) -> None:
            banners.append(text)

        await page.expose_function("noteBanner", note_banner)
        await page.goto(first.base_url)
        await page.evaluate(
            """() => { const banner = document.getElementById('banner');
                       new MutationObserver(() => window.noteBanner(banner.textContent))
                         .observe(banner, {subtree: true, childList: true, characterData: true}) }"""
        )
        question = first_question()
        await send(page, question)
        await streaming(page)
        os.kill(first.pid, signal.SIGKILL)
        assert first.process is not None
        await asyncio.to_thread(first.process.wait, 30)

        box = page.get_by_label("Message", exact=True)
        await expect(page.locator("#banner")).to_contain_text("can't be reached")
        turn = page.locator(".turn").last
        await expect(turn.get_by_role("alert")).to_contain_text("Not saved")
        await expect(turn.locator('details.step[data-state="done"]')).to_have_count(0)
        await expect(box).to_have_value(question)

        second = first.successor()
        second.start()
        await asyncio.to_thread(second.wait_ready)
        # The page sees the service back: the offline banner goes (hidden, or replaced by the
        # failure below when the new process's reaper finished the run before the page looked).
        offline = page.locator("#banner:visible", has_text="can't be reached")
        await expect(offline).to_have_count(0, timeout=20_000)
        # The run died with its process: once its lease is over the page says so, and offers Retry.
        failed = page.locator(".turn.failed")
        lost = "Not saved: the service stopped during this turn"
        await expect(failed).to_contain_text(lost, timeout=30_000)
        await expect(box).to_have_value(question)
        await expect(page.locator("#toast")).to_be_hidden()  # "Connected again" has gone
        await shot(page, artifacts / "not-saved.png")
        await failed.get_by_role("button", name="Retry").click()
        await wait_idle(page)
        await expect(page.locator(".answer")).to_contain_text("committed by")
        await expect(page.locator(".turn.failed")).to_have_count(0)
        await expect(box).to_have_value("")
        thread_id = await open_thread_id(page)
        stored = (await get_json(second.base_url, f"/threads/{thread_id}/messages"))["messages"]
        assert [m["content"] for m in stored if m["role"] == "user"] == [question]
        assert not [text for text in banners if "another tab" in text], banners
    finally:
        first.stop()
        if second is not None:
            second.stop()


async def test_sending_while_the_service_is_down_keeps_the_banner_and_the_text(
    page_of: BrowserContext, database_url: str, console: ConsoleWatch
) -> None:
    console.allow(r"Failed to load resource")
    service = ServiceProcess(database_url)
    restarted: ServiceProcess | None = None
    try:
        service.start()
        await asyncio.to_thread(service.wait_ready)
        title, other = f"Down {unique()}", f"Other {unique()}"
        thread_id = await make_thread(service.base_url, title, QUESTION)
        await make_thread(service.base_url, other, QUESTION)
        page = await new_page(page_of, console)
        await page.goto(f"{service.base_url}/#thread={thread_id}")
        await expect(page.locator(".answer")).to_contain_text("committed by")
        await asyncio.to_thread(service.stop)

        box = page.get_by_label("Message", exact=True)
        banner = page.locator("#banner")
        await send(page, FOLLOW_UP)
        await expect(banner).to_contain_text("can't be reached")
        await expect(box).to_have_value(FOLLOW_UP)
        await expect(page.locator(".answer")).to_contain_text("committed by")  # the thread stays
        # Another thread cannot load: it says so, under the same banner, instead of a blank page.
        await thread_item(page, other).get_by_role("button", name=re.compile("^" + re.escape(other))).click()
        await expect(page.locator("#messages")).to_contain_text("as soon as the service can be reached")
        await expect(banner).to_contain_text("can't be reached")
        await page.go_back()
        await expect(box).to_have_value(FOLLOW_UP)

        restarted = service.successor()
        restarted.start()
        await asyncio.to_thread(restarted.wait_ready)
        # Back: the thread loads and the message sent while it was down goes.
        await expect(banner).to_be_hidden(timeout=20_000)
        await expect(page.locator(".msg-user .bubble")).to_have_text([QUESTION, FOLLOW_UP], timeout=20_000)
        await wait_idle(page)
        await expect(box).to_have_value("")
        stored: dict[str, Any] = await get_json(restarted.base_url, f"/threads/{thread_id}/messages")
        assert [m["content"] for m in stored["messages"] if m["role"] == "user"] == [QUESTION, FOLLOW_UP]
    finally:
        service.stop()
        if restarted is not None:
            restarted.stop()


async def test_dismissing_the_failed_first_turn_of_a_thread_removes_the_empty_thread(
    page_of: BrowserContext, server: str, console: ConsoleWatch
) -> None:
    question = first_question()
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        thread_id = (await http.post("/threads", json={"title": question})).json()["thread_id"]
    page = await new_page(page_of, console)
    await page.goto(server)
    # As a crash mid-turn leaves it: the tab's record of its failed first turn.
    await page.evaluate(
        """([threadId, content]) => sessionStorage.setItem('lma.run.' + threadId, JSON.stringify({
              threadId, runId: '00000000-0000-0000-0000-000000000000', content, fork: null,
              lastEventId: null, events: [],
              failed: {code: 'worker_lost', message: 'The service stopped.'}}))""",
        [thread_id, question],
    )
    await page.goto(f"{server}/#thread={thread_id}")
    failed = page.locator(".turn.failed")
    await expect(failed).to_contain_text("Not saved: the service stopped during this turn")
    box = page.get_by_label("Message", exact=True)
    await expect(box).to_have_value(question)
    await failed.get_by_role("button", name="Dismiss").click()
    # The thread had nothing else: it goes, and the question with the page to a new thread.
    await expect(page.locator("#thread-title")).to_have_text("New thread")
    await expect(box).to_have_value(question)
    await expect(page.locator(f'.thread-item[data-id="{thread_id}"]')).to_have_count(0)
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        assert (await http.get(f"/threads/{thread_id}")).status_code == 404

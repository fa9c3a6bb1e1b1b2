"""The chat page in a real browser against the real service and PostgreSQL.

Each test drives the page the way a person would (labels, roles, keyboard) and checks what the
service stored through the API. Screenshots of the main states go to tests/e2e/artifacts/.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.conftest import make_settings, real_server, unique
from tests.e2e.chat_helpers import (
    FOLLOW_UP,
    QUESTION,
    UI_DIR,
    get_json,
    make_thread,
    no_sideways_scroll,
    open_from_sidebar,
    send,
    shot,
    wait_idle,
)
from tests.e2e.conftest import ConsoleWatch

pytestmark = pytest.mark.slow

# ---------------------------------------------------------------------------------------------


async def test_page_is_served_locally_with_strict_headers(server: str) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-cache"
        assert "default-src 'self'" in page.headers["content-security-policy"]
        for asset, kind in [
            ("app.js", "javascript"),
            ("api.js", "javascript"),
            ("app.css", "text/css"),
            ("favicon.svg", "image/svg+xml"),
        ]:
            response = await http.get(f"/ui/{asset}")
            assert response.status_code == 200 and kind in response.headers["content-type"], asset
            assert response.headers["x-content-type-options"] == "nosniff"
        assert (await http.get("/ui/nope.js")).status_code == 404
        schema = (await http.get("/openapi.json")).json()
        assert "/" not in schema["paths"]
    # Everything the page loads is one of its own files (the browser tests also watch every request).
    html = (UI_DIR / "index.html").read_text()
    assert set(re.findall(r'(?:src|href)="([^"#]+)"', html)) == {"ui/favicon.svg", "ui/app.css", "ui/app.js"}
    for module in UI_DIR.glob("*.js"):
        for target in re.findall(r'^import .* from "([^"]+)";', module.read_text(), re.M):
            assert (UI_DIR / target).is_file(), (module.name, target)
    assert "url(" not in (UI_DIR / "app.css").read_text()


async def test_demo_dialogue_streams_then_survives_a_reload(page: Page, server: str, artifacts: Path) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    await page.goto(server)
    await expect(page.get_by_role("heading", name="Ask the security assistant")).to_be_visible()
    await shot(page, artifacts / "01-new-thread.png")

    # Every button has a name a screen reader can say.
    unnamed = await page.evaluate(
        """() => [...document.querySelectorAll('button')]
              .filter(b => !(b.getAttribute('aria-label') || b.textContent.trim())).length"""
    )
    assert unnamed == 0

    await send(page, QUESTION)
    # While the answer streams the box stays open for the next question; Send becomes Stop.
    await expect(page.get_by_role("button", name="Stop", exact=True)).to_be_visible()
    await expect(page.get_by_label("Message", exact=True)).to_be_enabled()
    steps = page.locator("details.step")
    await expect(steps).to_have_count(2)
    await expect(steps.nth(0).locator(".step-name")).to_have_text("get_cyber_threat_info")
    await expect(steps.nth(1).locator(".step-name")).to_have_text("get_user_info")
    # Watch the answer arrive token by token: a strict prefix first, the whole answer later.
    partial = await page.wait_for_function(
        """() => { const a = document.querySelector('.answer.streaming');
                   return a && a.textContent.split(' ').length >= 3 ? a.textContent : null }"""
    )
    partial_text = await partial.json_value()
    await shot(page, artifacts / "02-streaming.png")
    await wait_idle(page)
    answer = page.locator(".answer").last
    await expect(answer).to_contain_text("committed by")
    final_text = await answer.text_content()
    assert final_text is not None
    assert final_text.startswith(partial_text) and len(partial_text) < len(final_text)
    await expect(page.locator(".answer.streaming")).to_have_count(0)
    await expect(steps.nth(0)).to_have_attribute("data-state", "done")

    # The tool steps are compact and expand to show what was called and what came back.
    await steps.nth(1).locator("summary").click()
    await expect(steps.nth(1).locator(".fields")).to_contain_text("user_name")

    await send(page, FOLLOW_UP)
    await wait_idle(page)
    await expect(page.locator(".answer").last).to_have_text(re.compile(r"^Their IP address is "))
    await expect(page.locator(".msg-user .bubble")).to_have_count(2)
    # The new thread is titled by its first question, is open, and is first in the sidebar.
    current = page.locator(".thread-item.current")
    await expect(current).to_contain_text(QUESTION)
    await expect(page.locator(".thread-item").first).to_contain_text(QUESTION)
    await expect(page.locator("#branch-chip")).to_have_text("Branch 1 of 1")
    await shot(page, artifacts / "03-dialogue.png")
    await no_sideways_scroll(page)

    thread_id = (await page.locator("#thread-id").text_content()) or ""
    assert thread_id and page.url.endswith(f"#thread={thread_id}")
    stored = await get_json(server, f"/threads/{thread_id}/messages")
    assert [m["role"] for m in stored["messages"]].count("user") == 2
    assert stored["messages"][-1]["content"] == await page.locator(".answer").last.text_content()

    # Reload: the page comes back on the thread. A fresh visit finds it in the sidebar.
    await page.reload()
    await expect(page.locator(".answer")).to_have_count(2)
    await page.goto(server)
    await expect(page.get_by_role("heading", name="Ask the security assistant")).to_be_visible()
    # By its id: other tests' threads may carry the same title (their first question).
    await page.locator(f'.thread-open[title*="{thread_id}"]').click()
    await expect(page.locator(".msg-user .bubble")).to_have_count(2)
    await expect(page.locator(".msg-user .bubble").first).to_have_text(QUESTION)
    await expect(page.locator("details.step")).to_have_count(2)
    await expect(page.locator(".answer").first).to_contain_text("committed by")
    await expect(page.locator(".answer").last).to_have_text(re.compile(r"^Their IP address is "))
    await expect(page.locator("#thread-title")).to_have_text(QUESTION)
    await shot(page, artifacts / "04-reloaded.png")
    # No CDN, no fonts from elsewhere: the page only ever talks to the service.
    assert requests and all(url.startswith(server + "/") for url in requests), requests


async def test_copy_the_thread_id_and_paste_it_to_resume(page: Page, server: str) -> None:
    title = f"Copy me {unique()}"
    thread_id = await make_thread(server, title, QUESTION)
    await page.goto(f"{server}/#thread={thread_id}")
    await expect(page.locator("#thread-title")).to_have_text(title)
    await page.get_by_role("button", name="Copy the thread id").click()
    await expect(page.get_by_role("status").filter(has_text="Thread id copied")).to_be_visible()
    assert await page.evaluate("navigator.clipboard.readText()") == thread_id

    await page.get_by_role("button", name="New thread").click()
    await expect(page.locator("#thread-title")).to_have_text("New thread")
    await expect(page.locator(".msg-user .bubble")).to_have_count(0)
    field = page.get_by_label("Resume a thread by id")
    await field.fill("no such thread!")
    await field.press("Enter")
    await expect(page.locator("#open-error")).to_contain_text("letters, digits")
    await field.fill(thread_id)
    await field.press("Enter")
    await expect(page.locator("#thread-title")).to_have_text(title)
    await expect(page.locator(".msg-user .bubble")).to_have_text([QUESTION])
    await expect(page.locator(".answer")).to_contain_text("committed by")


async def test_fork_from_an_earlier_checkpoint(page: Page, server: str, artifacts: Path) -> None:
    title = f"Fork me {unique()}"
    thread_id = await make_thread(server, title, QUESTION, FOLLOW_UP)
    await page.goto(server)
    await open_from_sidebar(page, title)
    await expect(page.locator(".answer").last).to_have_text(re.compile(r"^Their IP address is "))

    await page.get_by_role("button", name="History").click()
    timeline = page.locator("#timeline .cp")
    await expect(timeline).to_have_count(2)
    # A tree read top down, each branch in turn order; each checkpoint is labelled with the
    # question of its turn.
    await expect(timeline.nth(0)).to_contain_text(f"Turn 1 · {QUESTION}")
    await expect(timeline.nth(1)).to_contain_text(f"Turn 2 · {FOLLOW_UP}")
    await expect(timeline.nth(1)).to_contain_text("latest")

    # The conversation as it was after turn 1: the follow-up is not there yet.
    await timeline.nth(0).get_by_role("button").click()
    await expect(page.locator("#snapshot-bar")).to_be_visible()
    await expect(page.locator(".msg-user .bubble")).to_have_text([QUESTION])
    await expect(page.locator("#branch-chip")).to_have_text("Viewing turn 1 · branch 1 of 1")
    await shot(page, artifacts / "05-history-snapshot.png")

    turn_one = await timeline.nth(0).get_by_role("button").element_handle()

    # Continue from there: a new branch.
    await send(page, "What was their email?")
    await wait_idle(page)
    await expect(page.locator(".answer").last).to_have_text(re.compile(r"^Their email is "))
    await expect(page.locator("#snapshot-bar")).to_be_hidden()
    await expect(page.locator("#branch-chip")).to_have_text("Branch 2 of 2")
    await expect(page.locator(".msg-user .bubble")).to_have_text([QUESTION, "What was their email?"])
    await expect(timeline).to_have_count(3)
    # The new branch comes after the branch it forked from, one level in.
    await expect(timeline.nth(2)).to_contain_text("forked from turn 1")
    await expect(timeline.nth(2)).to_contain_text("latest")
    await expect(page.locator("#timeline .cp.on-branch")).to_have_count(2)
    indent = await timeline.evaluate_all("items => items.map(li => getComputedStyle(li).paddingLeft)")
    assert indent[0] == indent[1] != indent[2], indent
    # Entries are updated in place, never replaced (a replaced button would swallow a click that
    # was under way): turn 1's button is the same element, still first.
    assert await turn_one.evaluate(
        "b => b.isConnected && b.closest('li') === document.querySelectorAll('#timeline .cp')[0]"
    )
    await shot(page, artifacts / "06-forked.png")

    history = await get_json(server, f"/threads/{thread_id}/history")
    parents = [c["parent_checkpoint_id"] for c in history["checkpoints"]]
    assert len(history["checkpoints"]) == 3 and len(set(parents)) == 2
    transcript = await get_json(server, f"/threads/{thread_id}/messages")
    assert FOLLOW_UP not in [m["content"] for m in transcript["messages"]]

    # The old branch is still there to look at.
    await timeline.filter(has_text=FOLLOW_UP).get_by_role("button").click()
    await expect(page.locator(".msg-user .bubble")).to_have_text([QUESTION, FOLLOW_UP])
    await expect(page.locator("#branch-chip")).to_have_text("Viewing turn 2 · branch 1 of 2")
    await page.get_by_role("button", name="Back to latest").click()
    await expect(page.locator(".msg-user .bubble")).to_have_text([QUESTION, "What was their email?"])


async def test_busy_thread_and_service_down_are_explained(
    browser: Browser, database_url: str, artifacts: Path, console: ConsoleWatch
) -> None:
    # The browser logs the refused requests (409, connection refused) the page then explains.
    console.allow(r"Failed to load resource")
    settings = make_settings(database_url, model={"offline_token_delay_ms": 120})
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = await context.new_page()
        console.watch(page)
        async with real_server(settings) as base_url:
            title = f"Busy {unique()}"
            thread_id = await make_thread(base_url, title)
            await page.goto(f"{base_url}/#thread={thread_id}")
            await expect(page.locator("#thread-title")).to_have_text(title)

            # Another client starts a long turn; this page's message is refused, and says why.
            async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
                other = asyncio.create_task(
                    http.post(f"/threads/{thread_id}/messages", json={"content": QUESTION})
                )
                for _ in range(200):
                    if (await http.get(f"/threads/{thread_id}")).json()["status"] == "busy":
                        break
                    await asyncio.sleep(0.02)
                await send(page, FOLLOW_UP)
                banner = page.locator("#banner")
                await expect(banner).to_contain_text("busy with another turn")
                box = page.get_by_label("Message", exact=True)
                await expect(page.get_by_role("button", name="Send", exact=True)).to_be_disabled()
                await expect(box).to_have_value(FOLLOW_UP)  # nothing typed is lost
                await shot(page, artifacts / "08-busy.png")
                assert (await other).status_code == 200
            # When the other turn is saved the page shows it and unlocks.
            await expect(banner).to_be_hidden(timeout=30_000)
            await expect(page.locator(".answer")).to_contain_text("committed by")
            await wait_idle(page)
        # The service is gone: sending says so instead of failing silently.
        await box.press("Enter")
        await expect(page.locator("#banner")).to_contain_text("can't be reached")
        await expect(page.locator("#banner")).to_have_attribute("role", "alert")
        await shot(page, artifacts / "09-service-down.png")
    finally:
        await context.close()


async def test_narrow_screen_and_keyboard(
    browser: Browser, server: str, artifacts: Path, console: ConsoleWatch
) -> None:
    title = f"Narrow {unique()}"
    await make_thread(server, title, QUESTION)
    context = await browser.new_context(viewport={"width": 375, "height": 740}, has_touch=True)
    try:
        page = await context.new_page()
        console.watch(page)
        await page.goto(server)
        # The thread list is off-canvas; the conversation takes the whole width.
        await expect(page.get_by_label("Message", exact=True)).to_be_visible()
        await expect(page.locator("#sidebar")).not_to_be_in_viewport()
        await shot(page, artifacts / "10-narrow-new.png")
        await page.get_by_role("button", name="Show threads").click()
        await expect(page.locator("#sidebar")).to_be_in_viewport()
        await shot(page, artifacts / "11-narrow-threads.png")
        await page.keyboard.press("Escape")
        await expect(page.locator("#sidebar")).not_to_be_in_viewport()
        await expect(page.get_by_role("button", name="Show threads")).to_be_focused()
        await page.get_by_role("button", name="Show threads").click()
        await open_from_sidebar(page, title)
        await expect(page.locator("#sidebar")).not_to_be_in_viewport()
        await expect(page.locator(".answer")).to_contain_text("committed by")
        await page.locator("details.step").first.locator("summary").click()
        await shot(page, artifacts / "12-narrow-thread.png")
        await no_sideways_scroll(page)

        # Keyboard only: Tab reaches the message box, Enter sends, Shift+Enter adds a line.
        await page.get_by_label("Message", exact=True).focus()
        await page.keyboard.type("What was their")
        await page.keyboard.press("Shift+Enter")
        await page.keyboard.type("IP address?")
        await expect(page.get_by_label("Message", exact=True)).to_have_value("What was their\nIP address?")
        await page.keyboard.press("Enter")
        await wait_idle(page)
        await expect(page.locator(".answer").last).to_have_text(re.compile(r"^Their IP address is "))
    finally:
        await context.close()


async def test_readme_screenshot(
    browser: Browser, database_url: str, artifacts: Path, console: ConsoleWatch
) -> None:
    """The scene in the README (copied by hand to app/ui/docs/chat.png): one user's own threads."""
    settings = make_settings(database_url, auth={"mode": "databricks"})
    analyst = {"X-Forwarded-Email": f"analyst-{unique()}@example.com"}
    async with real_server(settings) as base_url:
        await make_thread(
            base_url,
            "Ransomware on the finance laptops",
            "Who is behind the latest ransomware threat?",
            headers=analyst,
        )
        await make_thread(
            base_url,
            "Phishing wave, March",
            "Who committed the latest phishing threat?",
            "What was their email?",
            headers=analyst,
        )
        await make_thread(
            base_url, "Port scans from the lab", "Who committed the latest port scan threat?", headers=analyst
        )
        context = await browser.new_context(
            viewport={"width": 1280, "height": 900}, extra_http_headers=analyst
        )
        try:
            page = await context.new_page()
            console.watch(page)
            await page.goto(base_url)
            await send(page, QUESTION)
            await wait_idle(page)
            await send(page, FOLLOW_UP)
            await wait_idle(page)
            # Fork from the first turn, so the history shows two branches.
            await page.get_by_role("button", name="History").click()
            # Wait for the timeline to show both turns (fully loaded) before picking the older one,
            # and for the page to show that turn before continuing from it.
            timeline = page.locator("#timeline .cp")
            await expect(timeline).to_have_count(2)
            await expect(timeline.nth(1)).to_contain_text("latest")
            # One click: the timeline updates its items in place while the history and the
            # question labels arrive, so the button is never replaced under the pointer.
            await timeline.nth(0).get_by_role("button").click()
            await expect(page.locator("#snapshot-bar")).to_be_visible()
            await expect(page.locator("#branch-chip")).to_have_text("Viewing turn 1 · branch 1 of 1")
            await send(page, "What was their email?")
            await wait_idle(page)
            await expect(page.locator("#timeline .cp")).to_have_count(3)
            await expect(page.locator("#branch-chip")).to_have_text("Branch 2 of 2")
            await page.locator("details.step").nth(1).locator("summary").click()
            await page.mouse.move(0, 0)
            await shot(page, artifacts / "readme-chat.png")
        finally:
            await context.close()

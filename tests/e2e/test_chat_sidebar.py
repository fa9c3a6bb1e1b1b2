"""The chat page's thread list in a real browser: rename and delete, loading more on scroll,
and each Databricks user seeing only their own threads."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.conftest import make_settings, real_server, unique
from tests.e2e.chat_helpers import (
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

pytestmark = pytest.mark.slow


async def test_rename_and_delete_a_thread(page: Page, server: str, artifacts: Path) -> None:
    title = f"Doomed {unique()}"
    thread_id = await make_thread(server, title, QUESTION)
    await page.goto(server)
    await open_from_sidebar(page, title)
    await expect(page.locator("#thread-title")).to_have_text(title)

    # Rename from the header, by keyboard.
    await page.get_by_role("button", name="Rename this thread").click()
    renamed = f"Renamed {unique()}"
    field = page.get_by_label("Title", exact=True)
    await expect(field).to_be_focused()
    await field.fill(renamed)
    await field.press("Enter")
    await expect(page.locator("#thread-title")).to_have_text(renamed)
    item = thread_item(page, renamed)
    await expect(item).to_have_count(1)
    assert (await get_json(server, f"/threads/{thread_id}"))["title"] == renamed

    # Delete asks first; Cancel keeps the thread.
    await item.get_by_role("button", name=f"Delete “{renamed}”").click()
    dialog = page.get_by_role("dialog", name="Delete thread?")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text(renamed)
    await shot(page, artifacts / "07-delete-confirm.png")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()
    await expect(item).to_have_count(1)

    await item.get_by_role("button", name=f"Delete “{renamed}”").click()
    await dialog.get_by_role("button", name="Delete").click()
    await expect(item).to_have_count(0)
    await expect(page.locator("#thread-title")).to_have_text("New thread")
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        assert (await http.get(f"/threads/{thread_id}")).status_code == 404


async def test_more_threads_load_on_scroll(page: Page, server: str) -> None:
    prefix = f"Many {unique()}"
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        for i in range(35):
            response = await http.post("/threads", json={"title": f"{prefix} #{i:02d}"})
            assert response.status_code == 201
    await page.goto(server)
    newest, oldest = f"{prefix} #34", f"{prefix} #00"
    await expect(thread_item(page, newest)).to_have_count(1)
    await expect(page.locator(".thread-item")).to_have_count(30)
    await expect(thread_item(page, oldest)).to_have_count(0)
    await page.locator("#thread-scroll").evaluate("box => box.scrollTo(0, box.scrollHeight)")
    await expect(thread_item(page, oldest)).to_have_count(1)
    titles = await page.locator(".thread-item .thread-title").all_text_contents()
    mine = [t for t in titles if t.startswith(prefix)]
    assert mine == [f"{prefix} #{i:02d}" for i in range(34, -1, -1)]  # newest first


async def test_each_databricks_user_sees_only_their_threads(
    browser: Browser, database_url: str, console: ConsoleWatch
) -> None:
    settings = make_settings(
        database_url,
        auth={"mode": "databricks"},
        model={"offline_token_delay_ms": 0},
    )
    async with real_server(settings) as base_url:
        alice, bob = f"alice-{unique()}@example.com", f"bob-{unique()}@example.com"
        title = f"Alice's {unique()}"
        await make_thread(base_url, title, headers={"X-Forwarded-Email": alice})
        pages: dict[str, Page] = {}
        contexts = []
        for user in (alice, bob):
            # Databricks Apps puts the header on every request; the page just fetches same-origin.
            context = await browser.new_context(extra_http_headers={"X-Forwarded-Email": user})
            contexts.append(context)
            pages[user] = await context.new_page()
            console.watch(pages[user])
            await pages[user].goto(base_url)
        try:
            await expect(thread_item(pages[alice], title)).to_have_count(1)
            await expect(pages[bob].locator("#thread-footer")).to_contain_text("No threads yet")
            await expect(thread_item(pages[bob], title)).to_have_count(0)
            # Bob's turn lands in Bob's list only.
            await send(pages[bob], QUESTION)
            await wait_idle(pages[bob])
            await expect(thread_item(pages[bob], QUESTION)).to_have_count(1)
            await pages[alice].reload()
            await expect(thread_item(pages[alice], title)).to_have_count(1)
            await expect(pages[alice].locator(".thread-item")).to_have_count(1)
        finally:
            for context in contexts:
                await context.close()

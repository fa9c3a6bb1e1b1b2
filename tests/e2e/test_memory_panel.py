"""The chat page's memory panel: what the agent remembers about the caller, listed, searched,
forgotten one by one and all at once, against the real service with long-term memory on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Dialog, Page, expect

from tests.conftest import make_settings, real_server
from tests.e2e.chat_helpers import send, shot, wait_idle

pytestmark = pytest.mark.slow


@pytest.fixture
async def memory_server(vector_database_url: str) -> AsyncIterator[str]:
    settings = make_settings(
        vector_database_url, memory={"enabled": True}, auth={"local_owner": "panel-user"}
    )
    async with real_server(settings) as base_url:
        yield base_url


async def _stored(server: str) -> list[str]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        found = await http.post("/store/items/search", json={"namespace_prefix": ["memories"], "limit": 100})
    assert found.status_code == 200, found.text
    return sorted(i["value"]["content"] for i in found.json()["items"])


async def test_see_search_and_forget_what_the_agent_remembers(
    page: Page, memory_server: str, artifacts: Path
) -> None:
    await page.goto(memory_server)
    await send(page, "Remember that I cover the London office")
    await wait_idle(page)
    await send(page, "Remember that the SOC escalation number is 555-0100")
    await wait_idle(page)

    # An answer drawn from a memory says so; one that is not does not.
    await send(page, "Which office do I cover?")
    await wait_idle(page)
    await expect(
        page.locator("#messages").get_by_text("From what you told me before: you cover the London office")
    ).to_be_visible()
    await expect(page.locator(".memory-used")).to_have_count(1)
    await expect(page.locator(".memory-used")).to_have_text("Answered from your memories")

    await page.get_by_role("button", name="Memories").click()
    memories = page.get_by_role("list", name="Memories")
    await expect(memories.get_by_role("listitem")).to_have_count(2)
    await expect(memories).to_contain_text("I cover the London office")

    # Search by meaning: the escalation question finds the number first.
    await page.get_by_label("Search memories").fill("who do I call to escalate an incident?")
    await page.get_by_role("button", name="Search", exact=True).click()
    await expect(memories.get_by_role("listitem").first).to_contain_text("SOC escalation number")
    await shot(page, artifacts / "memory-panel.png")

    await page.get_by_label("Search memories").fill("")
    await page.get_by_role("button", name="Search", exact=True).click()
    await page.get_by_role("button", name="Forget: I cover the London office").click()
    await expect(memories.get_by_role("listitem")).to_have_count(1)
    assert await _stored(memory_server) == ["the SOC escalation number is 555-0100"]

    # A memory saved during a turn shows up in the open panel when the turn ends.
    await send(page, "Remember that my desk is 4B")
    await wait_idle(page)
    await expect(memories).to_contain_text("my desk is 4B")

    async def accept(dialog: Dialog) -> None:
        await dialog.accept()

    page.once("dialog", accept)
    await page.get_by_role("button", name="Forget everything").click()
    await expect(page.locator("#memory-status")).to_have_text("Forgot 2 memories.")
    await expect(memories.get_by_role("listitem")).to_have_count(0)
    assert await _stored(memory_server) == []
    await page.keyboard.press("Escape")
    await expect(page.locator("#memory-panel")).to_be_hidden()

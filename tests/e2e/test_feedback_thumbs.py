"""The chat page's thumbs: a completed turn can be rated up or down, the rating is stored by the
service (`/threads/{id}/feedback`) and shown again after a reload."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.e2e.chat_helpers import get_json, send, shot, wait_idle

pytestmark = pytest.mark.slow

# Not the other tests' question: they find their thread in the sidebar by its title.
QUESTION = "Who committed the latest ransomware threat?"


async def test_rate_a_turn_with_the_thumbs_and_see_it_after_a_reload(
    page: Page, server: str, artifacts: Path
) -> None:
    await page.goto(server)
    await send(page, QUESTION)
    await wait_idle(page)
    good = page.get_by_role("button", name="Good answer")
    bad = page.get_by_role("button", name="Bad answer")
    await expect(good).to_have_count(1)
    await expect(good).to_have_attribute("aria-pressed", "false")

    await good.click()
    await expect(good).to_have_attribute("aria-pressed", "true")
    await expect(bad).to_have_attribute("aria-pressed", "false")
    thread_id = (await page.locator("#thread-id").text_content()) or ""
    [stored] = (await get_json(server, f"/threads/{thread_id}/feedback"))["feedback"]
    messages = (await get_json(server, f"/threads/{thread_id}/messages"))["messages"]
    assert stored["rating"] == "up" and stored["run_id"] == messages[-1]["run_id"]
    await shot(page, artifacts / "feedback-thumbs.png")

    # After a reload the page shows the rating given; changing it replaces it.
    await page.reload()
    await expect(page.get_by_role("button", name="Good answer")).to_have_attribute("aria-pressed", "true")
    await page.get_by_role("button", name="Bad answer").click()
    await expect(page.get_by_role("button", name="Bad answer")).to_have_attribute("aria-pressed", "true")
    await expect(page.get_by_role("button", name="Good answer")).to_have_attribute("aria-pressed", "false")
    [stored] = (await get_json(server, f"/threads/{thread_id}/feedback"))["feedback"]
    assert stored["rating"] == "down"

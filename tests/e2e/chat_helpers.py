"""What the chat page's browser tests share: the demo questions, threads made through the API,
and the page's states they wait for."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, expect

QUESTION = "Who committed the latest malware threat?"
FOLLOW_UP = "What was their IP address?"
UI_DIR = Path(__file__).resolve().parents[2] / "app" / "ui"


async def make_thread(base_url: str, title: str, *turns: str, headers: dict[str, str] | None = None) -> str:
    """A thread created through the API, with some turns already run."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30, headers=headers) as http:
        created = await http.post("/threads", json={"title": title})
        assert created.status_code == 201, created.text
        thread_id: str = created.json()["thread_id"]
        for content in turns:
            response = await http.post(f"/threads/{thread_id}/messages", json={"content": content})
            assert response.status_code == 200, response.text
    return thread_id


async def get_json(base_url: str, path: str) -> Any:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        response = await http.get(path)
        assert response.status_code == 200, response.text
        return response.json()


def thread_item(page: Page, title: str) -> Any:
    return page.locator(".thread-item").filter(has=page.get_by_text(title, exact=True))


async def open_from_sidebar(page: Page, title: str) -> None:
    # The button's accessible name is the title, then the last activity and the message count.
    await thread_item(page, title).get_by_role("button", name=re.compile("^" + re.escape(title))).click()


async def send(page: Page, text: str) -> None:
    box = page.get_by_label("Message", exact=True)
    await box.fill(text)
    await box.press("Enter")


async def shot(page: Page, path: Path) -> None:
    # Transitions finished, so a screenshot shows where things end up, not half-way there.
    await page.screenshot(path=path, animations="disabled")


async def no_sideways_scroll(page: Page) -> None:
    overflow = await page.evaluate(
        """() => [document.documentElement, ...document.querySelectorAll('.transcript, .thread-scroll')]
              .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.className || e.tagName)"""
    )
    assert overflow == [], f"these scroll sideways: {overflow}"


async def wait_idle(page: Page) -> None:
    """No turn runs: the Send button is back (it is Stop while an answer streams)."""
    await expect(page.get_by_role("button", name="Send", exact=True)).to_be_enabled(timeout=30_000)
    await expect(page.locator("#messages")).to_have_attribute("aria-busy", "false")

"""The approval card's Respond (an answer the model reads in place of the call's result), and the
run a decision started stopped like any turn (the Stop button or Escape): nothing of it is
saved, the call waits again and its card is back."""

from __future__ import annotations

import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.conftest import unique
from tests.e2e.chat_helpers import get_json, wait_idle
from tests.e2e.conftest import ConsoleWatch
from tests.e2e.test_chat_approvals import (  # noqa: F401 (the fixtures are imported with them)
    approving_server,
    card,
    messages,
    open_paused,
    slow_approving_server,
)

pytestmark = pytest.mark.slow

RESPOND_LABEL = "Your answer, read by the agent in place of the call's result"


async def statuses(base_url: str, thread_id: str) -> list[str]:
    return sorted(r["status"] for r in await get_json(base_url, f"/threads/{thread_id}/runs"))


async def approve_and_wait_for_the_answer(page: Page) -> None:
    await card(page).get_by_role("button", name="Approve").click()
    await expect(card(page)).to_be_hidden()
    await expect(page.locator(".answer.streaming")).to_be_visible(timeout=30_000)


async def test_stop_cancels_the_run_of_a_decision_and_the_card_comes_back(
    context: BrowserContext,
    slow_approving_server: str,  # noqa: F811 (the imported fixture)
    console: ConsoleWatch,
) -> None:
    server = slow_approving_server
    page, thread_id = await open_paused(context, console, server, f"Stop a decision {unique()}")
    (interrupt,) = (await get_json(server, f"/threads/{thread_id}"))["interrupts"]
    box = page.get_by_label("Message", exact=True)

    await approve_and_wait_for_the_answer(page)
    await page.get_by_role("button", name="Stop", exact=True).click()
    # Nothing was saved: the call waits again, its card back and focused for the next decision.
    await expect(card(page)).to_be_visible()
    await expect(card(page).get_by_role("button", name="Approve")).to_be_focused()
    toast = page.locator("#toast")
    await expect(toast).to_contain_text("waits for your decision again")
    await expect(toast).not_to_contain_text("back in the box")  # there was no question
    await expect(box).to_have_value("")
    await expect(page.locator(".answer.streaming")).to_have_count(0)
    await wait_idle(page)
    thread = await get_json(server, f"/threads/{thread_id}")
    assert thread["status"] == "interrupted"
    assert [i["id"] for i in thread["interrupts"]] == [interrupt["id"]]
    assert await statuses(server, thread_id) == ["interrupted", "success"]

    # Escape does the same from the keyboard.
    await approve_and_wait_for_the_answer(page)
    await page.keyboard.press("Escape")
    await expect(card(page)).to_be_visible()
    await wait_idle(page)
    assert await statuses(server, thread_id) == ["interrupted", "interrupted", "success"]
    assert (await get_json(server, f"/threads/{thread_id}"))["status"] == "interrupted"

    # Decided again, the resume runs to its end.
    await card(page).get_by_role("button", name="Reject").click()
    await page.get_by_role("button", name="Reject the call").click()
    await expect(card(page)).to_be_hidden()
    await wait_idle(page)
    await expect(page.locator(".answer").last).to_contain_text("not approve")
    assert (await get_json(server, f"/threads/{thread_id}"))["status"] == "idle"


async def test_respond_from_the_card_answers_in_the_tools_place(
    context: BrowserContext,
    approving_server: str,  # noqa: F811 (the imported fixture)
    console: ConsoleWatch,
) -> None:
    server = approving_server
    page, thread_id = await open_paused(context, console, server, f"Respond {unique()}")
    runs_before = len(await get_json(server, f"/threads/{thread_id}/runs"))
    respond = card(page).get_by_role("button", name="Respond")
    await respond.click()
    field = page.get_by_label(RESPOND_LABEL)
    await expect(field).to_be_focused()
    # An empty answer is not sent: said next to the field.
    await field.fill("   ")
    await page.get_by_role("button", name="Send this answer").click()
    await expect(field).to_have_attribute("aria-invalid", "true")
    await expect(card(page).locator(".field-error")).to_contain_text("Write an answer first")
    await expect(field).to_be_focused()
    assert len(await get_json(server, f"/threads/{thread_id}/runs")) == runs_before
    # Escape puts the buttons back.
    await field.press("Escape")
    await expect(respond).to_be_focused()

    # Keyboard only: Enter opens the box, Tab reaches the send button.
    await page.keyboard.press("Enter")
    await expect(field).to_be_focused()
    await page.keyboard.type("It is the red team.")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Send this answer")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(card(page)).to_be_hidden()
    await wait_idle(page)
    stored = await messages(server, thread_id)
    assert stored[-2]["role"] == "tool" and stored[-2]["content"] == "It is the red team."
    assert "red team" in stored[-1]["content"]
    await expect(page.locator(".answer").last).to_have_text(stored[-1]["content"])
    await expect(page.locator(".approval")).to_have_count(0)
    assert (await get_json(server, f"/threads/{thread_id}"))["status"] == "idle"

"""The chat page with tool approvals (TOOL_APPROVAL=get_user_info): the paused turn's card with
Approve, Edit and Reject, live and after a reload or on another device, the sidebar's "Waiting
for approval" marker, and a message typed while the thread waits kept in the box and explained.
A hosted graph's own interrupt() is answered from its card too."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from playwright.async_api import Browser, BrowserContext, Locator, Page, Route, expect

from app.api.protocol import PREFIX

# The hosted graph's server: a fixture, shared with the API tests of a graph's own interrupt().
from tests.api.test_hosted_interrupts import served  # noqa: F401
from tests.conftest import latest_malware, make_settings, real_server, unique, user_input
from tests.e2e.chat_helpers import QUESTION, get_json, send, shot, thread_item, wait_idle
from tests.e2e.conftest import TOKEN_DELAY_MS, ConsoleWatch
from tests.e2e.test_chat_runs import new_page

pytestmark = pytest.mark.slow

APPROVAL = {"approval": ["get_user_info"]}


@pytest.fixture(scope="module")
async def approving_server(database_url: str) -> AsyncIterator[str]:
    settings = make_settings(database_url, tools=APPROVAL, model={"offline_token_delay_ms": TOKEN_DELAY_MS})
    async with real_server(settings) as base_url:
        yield base_url


def card(page: Page) -> Locator:
    return page.get_by_role("region", name="Approval needed: get_user_info")


async def paused_thread(base_url: str, title: str) -> str:
    """A thread whose first turn paused before get_user_info (asked through the API)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        thread_id: str = (await http.post("/threads", json={"title": title})).json()["thread_id"]
    await pause(base_url, thread_id)
    return thread_id


async def pause(base_url: str, thread_id: str) -> None:
    """Ask the demo question on the thread through the API: the turn pauses before get_user_info."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        answer = await http.post(f"/threads/{thread_id}/messages", json={"content": QUESTION})
        assert answer.status_code == 200 and answer.json()["interrupts"], answer.text


async def open_paused(
    context: BrowserContext, console: ConsoleWatch, base_url: str, title: str
) -> tuple[Page, str]:
    """A page on a thread paused through the API, its card shown. The page and the thread id."""
    thread_id = await paused_thread(base_url, title)
    page = await new_page(context, console)
    await page.goto(f"{base_url}/#thread={thread_id}")
    await expect(card(page)).to_be_visible()
    return page, thread_id


async def ask_on_page(page: Page, base_url: str) -> tuple[str, str]:
    """Ask the demo question in a new thread of the page; it pauses. Its title and thread id."""
    await page.goto(base_url)
    question = f"Case {unique()}: who committed the latest malware threat?"
    await send(page, question)
    await expect(card(page)).to_be_visible(timeout=30_000)
    await wait_idle(page)
    thread_id = (await page.locator("#thread-id").text_content()) or ""
    assert thread_id
    return question, thread_id


async def messages(base_url: str, thread_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await get_json(base_url, f"/threads/{thread_id}/messages"))["messages"]
    return found


async def test_approve_from_the_card_runs_the_call_and_the_answer_names_the_user(
    context: BrowserContext,
    approving_server: str,
    console: ConsoleWatch,
    artifacts: Path,
    database_url: str,
) -> None:
    page = await new_page(context, console)
    _, thread_id = await ask_on_page(page, approving_server)
    ip = latest_malware(database_url)[0]
    box = card(page)
    # What the agent wants to do, readable: the tool, its arguments, why it needs a yes.
    await expect(box).to_contain_text("source_ip")
    await expect(box).to_contain_text(ip)
    await expect(box).to_contain_text("needs approval")
    await expect(page.locator('details.step[data-state="waiting"]')).to_contain_text("waiting for approval")
    await expect(page.get_by_label("Message", exact=True)).to_have_attribute(
        "placeholder", re.compile("decision")
    )
    thread = await get_json(approving_server, f"/threads/{thread_id}")
    assert thread["status"] == "interrupted"
    # The sidebar says the thread waits, in words.
    title = (await page.locator("#thread-title").text_content()) or ""
    await expect(thread_item(page, title).locator(".waiting-mark")).to_have_text("Waiting for approval")
    await shot(page, artifacts / "approval-card.png")

    # Keyboard: focus the Approve button and press Enter.
    await box.get_by_role("button", name="Approve").focus()
    await page.keyboard.press("Enter")
    await expect(box).to_be_hidden()
    await wait_idle(page)
    stored = await messages(approving_server, thread_id)
    assert [m["role"] for m in stored] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert "committed by" in stored[-1]["content"]
    await expect(page.locator(".answer").last).to_have_text(stored[-1]["content"])
    await expect(page.locator(".answer").last).to_contain_text("committed by")
    # One turn on screen, both steps done; no card, no marker.
    await expect(page.locator("article.turn")).to_have_count(1)
    await expect(page.locator('details.step[data-state="done"]')).to_have_count(2)
    await expect(page.locator(".approval")).to_have_count(0)
    await expect(thread_item(page, title).locator(".waiting-mark")).to_have_count(0)
    assert (await get_json(approving_server, f"/threads/{thread_id}"))["status"] == "idle"


async def test_reject_with_a_reason_the_answer_says_the_lookup_was_not_approved(
    context: BrowserContext, approving_server: str, console: ConsoleWatch
) -> None:
    page = await new_page(context, console)
    _, thread_id = await ask_on_page(page, approving_server)
    await card(page).get_by_role("button", name="Reject").click()
    reason = page.get_by_label("Reason (optional)")
    await expect(reason).to_be_focused()
    # Escape puts the buttons back; Reject again, with a reason this time.
    await reason.press("Escape")
    await expect(card(page).get_by_role("button", name="Reject")).to_be_focused()
    await card(page).get_by_role("button", name="Reject").click()
    await page.get_by_label("Reason (optional)").fill("personal data, not needed")
    await page.get_by_role("button", name="Reject the call").click()
    await expect(card(page)).to_be_hidden()
    await wait_idle(page)
    await expect(page.locator(".answer").last).to_contain_text("not approve")
    stored = await messages(approving_server, thread_id)
    assert "personal data" in stored[-2]["content"] and "did not approve" in stored[-2]["content"]
    assert "committed by" not in stored[-1]["content"]


async def test_edit_the_arguments_checked_before_they_are_sent(
    context: BrowserContext, approving_server: str, console: ConsoleWatch
) -> None:
    page = await new_page(context, console)
    _, thread_id = await ask_on_page(page, approving_server)
    runs_before = len(await get_json(approving_server, f"/threads/{thread_id}/runs"))
    await card(page).get_by_role("button", name="Edit").click()
    field = page.get_by_label("Arguments of get_user_info (JSON)")
    await expect(field).to_be_focused()
    await expect(field).to_have_value(re.compile('"source_ip"'))
    # Not JSON, then not an object: said next to the field, nothing sent.
    await field.fill('{"source_ip": ')
    await page.get_by_role("button", name="Run with these arguments").click()
    await expect(field).to_have_attribute("aria-invalid", "true")
    await expect(page.locator(".approval .field-error")).to_contain_text("not valid JSON")
    await field.fill('["10.0.0.1"]')
    await page.get_by_role("button", name="Run with these arguments").click()
    await expect(page.locator(".approval .field-error")).to_contain_text("JSON object")
    assert len(await get_json(approving_server, f"/threads/{thread_id}/runs")) == runs_before

    await field.fill('{"source_ip": "10.0.0.1"}')
    await page.get_by_role("button", name="Run with these arguments").click()
    await expect(card(page)).to_be_hidden()
    await wait_idle(page)
    stored = await messages(approving_server, thread_id)
    assert stored[-2]["content"].startswith("Note: a reviewer changed this call's arguments")
    assert '"10.0.0.1"' in stored[-2]["content"]
    await expect(page.locator("details.step").last).to_contain_text("10.0.0.1")


async def test_the_card_after_a_reload_and_on_another_device(
    browser: Browser, context: BrowserContext, approving_server: str, console: ConsoleWatch
) -> None:
    title = f"Approve elsewhere {unique()}"
    first, thread_id = await open_paused(context, console, approving_server, title)
    await first.reload()
    await expect(card(first)).to_be_visible()
    await expect(thread_item(first, title).locator(".waiting-mark")).to_be_visible()

    other = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        second = await new_page(other, console)
        await second.goto(f"{approving_server}/#thread={thread_id}")
        await expect(card(second)).to_be_visible()
        await expect(thread_item(second, title).locator(".waiting-mark")).to_be_visible()
        await card(second).get_by_role("button", name="Approve").click()
        await wait_idle(second)
        await expect(second.locator(".answer").last).to_contain_text("committed by")
    finally:
        await other.close()
    # The first device sees the decision made elsewhere: no card, no marker, the answer.
    await expect(card(first)).to_be_hidden(timeout=15_000)
    await expect(first.locator(".answer").last).to_contain_text("committed by", timeout=15_000)
    await expect(thread_item(first, title).locator(".waiting-mark")).to_have_count(0)


async def test_a_message_to_a_waiting_thread_stays_in_the_box_and_is_explained(
    context: BrowserContext, approving_server: str, console: ConsoleWatch
) -> None:
    title = f"Waiting {unique()}"
    page, thread_id = await open_paused(context, console, approving_server, title)
    follow_up = "What was their IP address?"
    await send(page, follow_up)
    box = page.get_by_label("Message", exact=True)
    await expect(box).to_have_value(follow_up)
    await expect(page.locator("#banner")).to_contain_text("waits for your decision")
    await expect(card(page)).to_contain_text("Your message was not sent")
    await expect(card(page).get_by_role("button", name="Approve")).to_be_focused()
    assert len(await get_json(approving_server, f"/threads/{thread_id}/runs")) == 1
    await expect(page.locator(".msg-user")).to_have_count(1)

    # Sent anyway: the pending call is left behind and the message is an ordinary turn.
    await card(page).get_by_role("button", name="Send my message anyway").click()
    await wait_idle(page)
    await expect(box).to_have_value("")
    await expect(page.locator(".approval")).to_have_count(0)
    await expect(page.locator(".msg-user .bubble").last).to_have_text(follow_up)
    thread = await get_json(approving_server, f"/threads/{thread_id}")
    assert thread["status"] == "idle" and thread["interrupts"] == []
    await expect(thread_item(page, title).locator(".waiting-mark")).to_have_count(0)


async def test_a_message_refused_because_the_thread_paused_elsewhere_is_kept(
    context: BrowserContext, approving_server: str, console: ConsoleWatch
) -> None:
    """The page did not know yet (another device paused the thread a moment ago): the service's
    409 thread_interrupted keeps the text and brings the card."""
    console.allow(r"409 \(Conflict\)")
    page = await new_page(context, console)
    title = f"Paused elsewhere {unique()}"
    async with httpx.AsyncClient(base_url=approving_server, timeout=30) as http:
        thread_id = (await http.post("/threads", json={"title": title})).json()["thread_id"]
    await page.goto(f"{approving_server}/#thread={thread_id}")
    await expect(page.locator("#thread-title")).to_have_text(title)
    # Pause it behind the page's back; the page's watch would notice within seconds, so the
    # text is sent at once.
    await pause(approving_server, thread_id)
    follow_up = "What was their IP address?"
    await send(page, follow_up)
    await expect(card(page)).to_be_visible()
    await expect(page.get_by_label("Message", exact=True)).to_have_value(follow_up)
    await expect(page.locator("#banner")).to_contain_text("waits for your decision")


async def test_a_graphs_own_interrupt_is_answered_from_the_card(
    context: BrowserContext,
    served: str,  # noqa: F811 (the imported fixture)
    console: ConsoleWatch,
) -> None:
    sdk = get_client(url=served + PREFIX)
    try:
        thread_id = (await sdk.threads.create())["thread_id"]
        await sdk.runs.wait(thread_id, "reviewed", input=user_input("the printer is fixed"))
    finally:
        await sdk.aclose()
    page = await new_page(context, console)
    await page.goto(f"{served}/#thread={thread_id}")
    waiting = page.get_by_role("region", name="The agent waits for your input")
    await expect(waiting).to_contain_text("Send this reply?")
    await waiting.get_by_role("button", name="Answer").click()
    field = page.get_by_label("Your answer (JSON, or plain text)")
    await page.get_by_role("button", name="Send the answer").click()
    await expect(field).to_have_attribute("aria-invalid", "true")
    await field.fill("wait until Monday")  # not JSON: sent as the text
    await page.get_by_role("button", name="Send the answer").click()
    await expect(waiting).to_be_hidden()
    await wait_idle(page)
    await expect(page.locator(".answer").last).to_have_text("Not sent: wait until Monday")
    assert (await get_json(served, f"/threads/{thread_id}"))["status"] == "idle"


@pytest.fixture
async def slow_approving_server(database_url: str) -> AsyncIterator[str]:
    settings = make_settings(database_url, tools=APPROVAL, model={"offline_token_delay_ms": 150})
    async with real_server(settings) as base_url:
        yield base_url


async def test_a_reload_while_the_approved_call_runs_follows_it(
    context: BrowserContext, slow_approving_server: str, console: ConsoleWatch, database_url: str
) -> None:
    page, thread_id = await open_paused(context, console, slow_approving_server, f"Reload {unique()}")
    await card(page).get_by_role("button", name="Approve").click()
    await expect(page.locator(".answer.streaming")).to_be_visible(timeout=30_000)
    await page.reload()
    # The resumed run is followed again, its answer streaming: the approved call shows once (not
    # once stored and once live), done, with its arguments.
    while_streaming = await page.wait_for_function(
        """() => document.querySelector('.answer.streaming') &&
              [...document.querySelectorAll('details.step')]
                .filter(step => step.querySelector('.step-name').textContent === 'get_user_info')
                .map(step => [step.dataset.state, step.querySelector('.step-args').textContent])"""
    )
    assert await while_streaming.json_value() == [["done", f'source_ip: "{latest_malware(database_url)[0]}"']]
    user_info = page.locator("details.step").filter(has_text="get_user_info")
    await expect(card(page)).to_have_count(0)
    await wait_idle(page)
    stored = await messages(slow_approving_server, thread_id)
    await expect(page.locator(".answer").last).to_have_text(stored[-1]["content"])
    await expect(user_info).to_have_count(1)


async def test_a_call_decided_elsewhere_meanwhile_is_not_decided_twice(
    context: BrowserContext, approving_server: str, console: ConsoleWatch
) -> None:
    """Approve on a page that has not yet seen the decision made elsewhere: the service's 409
    not_interrupted is no error to the user; the page says so and shows the thread as it is."""
    console.allow(r"409 \(Conflict\)")
    page, thread_id = await open_paused(context, console, approving_server, f"Twice {unique()}")
    # The page's own look at the thread still finds it waiting (as it was a moment ago) ...
    stale = await get_json(approving_server, f"/threads/{thread_id}")
    held = {"on": True}

    async def as_it_was(route: Route) -> None:
        if held["on"] and route.request.method == "GET":
            await route.fulfill(json=stale)
        else:
            await route.continue_()

    await page.route(f"**/threads/{thread_id}", as_it_was)
    # ... while another device approves it.
    async with httpx.AsyncClient(base_url=approving_server, timeout=30) as http:
        done = await http.post(f"/threads/{thread_id}/messages", json={"resume": {"decision": "approve"}})
        assert done.status_code == 200, done.text
    await card(page).get_by_role("button", name="Approve").click()
    await expect(page.locator("#toast")).to_contain_text("already decided")
    # Once the page can see the thread as it is, it shows the decision made elsewhere.
    held["on"] = False
    await expect(card(page)).to_be_hidden()
    await expect(page.locator(".answer").last).to_contain_text("committed by")
    runs = await get_json(approving_server, f"/threads/{thread_id}/runs")
    assert len(runs) == 2  # the question and the one resume: the page's Approve ran nothing

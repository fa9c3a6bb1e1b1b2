"""The chat page's actions on messages (copy, edit and resend, regenerate, the `< 1/2 >` version
switcher), the history as a tree, the sidebar's titles, groups and search, and the smaller
comforts: jump to latest, long messages folded, the new-thread shortcut, a collapsible sidebar."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, Page, expect

from tests.conftest import make_settings, real_server, unique
from tests.e2e.chat_helpers import FOLLOW_UP, QUESTION, get_json, make_thread, send, wait_idle
from tests.e2e.conftest import ConsoleWatch

pytestmark = pytest.mark.slow

PHISHING = "Who committed the latest phishing threat?"


async def clipboard(page: Page) -> str:
    text = await page.evaluate("navigator.clipboard.readText()")
    assert isinstance(text, str)
    return text


async def test_copy_regenerate_edit_and_switch_between_versions(page: Page, server: str) -> None:
    title = f"Actions {unique()}"
    thread_id = await make_thread(server, title, QUESTION, FOLLOW_UP)
    await page.goto(f"{server}/#thread={thread_id}")
    questions = page.locator("article.msg-user")
    turns = page.locator("article.turn")
    await expect(turns).to_have_count(2)
    # Every message is an article named by its speaker.
    await expect(page.get_by_role("article", name="You")).to_have_count(2)
    await expect(page.get_by_role("article", name="Assistant")).to_have_count(2)

    await turns.last.get_by_role("button", name="Copy the answer").click()
    assert await clipboard(page) == await turns.last.locator(".answer").text_content()
    await questions.first.get_by_role("button", name="Copy the question").click()
    assert await clipboard(page) == QUESTION

    # Regenerate the last answer: the same question again from the checkpoint before it.
    await turns.last.get_by_role("button", name="Regenerate the answer").click()
    await wait_idle(page)
    await expect(questions.nth(1).locator(".switcher-pos")).to_have_text("2/2")
    await expect(questions.first.locator(".switcher")).to_have_count(0)
    await expect(page.locator("#branch-chip")).to_have_text("Branch 2 of 2")
    history = (await get_json(server, f"/threads/{thread_id}/history"))["checkpoints"]
    turn_one = next(c for c in history if c["parent_checkpoint_id"] is None)["checkpoint_id"]
    assert sorted(c["parent_checkpoint_id"] or "" for c in history) == ["", turn_one, turn_one]

    # Version 1 is the branch as it was; version 2 is back at the latest.
    await questions.nth(1).get_by_role("button", name="Previous version").click()
    await expect(questions.nth(1).locator(".switcher-pos")).to_have_text("1/2")
    await expect(page.locator("#snapshot-bar")).to_contain_text("Send a message to continue this branch.")
    await questions.nth(1).get_by_role("button", name="Next version").click()
    await expect(page.locator("#snapshot-bar")).to_be_hidden()
    await expect(questions.nth(1).locator(".switcher-pos")).to_have_text("2/2")

    # Edit the first question: it is sent again from the thread's start, as a new branch.
    await questions.first.get_by_role("button", name="Edit the question").click()
    field = page.get_by_role("textbox", name="Edit the question")
    await expect(field).to_be_focused()
    await field.fill(PHISHING)
    await field.press("Enter")
    await wait_idle(page)
    await expect(page.locator(".msg-user .bubble")).to_have_text([PHISHING])
    await expect(questions.first.locator(".switcher-pos")).to_have_text("2/2")
    await expect(page.locator("#branch-chip")).to_have_text("Branch 3 of 3")
    stored = (await get_json(server, f"/threads/{thread_id}/messages"))["messages"]
    assert [m["content"] for m in stored if m["role"] == "user"] == [PHISHING]

    # Back to version 1 of the first question: its branch where it ends now (the regenerated
    # answer), and a message there continues that branch instead of starting a fourth.
    await questions.first.get_by_role("button", name="Previous version").click()
    await expect(page.locator(".msg-user .bubble")).to_have_text([QUESTION, FOLLOW_UP])
    await expect(page.locator("#snapshot-bar")).to_contain_text("continue this branch")
    await send(page, "What was their email?")
    await wait_idle(page)
    await expect(page.locator(".msg-user .bubble")).to_have_text(
        [QUESTION, FOLLOW_UP, "What was their email?"]
    )
    await expect(page.locator("#branch-chip")).to_have_text("Branch 2 of 3")


async def test_history_is_a_tree_and_a_tip_continues_its_branch(page: Page, server: str) -> None:
    title = f"Tree {unique()}"
    thread_id = await make_thread(server, title, QUESTION, FOLLOW_UP)
    await page.goto(f"{server}/#thread={thread_id}")
    await page.get_by_role("button", name="History").click()
    timeline = page.locator("#timeline .cp")
    await expect(timeline).to_have_count(2)
    await timeline.nth(0).get_by_role("button").click()
    await expect(page.locator("#snapshot-bar")).to_contain_text("on a new branch")
    await send(page, "What was their email?")
    await wait_idle(page)
    await expect(timeline).to_have_count(3)
    # Branch 1's tip: the snapshot offers to continue it, and doing so keeps two branches.
    await timeline.filter(has_text=FOLLOW_UP).get_by_role("button").click()
    await expect(page.locator("#snapshot-bar")).to_contain_text("Send a message to continue this branch.")
    await expect(page.get_by_label("Message", exact=True)).to_have_attribute(
        "placeholder", re.compile("Continue branch 1")
    )
    await send(page, "What was their IP address again?")
    await wait_idle(page)
    await expect(timeline).to_have_count(4)
    await expect(page.locator("#branch-chip")).to_have_text("Branch 1 of 2")
    # Read top down: branch 1's three turns, then branch 2 indented under them.
    labels = [re.sub(r"\s+", " ", t) for t in await timeline.locator(".cp-sub").all_text_contents()]
    assert [label.split(" · ")[0] for label in labels] == ["Branch 1", "Branch 1", "Branch 1", "Branch 2"]
    assert "forked from turn 1" in labels[3]
    indents = await timeline.evaluate_all(
        "items => items.map(li => parseFloat(getComputedStyle(li).paddingLeft))"
    )
    assert indents[0] == indents[1] == indents[2] < indents[3], indents


async def test_threads_are_titled_grouped_and_searched(page: Page, server: str) -> None:
    await page.goto(server)
    # After its first turn the page asks the service for a title (the model's, offline the question's).
    async with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/title")):
        await send(page, "Hi! Can you please tell me who is behind the latest ransomware threat?")
        await wait_idle(page)
    title = "Who is behind the latest ransomware threat?"
    await expect(page.locator("#thread-title")).to_have_text(title)
    current = page.locator(".thread-item.current")
    await expect(current.locator(".thread-title")).to_have_text(title)
    # Counted in turns (a question and its answer), not in messages with tool steps; today's.
    await expect(current).to_contain_text("1 turn")
    today = page.locator(".thread-group").filter(has=page.get_by_role("heading", name="Today"))
    await expect(today.locator(".thread-item.current")).to_have_count(1)
    await expect(current.locator(".thread-sub")).to_have_css("white-space", "nowrap")

    # The search asks the service, so it finds threads this page has not loaded.
    needle = unique("Needle")
    await make_thread(server, f"Incident {needle} on the VPN")
    search = page.get_by_label("Search thread titles")
    await search.fill(needle.lower())
    await expect(page.locator(".thread-item")).to_have_count(1)
    await expect(page.locator(".thread-item")).to_contain_text(f"Incident {needle} on the VPN")
    await search.fill("")
    await expect(page.locator(".thread-item.current")).to_have_count(1)


async def test_small_comforts(page: Page, server: str) -> None:
    long_question = "Who committed the latest malware threat? " + "Here is the log line. " * 60
    title = f"Long {unique()}"
    thread_id = await make_thread(server, title, *([QUESTION] * 6), long_question)
    await page.goto(f"{server}/#thread={thread_id}")
    # A long pasted message is folded, and unfolds on demand.
    bubble = page.locator(".msg-user .bubble").last
    await expect(bubble).to_have_class(re.compile("collapsed"))
    more = page.get_by_role("button", name="Show more")
    await more.click()
    await expect(bubble).not_to_have_class(re.compile("collapsed"))
    await expect(page.get_by_role("button", name="Show less")).to_have_attribute("aria-expanded", "true")

    # Scrolled up during an answer: a button brings the reader back to the latest.
    await send(page, FOLLOW_UP)
    await page.locator("#transcript").evaluate("box => box.scrollTo(0, 0)")
    jump = page.get_by_role("button", name="Jump to latest")
    await expect(jump).to_be_visible()
    await jump.click()
    await expect(jump).to_be_hidden()
    await wait_idle(page)

    # A toast never covers the message box.
    await page.locator("article.turn").last.get_by_role("button", name="Copy the answer").click()
    toast = page.locator("#toast")
    await expect(toast).to_be_visible()
    toast_box, composer_box = await toast.bounding_box(), await page.locator("#composer").bounding_box()
    assert toast_box and composer_box and toast_box["y"] + toast_box["height"] < composer_box["y"]

    # Ctrl+Shift+O starts a new thread; the sidebar folds away on a wide screen and comes back.
    await page.keyboard.press("Control+Shift+O")
    await expect(page.locator("#thread-title")).to_have_text("New thread")
    await page.get_by_role("button", name="Hide the thread list").click()
    await expect(page.locator("#sidebar")).to_be_hidden()
    await page.reload()
    await expect(page.locator("#sidebar")).to_be_hidden()
    await page.get_by_role("button", name="Show the thread list").click()
    await expect(page.locator("#sidebar")).to_be_visible()


async def test_a_refused_first_question_leaves_no_empty_thread_and_untitled_is_one_name(
    browser: Browser, database_url: str, console: ConsoleWatch
) -> None:
    console.allow(r"422 \(Unprocessable")  # the browser logs the refusal the page explains
    settings = make_settings(database_url, limits={"max_content_chars": 200})
    async with real_server(settings) as base_url:
        untitled = await make_thread(base_url, "")
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        try:
            page = await context.new_page()
            console.watch(page)
            await page.goto(base_url)
            marker = unique("Why")
            too_long = f"{marker}? " + "x" * 300
            await send(page, too_long)
            await expect(page.locator("#banner")).to_contain_text("Could not send the message")
            # The thread made for it is gone again; the question is still in the box.
            await expect(page.get_by_label("Message", exact=True)).to_have_value(too_long)
            await expect(page.locator("#thread-title")).to_have_text("New thread")
            await expect(page.locator(".thread-item").filter(has_text=marker)).to_have_count(0)
            assert (await get_json(base_url, f"/threads?q={marker}"))["threads"] == []

            # A thread without a title has the same name in the list and in the header.
            item = page.locator(f'.thread-item[data-id="{untitled}"]')
            await expect(item.locator(".thread-title")).to_have_text("Untitled thread")
            await item.get_by_role("button", name=re.compile("^Untitled thread")).click()
            await expect(page.locator("#thread-title")).to_have_text("Untitled thread")
        finally:
            await context.close()

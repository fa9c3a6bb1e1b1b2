"""What every fault test checks afterwards: each thread's transcript and history are whole.

A thread is consistent when its transcript is a sequence of whole turns (each run's messages
contiguous, opening with its user message and closing with the assistant's answer), its history
is one linear chain with one checkpoint per turn in the same order, its counters agree, and it is
not left busy. Against the client's record: every acknowledged (200) turn is there exactly once,
with the checkpoint its response named; a turn refused with 409 never ran, so it is absent.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx


def path_id(thread_id: str) -> str:
    """A thread id as a URL path segment. Dots are escaped too: a client would otherwise
    collapse an id of '.' or '..' as a dot segment of the path."""
    return quote(thread_id, safe="").replace(".", "%2E")


@dataclass
class ThreadLedger:
    """What the clients of one thread were told."""

    acknowledged: dict[str, tuple[str, str]] = field(default_factory=dict)  # run_id -> (content, checkpoint)
    refused: list[str] = field(default_factory=list)  # contents answered 409: never ran
    uncertain: list[str] = field(default_factory=list)  # contents answered 503 or cut off: at most once

    def record(self, content: str, response: httpx.Response) -> None:
        if response.status_code == 200:
            body = response.json()
            self.acknowledged[body["run_id"]] = (content, body["checkpoint_id"])
        elif response.status_code == 409:
            self.refused.append(content)
        else:
            self.uncertain.append(content)


async def _pages(client: httpx.AsyncClient, url: str, key: str, headers: dict[str, str]) -> list[Any]:
    items: list[Any] = []
    cursor: str | None = None
    for _ in range(1000):  # a bound, far above any thread these tests build
        params: dict[str, Any] = {"limit": 200}
        if cursor is not None:
            params["before"] = cursor
        response = await client.get(url, params=params, headers=headers)
        assert response.status_code == 200, (url, response.status_code, response.text)
        page = response.json()
        items.append(page[key])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    return items


async def read_transcript(
    client: httpx.AsyncClient, thread_id: str, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """The whole transcript, oldest first (pages come latest first, oldest first within each)."""
    pages = await _pages(client, f"/threads/{path_id(thread_id)}/messages", "messages", headers or {})
    return [message for page in reversed(pages) for message in page]


async def read_history(
    client: httpx.AsyncClient, thread_id: str, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every checkpoint of the thread, newest first."""
    pages = await _pages(client, f"/threads/{path_id(thread_id)}/history", "checkpoints", headers or {})
    return [checkpoint for page in pages for checkpoint in page]


def turns_of(transcript: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The transcript cut into runs, in order; a run whose messages are not contiguous fails."""
    turns: list[tuple[str, list[dict[str, Any]]]] = []
    for message in transcript:
        run_id = message["run_id"]
        assert run_id is not None, f"a transcript message without a run: {message}"
        if turns and turns[-1][0] == run_id:
            turns[-1][1].append(message)
        else:
            assert run_id not in {r for r, _ in turns}, f"the messages of run {run_id} are not contiguous"
            turns.append((run_id, [message]))
    return turns


async def assert_thread_consistent(
    client: httpx.AsyncClient,
    thread_id: str,
    ledger: ThreadLedger,
    *,
    headers: dict[str, str] | None = None,
) -> list[str]:
    """Check one thread against what its clients were told; returns its user contents in order."""
    thread_response = await client.get(f"/threads/{path_id(thread_id)}", headers=headers or {})
    if not ledger.acknowledged and thread_response.status_code == 404:
        return []  # never created: nothing was acknowledged, so nothing is missing
    assert thread_response.status_code == 200, thread_response.text
    thread = thread_response.json()
    transcript = await read_transcript(client, thread_id, headers)
    history = await read_history(client, thread_id, headers)

    turns = turns_of(transcript)
    for run_id, messages in turns:
        assert messages[0]["role"] == "user", f"run {run_id} does not open with its user message"
        assert messages[-1]["role"] == "assistant", f"run {run_id} does not end with an answer (half a turn)"
        assert [m["role"] for m in messages].count("user") == 1, f"run {run_id} has several user messages"
    contents = [messages[0]["content"] for _, messages in turns]

    # The history is one linear chain, one checkpoint per turn, in the transcript's order.
    chain = list(reversed(history))
    assert [c["run_id"] for c in chain] == [run_id for run_id, _ in turns], "history and transcript disagree"
    for parent, child in zip([None, *chain], chain, strict=False):
        assert child["parent_checkpoint_id"] == (parent["checkpoint_id"] if parent else None)
    # Checkpoint ids are time-ordered (uuid6): the chain is in the order the turns completed.
    assert [c["checkpoint_id"] for c in chain] == sorted(c["checkpoint_id"] for c in chain)
    assert thread["head_checkpoint_id"] == (chain[-1]["checkpoint_id"] if chain else None)
    assert thread["turn_count"] == len(turns) and thread["message_count"] == len(transcript)
    assert thread["status"] == "idle", f"thread {thread_id} was left busy"

    # Against the clients' record.
    checkpoint_of_run = {c["run_id"]: c["checkpoint_id"] for c in chain}
    for run_id, (content, checkpoint_id) in ledger.acknowledged.items():
        assert checkpoint_of_run.get(run_id) == checkpoint_id, f"acknowledged turn {content!r} is lost"
    counts = Counter(contents)
    for content, _ in ledger.acknowledged.values():
        assert counts[content] == 1, f"acknowledged {content!r} appears {counts[content]} times"
    for content in ledger.refused:
        assert counts[content] == 0, f"{content!r} was refused with 409 but ran"
    for content in ledger.uncertain:
        assert counts[content] <= 1, f"{content!r} ran {counts[content]} times"
    known = {c for c, _ in ledger.acknowledged.values()} | set(ledger.uncertain)
    assert set(contents) <= known, f"turns nobody sent or was told about: {set(contents) - known}"
    return contents

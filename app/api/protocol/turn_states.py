"""One checkpoint per turn, and still the intermediate state chat clients fork from.

The built-in agent saves one checkpoint per turn. LangGraph's clients (agent-chat-ui, `useStream`)
regenerate an answer by re-running from the *parent* of the state where the answer first
appeared, with no input: on LangGraph's server that parent is the state holding the question,
about to run the model. So the protocol shows, before each turn's checkpoint `C`, the state
`C~input` (the conversation before the turn plus its question, `next: ["agent"]`), and a run
from `C~input` forks from the turn's start with the turn's question again (or with the input it
is given: an edited question). Editing a question forks from the parent of `C~input`: the state
before the turn, which is the previous turn's checkpoint.
"""

from __future__ import annotations

from typing import Any

from app.api.protocol.shapes import checkpoint_ref, state_json, values_of
from app.errors import CheckpointNotFound
from app.memory.history import CheckpointRecord
from app.memory.runs import FROM_START
from app.memory.threads import ThreadRecord
from app.memory.transcript import StoredMessage
from app.services.threads import ThreadService

INPUT_SUFFIX = "~input"


def split(checkpoint_id: str) -> tuple[str, bool]:
    """The turn's checkpoint id, and whether its input state was meant."""
    if checkpoint_id.endswith(INPUT_SUFFIX):
        return checkpoint_id.removesuffix(INPUT_SUFFIX), True
    return checkpoint_id, False


def question_of(record: CheckpointRecord, conversation: list[StoredMessage]) -> list[StoredMessage]:
    """The turn's input: its first rows up to its first answer."""
    start = record.start_seq or 0
    question: list[StoredMessage] = []
    for message in conversation[start:]:
        if message.role not in ("user", "system"):
            break
        question.append(message)
    return question


def turn_state_json(
    thread_id: str, record: CheckpointRecord, conversation: list[StoredMessage]
) -> dict[str, Any]:
    """A turn's checkpoint; its parent is its input state (when the turn is known), or, for a
    regenerated answer, the input state of the turn it asked again (so the answers to one
    question are siblings, as clients draw branches)."""
    state = state_json(thread_id, record, values_of(conversation))
    if record.regenerates is not None:
        state["parent_checkpoint"] = checkpoint_ref(thread_id, record.regenerates + INPUT_SUFFIX)
    elif record.start_seq is not None:
        state["parent_checkpoint"] = checkpoint_ref(thread_id, record.checkpoint_id + INPUT_SUFFIX)
    return state


def input_state_json(
    thread_id: str, record: CheckpointRecord, conversation: list[StoredMessage]
) -> dict[str, Any]:
    """The state before the turn's model ran: the earlier conversation and the question."""
    start = record.start_seq or 0
    state = state_json(thread_id, record, values_of(conversation[:start] + question_of(record, conversation)))
    state.update(
        next=["agent"],
        checkpoint=checkpoint_ref(thread_id, record.checkpoint_id + INPUT_SUFFIX),
        metadata={"step": -1, "source": "input", "run_id": record.run_id},
    )
    return state


def turn_states(
    thread_id: str, record: CheckpointRecord, conversation: list[StoredMessage]
) -> list[dict[str, Any]]:
    """A turn in the history, newest first: its checkpoint, then its input state."""
    states = [turn_state_json(thread_id, record, conversation)]
    if record.start_seq is not None and record.regenerates is None:
        states.append(input_state_json(thread_id, record, conversation))
    return states


async def fork_point(
    threads: ThreadService, thread: ThreadRecord, checkpoint_id: str
) -> tuple[str, list[StoredMessage]]:
    """Where a run from `checkpoint_id` starts, and (for an input state) the turn's question."""
    turn_id, is_input = split(checkpoint_id)
    if not is_input:
        return checkpoint_id, []
    record, conversation = await threads.checkpoint_state(thread, turn_id)
    if record.start_seq is None:
        raise CheckpointNotFound(thread.thread_id, checkpoint_id)
    return record.parent_checkpoint_id or FROM_START, question_of(record, conversation)

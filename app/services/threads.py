"""Reading and managing threads: registry, transcript, history and state, owner-scoped."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from langchain_core.runnables import RunnableConfig

from app.agent.messages import stored_to_json, to_stored
from app.errors import CheckpointNotFound, NothingToTitle, ThreadBusy, ThreadExists, ThreadNotFound
from app.memory.history import CheckpointHistory, CheckpointRecord
from app.memory.runs import RunRecord
from app.memory.threads import ThreadPage, ThreadQuery, ThreadRecord, ThreadRegistry
from app.memory.transcript import StoredMessage, Transcript
from app.services.executor import Graph
from app.services.titles import Titler

FIRST_EXCHANGE_ROWS = 40  # the first question, its tool steps and its answer fit in far fewer


@dataclass(frozen=True)
class StateView:
    checkpoint: CheckpointRecord
    messages: list[dict[str, Any]]
    next_nodes: list[str]


class ThreadService:
    def __init__(
        self,
        *,
        graph: Graph,
        registry: ThreadRegistry,
        transcript: Transcript,
        history: CheckpointHistory,
        titler: Titler,
    ) -> None:
        self._graph = graph
        self._registry = registry
        self._transcript = transcript
        self._history = history
        self._titler = titler

    async def create(
        self,
        owner: str,
        thread_id: str,
        *,
        title: str | None,
        metadata: dict[str, Any],
        ttl_seconds: int | None = None,
    ) -> ThreadRecord:
        record = await self._registry.create(
            owner, thread_id, title=title, metadata=metadata, ttl_seconds=ttl_seconds
        )
        if record is None:
            raise ThreadExists(thread_id)
        return record

    async def find(self, owner: str, thread_id: str) -> ThreadRecord | None:
        return await self._registry.get(owner, thread_id)

    async def get(self, owner: str, thread_id: str) -> ThreadRecord:
        record = await self._registry.get(owner, thread_id)
        if record is None:
            raise ThreadNotFound(thread_id)
        return record

    async def page(
        self,
        owner: str,
        *,
        limit: int,
        before: tuple[datetime, str] | None,
        title_contains: str | None = None,
    ) -> ThreadPage:
        return await self._registry.page(owner, limit=limit, before=before, title_contains=title_contains)

    async def update(
        self,
        owner: str,
        thread_id: str,
        *,
        title: str | None,
        set_title: bool,
        metadata: dict[str, Any] | None,
        ttl_seconds: int | None = None,
        set_ttl: bool = False,
    ) -> ThreadRecord:
        record = await self._registry.update(
            owner,
            thread_id,
            title=title,
            set_title=set_title,
            metadata=metadata,
            ttl_seconds=ttl_seconds,
            set_ttl=set_ttl,
        )
        if record is None:
            raise ThreadNotFound(thread_id)
        return record

    async def copy(self, owner: str, thread_id: str, new_thread_id: str) -> ThreadRecord:
        """A copy of the thread under a new id (409 while it runs a turn)."""
        if await self._registry.get(owner, thread_id) is None:
            raise ThreadNotFound(thread_id)
        record = await self._registry.copy(owner, thread_id, new_thread_id)
        if record is None:
            raise ThreadBusy(thread_id, 1)
        return record

    async def delete(self, owner: str, thread_id: str) -> None:
        if not await self._registry.delete(owner, thread_id):
            raise ThreadNotFound(thread_id)

    async def title_from_first_exchange(self, owner: str, thread_id: str) -> ThreadRecord:
        """Title the thread from its first question and answer (see app/services/titles.py)."""
        thread = await self.get(owner, thread_id)
        rows = await self._transcript.upto(
            thread.thread_key, branch=thread.branch, end_seq=min(thread.message_count, FIRST_EXCHANGE_ROWS)
        )
        question = next((m for m in rows if m.role == "user"), None)
        answer = next(
            (m for m in rows if question and m.seq > question.seq and m.role == "assistant" and m.content),
            None,
        )
        if question is None or answer is None:
            raise NothingToTitle(thread_id)
        title = await self._titler.title(question.content, answer.content)
        return await self.update(owner, thread_id, title=title, set_title=True, metadata=None)

    async def messages(
        self, owner: str, thread_id: str, *, limit: int, before: int | None
    ) -> tuple[list[StoredMessage], int | None]:
        thread = await self.get(owner, thread_id)
        return await self._transcript.page(
            thread.thread_key, branch=thread.branch, limit=limit, before_seq=before
        )

    async def history(
        self, owner: str, thread_id: str, *, limit: int, before: str | None
    ) -> tuple[ThreadRecord, list[CheckpointRecord], str | None]:
        thread = await self.get(owner, thread_id)
        rows, cursor = await self._history.page(thread.thread_key, limit=limit, before=before)
        return thread, rows, cursor

    async def search(self, owner: str, query: ThreadQuery) -> list[tuple[ThreadRecord, list[StoredMessage]]]:
        """Threads matching a metadata filter, each with its whole conversation at its head,
        all read in two round trips whatever the page size."""
        records = await self._registry.search(owner, query)
        conversations = await self._transcript.ranges(
            [(r.thread_key, r.branch, r.message_count) for r in records]
        )
        return list(zip(records, conversations, strict=True))

    async def conversation_until(self, end: tuple[uuid.UUID, int, int]) -> list[StoredMessage]:
        """The conversation up to a position a run reported (one range of rows)."""
        thread_key, branch, end_seq = end
        return await self._transcript.upto(thread_key, branch=branch, end_seq=end_seq)

    async def head_conversation(self, owner: str, thread_id: str) -> list[StoredMessage]:
        """The whole conversation at the thread's head, found by its id ([] for no thread)."""
        return await self._transcript.at_head(owner, thread_id)

    async def conversation(self, thread: ThreadRecord) -> list[StoredMessage]:
        """The whole conversation at the thread's head: one range of transcript rows."""
        return await self._transcript.upto(
            thread.thread_key, branch=thread.branch, end_seq=thread.message_count
        )

    async def checkpoint_state(
        self, thread: ThreadRecord, checkpoint_id: str
    ) -> tuple[CheckpointRecord, list[StoredMessage]]:
        """A checkpoint of the thread and the whole conversation at it (one range of rows)."""
        record = await self._history.get(thread.thread_key, checkpoint_id)
        if record is None:
            raise CheckpointNotFound(thread.thread_id, checkpoint_id)
        if record.branch is None or record.message_count is None:
            return record, []  # a checkpoint no run of this service wrote
        rows = await self._transcript.upto(
            thread.thread_key, branch=record.branch, end_seq=record.message_count
        )
        return record, rows

    async def before_run(self, run: RunRecord) -> list[StoredMessage]:
        """The conversation a run started from: rows before its first one (a finished run), or
        the conversation at the checkpoint it starts from (a running one)."""
        if run.start_seq is not None:
            return await self._transcript.upto(run.thread_key, branch=run.branch, end_seq=run.start_seq)
        if run.parent_checkpoint_id is None:
            return []
        record = await self._history.get(run.thread_key, run.parent_checkpoint_id)
        if record is None or record.branch is None or record.message_count is None:
            return []
        return await self._transcript.upto(run.thread_key, branch=record.branch, end_seq=record.message_count)

    async def history_states(
        self, owner: str, thread_id: str, *, limit: int, before: str | None
    ) -> tuple[ThreadRecord, list[tuple[CheckpointRecord, list[StoredMessage]]]]:
        """The thread's checkpoints, newest first, each with the conversation at it."""
        thread, rows, _ = await self.history(owner, thread_id, limit=limit, before=before)
        known = [r for r in rows if r.branch is not None and r.message_count is not None]
        conversations = await self._transcript.ranges(
            [(thread.thread_key, r.branch or 0, r.message_count or 0) for r in known]
        )
        by_id = {r.checkpoint_id: c for r, c in zip(known, conversations, strict=True)}
        return thread, [(r, by_id.get(r.checkpoint_id, [])) for r in rows]

    async def state(self, owner: str, thread_id: str, checkpoint_id: str | None) -> StateView:
        """The full conversation at a checkpoint (default: the thread's head): its branch of the
        transcript up to that checkpoint. The graph's own state there holds that turn only."""
        thread = await self.get(owner, thread_id)
        wanted = checkpoint_id or thread.head_checkpoint_id
        if wanted is None:
            raise CheckpointNotFound(thread_id, "(none yet: the thread has no completed turn)")
        record = await self._history.get(thread.thread_key, wanted)
        if record is None:
            raise CheckpointNotFound(thread_id, wanted)
        config: RunnableConfig = {
            "configurable": {"thread_id": str(thread.thread_key), "checkpoint_id": wanted}
        }
        snapshot = await self._graph.aget_state(config)
        if record.message_count is not None and record.branch is not None:
            rows = await self._transcript.upto(
                thread.thread_key, branch=record.branch, end_seq=record.message_count
            )
            messages = [stored_to_json(m) for m in rows]
        else:  # a checkpoint no run of this service wrote: only the graph state is known
            values = snapshot.values.get("messages", []) if isinstance(snapshot.values, dict) else []
            messages = [stored_to_json(to_stored(m, seq=i, run_id=None)) for i, m in enumerate(values)]
        return StateView(checkpoint=record, messages=messages, next_nodes=list(snapshot.next))

"""Reading and managing threads: registry, transcript, history and state, owner-scoped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from langchain_core.runnables import RunnableConfig

from app.agent.messages import stored_to_json, to_stored
from app.errors import CheckpointNotFound, ThreadExists, ThreadNotFound
from app.memory.history import CheckpointHistory, CheckpointRecord
from app.memory.threads import ThreadPage, ThreadRecord, ThreadRegistry
from app.memory.transcript import StoredMessage, Transcript
from app.services.executor import Graph


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
    ) -> None:
        self._graph = graph
        self._registry = registry
        self._transcript = transcript
        self._history = history

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

    async def get(self, owner: str, thread_id: str) -> ThreadRecord:
        record = await self._registry.get(owner, thread_id)
        if record is None:
            raise ThreadNotFound(thread_id)
        return record

    async def page(self, owner: str, *, limit: int, before: tuple[datetime, str] | None) -> ThreadPage:
        return await self._registry.page(owner, limit=limit, before=before)

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

    async def delete(self, owner: str, thread_id: str) -> None:
        if not await self._registry.delete(owner, thread_id):
            raise ThreadNotFound(thread_id)

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

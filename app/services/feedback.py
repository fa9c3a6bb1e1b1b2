"""Feedback on a turn, owner-scoped: only the thread's owner rates its turns, and another
owner's thread is a 404 as everywhere."""

from __future__ import annotations

import uuid

from app.errors import ThreadNotFound, TurnNotFound
from app.memory.feedback import FeedbackRecord, FeedbackStore, Rating
from app.memory.threads import ThreadRecord, ThreadRegistry


class FeedbackService:
    def __init__(self, *, registry: ThreadRegistry, store: FeedbackStore) -> None:
        self._registry = registry
        self._store = store

    async def _thread(self, owner: str, thread_id: str) -> ThreadRecord:
        thread = await self._registry.get(owner, thread_id)
        if thread is None:
            raise ThreadNotFound(thread_id)
        return thread

    async def give(
        self, *, owner: str, thread_id: str, run_id: uuid.UUID, rating: Rating, comment: str | None
    ) -> FeedbackRecord:
        thread = await self._thread(owner, thread_id)
        record = await self._store.give(thread.thread_key, run_id, rating=rating, comment=comment)
        if record is None:
            raise TurnNotFound(thread_id, str(run_id))
        return record

    async def of_thread(self, *, owner: str, thread_id: str) -> list[FeedbackRecord]:
        thread = await self._thread(owner, thread_id)
        return await self._store.of_thread(thread.thread_key)

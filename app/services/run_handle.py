"""A submitted run as its submitter holds it: the run, its events and its result, from this
process's memory while it executes here and from the run service (its log) otherwise."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from app.errors import ServiceError, WorkerLost
from app.services.events import RunEvent
from app.services.live_run import LiveRun
from app.services.run_model import Run, TurnRequest, TurnResult


class RunSource(Protocol):
    """What a handle asks of the run service (`app.services.runs.RunService`)."""

    def follow(self, run_id: uuid.UUID, *, after: int) -> AsyncIterator[RunEvent]: ...

    def follow_batches(
        self, run_id: uuid.UUID, *, after: int, live: LiveRun | None
    ) -> AsyncIterator[list[RunEvent]]: ...

    async def result_of(self, run_id: uuid.UUID) -> TurnResult: ...

    async def submit(self, request: TurnRequest) -> RunHandle: ...


@dataclass(frozen=True)
class RunHandle:
    """A submitted run (or, for a retried idempotency key, the run that key started)."""

    run: Run
    replayed: bool
    _service: RunSource
    _live: LiveRun | None = None  # it executes in this process
    _request: TurnRequest | None = None  # a replay's request: run again if its first run was lost
    # Where the conversation it starts from ends (thread_key, branch, position), once claimed here.
    start_at: tuple[uuid.UUID, int, int] | None = None

    def events(self, *, after: int = 0) -> AsyncIterator[RunEvent]:
        if self._live is not None:
            return self._live.follow(after=after)
        return self._service.follow(uuid.UUID(self.run.run_id), after=after)

    def event_batches(self) -> AsyncIterator[list[RunEvent]]:
        """`events`, as many at a time as are there (a stream writes them at once)."""
        return self._service.follow_batches(uuid.UUID(self.run.run_id), after=0, live=self._live)

    async def result(self) -> TurnResult:
        if self._live is not None:
            # shield: the caller going away must not cancel the run itself.
            return await asyncio.shield(self._live.result)
        try:
            return await self._service.result_of(uuid.UUID(self.run.run_id))
        except ServiceError as error:
            # A retry that joined a run whose process then turned out dead: the key is free
            # now, so the retry runs the turn (as it would have, had it come a little later).
            if self._request is None or error.code != WorkerLost.code:
                raise
        return await (await self._service.submit(self._request)).result()

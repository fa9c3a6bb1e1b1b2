"""A run executing in this process: its events as they happen, for joiners in this process, and
the batched writes that store them for joiners everywhere else.

Events are numbered here, by the only writer of a running run's log, so a joiner reading from
memory and one reading from the log see the same ids. Batches are written one at a time, in
order (a joiner reading the log never sees a later batch before an earlier one), for all the
runs of the process at once, and what is left when a run ends goes into the statement that
finishes it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

from app.memory.run_events import RunEventLog, StoredEvent
from app.services.events import RunEvent, TurnEvent, event_json, event_kind
from app.services.run_model import TurnResult

logger = logging.getLogger(__name__)


def stored(events: list[RunEvent]) -> list[StoredEvent]:
    return [
        StoredEvent(seq=e.seq, kind=event_kind(e.event), data=event_json(e.event), data_json=e.data_json)
        for e in events
    ]


class LiveRun:
    def __init__(self, run_id: uuid.UUID, thread_id: str) -> None:
        self.run_id = run_id
        self.thread_id = thread_id
        self.events: list[RunEvent] = []
        self.result: asyncio.Future[TurnResult] = asyncio.get_running_loop().create_future()
        self.cancel_requested = False
        self.lease_lost = False
        self.committing = False  # the statement that saves it is in flight: do not interrupt
        self.task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.flushed = 0  # events[:flushed] are stored (by its EventWriter)
        self._finished = False
        self._writer: EventWriter | None = None

    def numbered(self, events: list[TurnEvent]) -> list[RunEvent]:
        """The next events with their ids, not yet published (a run's last events are stored
        by the statement that finishes it, and shown only once that has committed)."""
        start = len(self.events) + 1
        return [RunEvent(seq=start + i, event=e) for i, e in enumerate(events)]

    def publish(self, events: list[RunEvent]) -> None:
        assert not events or events[0].seq == len(self.events) + 1
        self.events.extend(events)
        # Wake everyone waiting for this run's next event, then wait on a fresh event.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def emit(self, event: TurnEvent) -> None:
        self.publish(self.numbered([event]))

    @property
    def ended(self) -> bool:
        """Its terminal event is published."""
        return bool(self.events) and self.events[-1].terminal

    def finish(self) -> None:
        self._finished = True
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def follow(self, *, after: int) -> AsyncIterator[RunEvent]:
        """This run's events after `after`, live, until its terminal event."""
        async for batch in self.follow_batches(after=after):
            for event in batch:
                yield event

    async def follow_batches(self, *, after: int) -> AsyncIterator[list[RunEvent]]:
        """`follow`, each time with all the events published meanwhile (a stream writes them
        at once: one write for a burst of tokens, not one per token)."""
        position = after
        while True:
            waiter = self._changed
            if position < len(self.events):
                batch = self.events[position:]
                position += len(batch)
                ends = next((i for i, e in enumerate(batch) if e.terminal), None)
                yield batch if ends is None else batch[: ends + 1]
                if ends is not None:
                    return
                continue
            if self._finished:
                return
            await waiter.wait()

    # -- storing -----------------------------------------------------------------------------

    def store_with(self, writer: EventWriter) -> None:
        """Store this run's events in the process's batches while it runs."""
        self._writer = writer
        writer.add(self)

    async def unstored(self, last: list[RunEvent]) -> list[StoredEvent]:
        """Stop storing in batches; what they have not stored, then `last` (for the finishing
        statement)."""
        if self._writer is not None:
            await self._writer.release(self)
        return stored(self.events[self.flushed :] + last)


class EventWriter:
    """Stores the events of every run executing in this process, every `interval` seconds, in
    one statement for all of them: a statement (and a commit) per batch interval, not per run.

    One batch at a time (a joiner reading the log never sees a later batch of a run before an
    earlier one); what is left when a run ends goes into the statement that finishes it.
    """

    def __init__(self, log: RunEventLog, interval: float) -> None:
        self._log = log
        self._interval = interval
        self._runs: dict[uuid.UUID, LiveRun] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def add(self, live: LiveRun) -> None:
        self._runs[live.run_id] = live
        if self._task is None:
            self._task = asyncio.create_task(self._flush_every(), name="run-events")

    async def release(self, live: LiveRun) -> None:
        """Stop storing the run's events (a batch being written finishes first)."""
        async with self._lock:
            self._runs.pop(live.run_id, None)
            if not self._runs:
                self.close()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                # Shielded: stopping the writer never interrupts a batch half-written.
                await asyncio.shield(self._flush())
            except Exception:  # noqa: BLE001 - kept in memory; the next batch or the commit stores them
                logger.warning("storing the events of %d runs failed; will retry", len(self._runs))

    async def _flush(self) -> None:
        async with self._lock:
            pending = [(live, len(live.events)) for live in self._runs.values()]
            pending = [(live, end) for live, end in pending if end > live.flushed]
            if not pending:
                return
            batches = [(live.run_id, stored(live.events[live.flushed : end])) for live, end in pending]
            await self._log.append_many(batches)
            for live, end in pending:
                live.flushed = end

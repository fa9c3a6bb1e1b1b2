"""Following a run from its event log, in any process: its events after a given id, live, until
its terminal event; and waiting for a run to finish.

Subscribe first, then read: an event stored between the read and the wait has notified the
subscription, so nothing is missed. A missed notification (a reconnect) costs at most one poll
interval. A finished run whose log holds no terminal event (its events expired after
RUN_EVENTS_TTL_SECONDS) ends with one made from its record.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from app.memory.notifications import RunNotifications
from app.memory.run_events import RunEventLog
from app.memory.runs import RunRecord, RunStore
from app.services.events import RunDone, RunEvent, RunFailed, TurnEvent, event_from_json

POLL_SECONDS = 2.0


def closing_event(record: RunRecord) -> TurnEvent:
    if record.status == "success" and record.checkpoint_id is not None:
        return RunDone(
            run_id=str(record.run_id),
            thread_id=record.thread_id,
            checkpoint_id=record.checkpoint_id,
            new_messages=(record.message_count or 0) - (record.start_seq or 0),
        )
    return RunFailed(code=record.error_code or "turn_failed", message=record.error_message or "")


class LogFollower:
    def __init__(self, *, log: RunEventLog, runs: RunStore, notifications: RunNotifications) -> None:
        self._log = log
        self._runs = runs
        self._notifications = notifications

    async def follow(self, run_id: uuid.UUID, *, after: int) -> AsyncIterator[RunEvent]:
        async for batch in self.follow_batches(run_id, after=after):
            for event in batch:
                yield event

    async def follow_batches(self, run_id: uuid.UUID, *, after: int) -> AsyncIterator[list[RunEvent]]:
        """The run's events after `after`, as they are read: each read's in one list."""
        waiter = self._notifications.subscribe(run_id)
        try:
            await self._runs.watch(run_id)  # subscribed, watched, then read: nothing is missed
            check_record = True  # the first read, and after each quiet poll
            while True:
                waiter.clear()
                rows = await self._log.read(run_id, after=after)
                batch: list[RunEvent] = []
                for row in rows:
                    if row.seq != after + 1:
                        break  # an earlier batch is not visible yet: read again
                    batch.append(RunEvent(seq=row.seq, event=event_from_json(row.kind, row.data)))
                    after = row.seq
                    if batch[-1].terminal:
                        break
                if batch:
                    yield batch
                    if batch[-1].terminal:
                        return
                if rows:
                    continue
                if check_record:
                    record = await self._runs.by_id(run_id)
                    if record is None:
                        yield [
                            RunEvent(
                                seq=after + 1,
                                event=RunFailed(code="cancelled", message="The run was deleted."),
                            )
                        ]
                        return
                    if record.finished_at is not None:
                        if await self._log.read(run_id, after=after, batches=1):
                            continue  # stored just now
                        # Its terminal event was at or before `after`, or pruned with the log.
                        if not await self._log.closed(run_id):
                            yield [RunEvent(seq=after + 1, event=closing_event(record))]
                        return
                check_record = False
                try:
                    await asyncio.wait_for(waiter.wait(), timeout=POLL_SECONDS)
                except TimeoutError:
                    check_record = True
        finally:
            self._notifications.unsubscribe(run_id, waiter)

    async def finished(self, run_id: uuid.UUID, *, within: float | None = None) -> RunRecord | None:
        """The run's record once it has finished (None: it was deleted; unfinished: `within` passed)."""
        waiter = self._notifications.subscribe(run_id)
        try:
            await self._runs.watch(run_id)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    while True:
                        waiter.clear()
                        record = await self._runs.by_id(run_id)
                        if record is None or record.finished_at is not None:
                            return record
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(waiter.wait(), timeout=POLL_SECONDS)
            return await self._runs.by_id(run_id)
        finally:
            self._notifications.unsubscribe(run_id, waiter)

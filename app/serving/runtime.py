"""The process's resources for synchronous callers: an event loop on a background thread.

MLflow calls `predict` synchronously, possibly from several threads at once. The service is
async, and its pool, graph and running turns belong to one event loop. So the loop runs on its own
thread for the life of the process: resources are opened there once, on first use (after any
fork of a serving worker), every call is submitted to it, and it is closed at process exit.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any, TypeVar

from app.lifespan import Resources, open_resources
from app.settings import Settings

T = TypeVar("T")

Opener = Callable[[Settings], AbstractAsyncContextManager[Resources]]


async def _next(items: AsyncIterator[T]) -> list[T]:
    # StopAsyncIteration does not cross a concurrent Future cleanly: [] means the end instead.
    try:
        return [await anext(items)]
    except StopAsyncIteration:
        return []


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


class BackgroundResources:
    """`open_resources(settings)` kept open on a background event loop, opened lazily."""

    def __init__(self, settings: Settings, *, opener: Opener = open_resources) -> None:
        self._settings = settings
        self._opener = opener
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stack: AsyncExitStack | None = None
        self._resources: Resources | None = None
        self._pid: int | None = None
        self._atexit = False

    @property
    def settings(self) -> Settings:
        return self._settings

    def resources(self) -> Resources:
        """The open resources; opened on the first call in this process."""
        with self._lock:
            if self._resources is None or self._pid != os.getpid():
                # In a forked child the parent's loop thread does not exist: open anew.
                self._resources = self._open()
            return self._resources

    def _open(self) -> Resources:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="lma-serving-loop", daemon=True)
        thread.start()
        stack = AsyncExitStack()
        try:
            resources = asyncio.run_coroutine_threadsafe(
                stack.enter_async_context(self._opener(self._settings)), loop
            ).result()
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
            raise
        self._loop, self._thread, self._stack, self._pid = loop, thread, stack, os.getpid()
        if not self._atexit:
            atexit.register(self.close)
            self._atexit = True
        return resources

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the resources' loop and wait for its result (or exception)."""
        self.resources()
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        """Pull an async iterator living on the loop, one item at a time, from this thread."""
        try:
            while True:
                batch = self.run(_next(items))
                if not batch:
                    return
                yield batch[0]
        finally:
            close = getattr(items, "aclose", None)
            if close is not None and self._loop is not None and self._loop.is_running():
                self.run(_await(close()))

    def close(self) -> None:
        """Drain running turns and close the pool; safe to call twice."""
        with self._lock:
            loop, thread, stack = self._loop, self._thread, self._stack
            self._loop = self._thread = self._stack = self._resources = None
            if loop is None or thread is None or stack is None or self._pid != os.getpid():
                return
            try:
                timeout = self._settings.runs.shutdown_grace_seconds + 10
                asyncio.run_coroutine_threadsafe(stack.aclose(), loop).result(timeout=timeout)
            finally:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(timeout=10)
                if not thread.is_alive():
                    loop.close()

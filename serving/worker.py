"""One background thread fed by a queue, answering asyncio futures: the plumbing that the
micro-batcher (serving.engine.batching) and the group writer (serving.storage.writer) share.

Usage (a subclass):
    class Writer(QueueWorker[Job]):
        thread_name = "belong-writer"
        def _work(self) -> None: ...          # loop on self._queue.get() until it yields None

The event loop only puts jobs on the queue and awaits their futures; the thread answers each
future through `deliver`, which hands the result back to the job's own event loop.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any, Generic, TypeVar

Job = TypeVar("Job")


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    if future.done():  # the request was cancelled (the client went away)
        return
    if isinstance(value, BaseException):
        future.set_exception(value)
    else:
        future.set_result(value)


def deliver(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], value: Any) -> None:
    """Resolve `future` on its loop with `value` (an exception is raised there); from any thread."""
    try:
        loop.call_soon_threadsafe(_settle, future, value)
    except RuntimeError:  # the event loop is closed: nobody is waiting any more
        pass


class QueueWorker(Generic[Job]):
    """A daemon thread running `_work`; `stop` puts None on the queue and joins the thread."""

    thread_name = "belong-worker"

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._running = False

    def start(self) -> None:
        if self._thread is not None:
            return
        self._running = True
        self._thread = threading.Thread(target=self._work, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Let the thread finish what it holds, then join it (at most `timeout` seconds)."""
        if self._thread is None:
            return
        self._running = False
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None

    def _work(self) -> None:
        raise NotImplementedError

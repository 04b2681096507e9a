"""Group commit: one thread writes the scored comments of all concurrent requests.

Usage:
    writer = GroupWriter(sessions, model_name="m", model_version="1"); writer.start()
    replaced = await writer.write(rows)   # {key: stored result} for rows someone else stored first
    writer.stop()

Many request threads each opening a write transaction make SQLite writers queue on its file lock,
and SQLite's busy handler sleeps between retries (up to 100 ms at a time): tail latency explodes.
Here every row waiting at that moment goes into one transaction instead, on both backends.
"""

from __future__ import annotations

import asyncio
import logging
import queue
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from serving.storage.comments import Key, NewComment, StoredResult, find_results, insert_scored
from serving.worker import QueueWorker, deliver

log = logging.getLogger(__name__)


class WriterStopped(RuntimeError):
    """The writer is not running."""


@dataclass(eq=False)
class _Job:
    rows: Sequence[NewComment]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[dict[Key, StoredResult]]


class GroupWriter(QueueWorker[_Job]):
    thread_name = "belong-writer"

    def __init__(
        self, sessions: sessionmaker[Session], *, model_name: str, model_version: str, max_rows: int = 2048
    ) -> None:
        super().__init__()
        self.sessions = sessions
        self.model_name = model_name
        self.model_version = model_version
        self.max_rows = max_rows

    async def write(self, rows: Sequence[NewComment]) -> dict[Key, StoredResult]:
        """Store rows that are new; return the stored result of each row that was already there."""
        if not rows:
            return {}
        if not self._running:
            raise WriterStopped("the store writer is not running")
        loop = asyncio.get_running_loop()
        job = _Job(rows, loop, loop.create_future())
        self._queue.put(job)
        return await job.future

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs, total, stop = [first], len(first.rows), False
            while total < self.max_rows:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                jobs.append(job)
                total += len(job.rows)
            try:
                results = self._commit(jobs)
            except Exception as exc:
                log.exception("storing %d comment(s) failed", total)
                for job in jobs:
                    self._deliver(job, exc)
            else:
                for job, result in zip(jobs, results, strict=True):
                    self._deliver(job, result)
            if stop:
                return

    def _commit(self, jobs: list[_Job]) -> list[dict[Key, StoredResult]]:
        owner: dict[Key, _Job] = {}
        unique: list[NewComment] = []
        for job in jobs:
            for row in job.rows:
                if row.key not in owner:
                    owner[row.key] = job
                    unique.append(row)
        with self.sessions.begin() as session:
            inserted = insert_scored(session, unique, model_name=self.model_name, model_version=self.model_version)
            lost = {row.key for job in jobs for row in job.rows if row.key not in inserted or owner[row.key] is not job}
            stored = find_results(session, lost) if lost else {}
        return [{row.key: stored[row.key] for row in job.rows if row.key in stored} for job in jobs]

    @staticmethod
    def _deliver(job: _Job, value: dict[Key, StoredResult] | BaseException) -> None:
        deliver(job.loop, job.future, value)

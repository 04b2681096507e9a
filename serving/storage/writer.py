"""Group commit: one thread writes the scored comments of all concurrent requests.

Usage:
    writer = GroupWriter(sessions, model_name="m", model_version="1"); writer.start()
    replaced = await writer.write(rows)   # {key: stored result} for rows someone else stored first
    writer.stop()

Many request threads each opening a write transaction make SQLite writers queue on its file lock,
and SQLite's busy handler sleeps between retries (up to 100 ms at a time): tail latency explodes.
Here every row waiting at that moment goes into one transaction instead, on both backends.

Store faults (the database locked past its busy timeout, read-only, full, or unreachable) fail the
rows in hand with StoreUnavailable and put the writer in a failing state: while it lasts `write`
refuses at once (no request waits on a dead store) and `fault` says why (/readyz reports it). The
writer thread probes the store every `probe_interval` seconds with a write that changes nothing
and leaves the failing state as soon as one succeeds, so recovery needs no restart and no traffic.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from serving.storage.comments import Key, NewComment, StoredResult, find_results, insert_scored
from serving.storage.db import StoreUnavailable
from serving.worker import QueueWorker, deliver

log = logging.getLogger(__name__)


class WriterStopped(RuntimeError):
    """The writer is not running."""


@dataclass(eq=False)
class _Job:
    rows: Sequence[NewComment]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[dict[Key, StoredResult]]


# PostgreSQL SQLSTATEs (and classes) that describe the server's condition, not the statement:
# connection exceptions, read-only transaction, insufficient resources (disk full), operator
# intervention (shutdown), system errors, lock not available, serialization failure, deadlock.
TRANSIENT_SQLSTATES = ("08", "25006", "53", "57", "58", "55P03", "40001", "40P01")


def is_store_fault(exc: BaseException) -> bool:
    """A database error that is the store's condition (locked, read-only, full, gone), not a bug."""
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    return exc.connection_invalidated or sqlstate.startswith(TRANSIENT_SQLSTATES)


def fault_reason(exc: BaseException) -> str:
    """The driver's own words ("database is locked"), without the SQL statement."""
    original = getattr(exc, "orig", None) or exc
    return str(original).splitlines()[0][:200] or type(original).__name__


class GroupWriter(QueueWorker[_Job]):
    thread_name = "belong-writer"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        model_name: str,
        model_version: str,
        max_rows: int = 2048,
        probe_interval: float = 0.25,
    ) -> None:
        super().__init__()
        self.sessions = sessions
        self.model_name = model_name
        self.model_version = model_version
        self.max_rows = max_rows
        self.probe_interval = probe_interval
        self.fault: str | None = None  # why writes fail, while they do
        self.fault_since: float | None = None  # time.monotonic() of the first failure
        self.busy_since: float | None = None  # time.monotonic() the transaction in progress began

    async def write(self, rows: Sequence[NewComment]) -> dict[Key, StoredResult]:
        """Store rows that are new; return the stored result of each row that was already there.

        Raises StoreUnavailable while the store is failing (at once) or when this write fails.
        """
        if not rows:
            return {}
        if not self._running:
            raise WriterStopped("the store writer is not running")
        if self.fault is not None:
            raise StoreUnavailable(f"writes are failing: {self.fault}", retry_after=self.probe_interval * 4)
        loop = asyncio.get_running_loop()
        job = _Job(rows, loop, loop.create_future())
        self._queue.put(job)
        return await job.future

    # --- health ---

    def _failed(self, exc: BaseException) -> StoreUnavailable:
        reason = fault_reason(exc)
        if self.fault is None:
            log.warning("store writes fail (%s): answering 503 until a probe write succeeds", reason)
            self.fault_since = time.monotonic()
        self.fault = reason
        return StoreUnavailable(f"the comments could not be stored: {reason}", retry_after=self.probe_interval * 4)

    def probe(self) -> bool:
        """Try a write that changes nothing (it takes the write lock, then rolls back); True if it worked."""
        try:
            with self.sessions() as session:
                session.execute(text("UPDATE comments SET text = text WHERE 1 = 0"))
                session.rollback()
        except Exception as exc:
            if not is_store_fault(exc):
                log.exception("the store probe failed unexpectedly")
            self._failed(exc)
            return False
        if self.fault is not None:
            lasted = time.monotonic() - (self.fault_since or time.monotonic())
            log.warning("store writes work again after %.1f s", lasted)
        self.fault = None
        self.fault_since = None
        return True

    # --- worker thread ---

    def _next(self) -> _Job | None:
        """The next job; while failing, probe the store whenever no job arrives for a probe interval."""
        while True:
            if self.fault is None:
                return self._queue.get()
            try:
                return self._queue.get(timeout=self.probe_interval)
            except queue.Empty:
                self.probe()

    def _work(self) -> None:
        while True:
            first = self._next()
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
            if self.fault is not None and not self.probe():
                refusal = StoreUnavailable(f"writes are failing: {self.fault}", retry_after=self.probe_interval * 4)
                for job in jobs:
                    self._deliver(job, refusal)
                if stop:
                    return
                continue
            self.busy_since = time.monotonic()
            try:
                results = self._commit(jobs)
            except Exception as exc:
                if is_store_fault(exc):
                    failure: BaseException = self._failed(exc)
                else:
                    log.exception("storing %d comment(s) failed", total)
                    failure = exc
                for job in jobs:
                    self._deliver(job, failure)
            else:
                for job, result in zip(jobs, results, strict=True):
                    self._deliver(job, result)
            finally:
                self.busy_since = None
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

"""Micro-batching: merge concurrent requests into length-sorted model batches on model threads.

Usage:
    batcher = MicroBatcher(predictor, max_batch_size=32, max_wait_ms=2)
    batcher.start()
    results = await batcher.score([Item("Welcome!", lang=None)])   # from any event-loop task
    batcher.stop()

A preparation thread and `model_threads` model threads, so that model threads only run the model.
The preparation thread takes each request as it arrives, tokenizes its comments and detects the
languages not given, and queues it ready. A free model thread takes the first ready request,
waits at most `max_wait_ms` for more until it holds `max_batch_size` comments, then also takes
whatever else is already ready, up to `pool_batches * max_batch_size` comments (with several
model threads: up to its fair share of the comments waiting, so that light traffic runs as short
calls on every thread). It sorts the pool by token length and cuts it where padding would cost
more than starting another batch (`plan_batches`; for a packed model, which puts short comments
in shared rows instead of padding them, where packing would not save it). Batches run shortest
first and a request is answered as soon as the batches holding its comments are done. While model
threads run batches (onnxruntime releases the GIL), the next requests are being tokenized. The
event loop only enqueues and awaits a future.

Several model threads share one onnxruntime session (its `run` is thread-safe), each call on
`BELONG_INTRA_OP_THREADS` onnxruntime threads: on a small CPU, one single-threaded call per core beats one call
spread over all cores, most of all for the short batches of light traffic, where a call's many
small operators leave the cores waiting for each other (measured in `bench/serve_bench.py`).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from serving.engine.packing import ATTENTION_SPAN, PACK_WIDTH
from serving.worker import QueueWorker, deliver

log = logging.getLogger(__name__)


class PredictorLike(Protocol):
    """What serving needs from `serving.engine.predictor.Predictor` (fakes in tests mimic it)."""

    labels: list[str]
    max_length: int
    bundle: Any

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    def encode(self, texts: Sequence[str]) -> list[Any]: ...

    def predict_encoded(self, encoded: Sequence[Any], batch_size: int = 32) -> list[Any]: ...


class Overloaded(RuntimeError):
    """Too many comments are waiting: the caller should retry later."""


class BatcherStopped(RuntimeError):
    """The batcher is not running (not started yet, or shutting down)."""


@dataclass(frozen=True)
class Item:
    text: str
    lang: str | None = None  # the caller's hint; detected when None


@dataclass(frozen=True)
class Scored:
    scores: dict[str, float]
    tags: list[str]
    truncated: bool
    lang: str


@dataclass(eq=False)
class _Job:
    items: list[Item]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[Scored]]
    results: list[Scored | None] = field(init=False)
    remaining: int = field(init=False)
    encoded: list[Any] = field(default_factory=list)  # filled by the preparation thread
    langs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.results = [None] * len(self.items)
        self.remaining = len(self.items)


def plan_batches(lengths: Sequence[int], max_batch: int, overhead: float, span: float | None = None) -> list[list[int]]:
    """Split comments into batches that cost the model least: indices sorted by token length, cut
    into runs of at most `max_batch`.

    Cost model: a batch of n rows padded to length L costs about `overhead + n * L` token-steps,
    `overhead` standing for the fixed cost of one call. On the 2-core test machine with the int8
    e5-small bundle, single texts ran at ~0.7x the speed of sorted batches of 32 (a fixed cost of
    15-50 tokens, depending on the run) and unsorted batches of 32 at ~0.55x (padding). A new batch
    is started where the padding it saves outweighs that fixed cost; the best cut points of the
    sorted lengths come from a small dynamic programme (n * max_batch steps; under 1 ms for 128).

    With `span` (a packed model, serving/engine/packing.py) a batch costs the cheaper of padding and
    packing its S tokens into rows of about `PACK_WIDTH`, S * (1 + width / span), attention included
    either way: a few short comments of mixed lengths stay one call, while a long mixed pool is still
    cut into sorted runs (packed, 32 random tweets ran at 0.9x of sorted padded batches).
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    ordered = [lengths[i] for i in order]
    n = len(ordered)
    prefix = [0]
    for length in ordered:
        prefix.append(prefix[-1] + length)
    best = [0.0] + [float("inf")] * n  # best[j]: cheapest way to run the j shortest
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        longest = ordered[j - 1]
        for i in range(max(0, j - max_batch), j):
            work = float((j - i) * longest)
            if span:
                tokens = prefix[j] - prefix[i]
                packed = tokens * (1.0 + max(longest, min(tokens, PACK_WIDTH)) / span)
                work = min(work * (1.0 + longest / span), packed)
            cost = best[i] + overhead + work
            if cost < best[j]:
                best[j], cut[j] = cost, i
    batches: list[list[int]] = []
    j = n
    while j > 0:
        batches.append(order[cut[j] : j])
        j = cut[j]
    return batches[::-1]


class MicroBatcher(QueueWorker[_Job]):
    thread_name = "belong-batcher"

    def __init__(
        self,
        predictor: PredictorLike,
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 2.0,
        max_queue: int = 8192,
        pool_batches: int = 4,
        batch_overhead: float = 32.0,
        model_threads: int = 1,
        on_batch: Callable[[int], None] | None = None,
        on_queue_depth: Callable[[int], None] | None = None,
        detect: Callable[[str], str] = lambda text: "und",
    ) -> None:
        self.predictor = predictor
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.pool_size = max(1, pool_batches) * max_batch_size
        self.batch_overhead = batch_overhead
        if model_threads < 1:
            raise ValueError(f"model_threads must be at least 1, got {model_threads}")
        self.model_threads = model_threads
        self._on_batch = on_batch or (lambda n: None)
        self._on_queue_depth = on_queue_depth or (lambda n: None)
        self._detect = detect
        self._pending = 0  # comments queued but not yet taken by the model thread
        self._lock = threading.Lock()
        super().__init__()  # self._queue: prepared jobs, for the model thread
        self._incoming: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._prep_thread: threading.Thread | None = None
        self._model_threads: list[threading.Thread] = []

    def start(self) -> None:
        if self._prep_thread is not None:
            return
        self._running = True
        self._model_threads = [
            threading.Thread(target=self._work, name=f"{self.thread_name}-{n}", daemon=True)
            for n in range(self.model_threads)
        ]
        for thread in self._model_threads:
            thread.start()
        self._prep_thread = threading.Thread(target=self._prepare_loop, name="belong-prepare", daemon=True)
        self._prep_thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batches in hand, fail the rest, and join all threads."""
        if self._prep_thread is None:
            return
        self._running = False
        self._incoming.put(None)  # passes through the preparation thread to the model threads
        self._prep_thread.join(timeout)
        for thread in self._model_threads:
            thread.join(timeout)
        self._prep_thread, self._model_threads = None, []
        for source in (self._incoming, self._queue):
            while True:
                try:
                    job = source.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    self._fail([job], BatcherStopped("the server is shutting down"))

    async def score(self, items: Sequence[Item]) -> list[Scored]:
        """Score comments together with whatever else is queued; results in input order."""
        if not items:
            return []
        if not self._running:
            raise BatcherStopped("the model is not ready")
        with self._lock:
            if self._pending + len(items) > self.max_queue and self._pending > 0:
                raise Overloaded(f"{self._pending} comments are already waiting to be scored")
            self._pending += len(items)
            depth = self._pending
        self._on_queue_depth(depth)
        loop = asyncio.get_running_loop()
        job = _Job(list(items), loop, loop.create_future())
        self._incoming.put(job)
        return await job.future

    # --- preparation thread ---

    def _prepare_loop(self) -> None:
        while True:
            job = self._incoming.get()
            if job is None:
                self._queue.put(None)
                return
            try:
                job.encoded = self.predictor.encode([item.text for item in job.items])
                job.langs = [item.lang or self._detect(item.text) for item in job.items]
            except Exception as exc:  # one bad request must not stop the others
                log.exception("preparing a request of %d comment(s) failed", len(job.items))
                self._take(job)
                self._fail([job], exc)
                continue
            self._queue.put(job)

    # --- model thread ---

    def _take(self, job: _Job) -> int:
        with self._lock:
            self._pending -= len(job.items)
            depth = self._pending
        self._on_queue_depth(depth)
        return len(job.items)

    def _gather(self) -> list[_Job] | None:
        """Block for one job, then collect more as described in the module docstring."""
        first = self._queue.get()
        if first is None:
            return None
        jobs = [first]
        with self._lock:
            waiting = self._pending  # comments waiting, this request's included
        total = self._take(first)
        # With several model threads, take a fair share of what waits, so that light traffic runs
        # as short calls on every thread instead of queueing behind one long pool (measured: also
        # no slower at concurrency 64 than taking whole pools).
        limit = self.pool_size
        if self.model_threads > 1:
            limit = min(limit, max(1, -(-waiting // self.model_threads)))
        deadline = time.monotonic() + self.max_wait
        while total < min(self.max_batch_size, limit):
            timeout = deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)  # keep the stop signal for the main loop
                return jobs
            jobs.append(job)
            total += self._take(job)
        while total < limit:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)
                break
            jobs.append(job)
            total += self._take(job)
        return jobs

    def _work(self) -> None:
        while True:
            jobs = self._gather()
            if jobs is None:
                self._queue.put(None)  # the stop signal, passed on to the other model threads
                return
            try:
                self._run(jobs)
            except Exception as exc:  # a model failure must not kill the worker
                log.exception("scoring a batch of %d request(s) failed", len(jobs))
                self._fail(jobs, exc)

    def _run(self, jobs: list[_Job]) -> None:
        slots = [(job, i) for job in jobs for i in range(len(job.items))]
        encoded = [job.encoded[i] for job, i in slots]
        lengths = [len(e.ids) for e in encoded]
        span = ATTENTION_SPAN if getattr(self.predictor, "packed", False) else None
        for chunk in plan_batches(lengths, self.max_batch_size, self.batch_overhead, span):
            predictions = self.predictor.predict_encoded([encoded[k] for k in chunk], batch_size=len(chunk))
            self._on_batch(len(chunk))
            for k, prediction in zip(chunk, predictions, strict=True):
                job, i = slots[k]
                job.results[i] = Scored(
                    scores=prediction.scores,
                    tags=list(prediction.tags),
                    truncated=prediction.truncated,
                    lang=job.langs[i],
                )
                job.remaining -= 1
                if job.remaining == 0:
                    done = [r for r in job.results if r is not None]
                    self._deliver(job, done)

    def _deliver(self, job: _Job, value: list[Scored] | BaseException) -> None:
        deliver(job.loop, job.future, value)

    def _fail(self, jobs: list[_Job], exc: BaseException) -> None:
        for job in jobs:
            if job.remaining > 0:
                job.remaining = 0
                self._deliver(job, exc)

"""The micro-batcher on its own: merging, length sorting, order, limits, failures."""

from __future__ import annotations

import asyncio
import threading

import pytest

from serving.engine.batching import BatcherStopped, Item, MicroBatcher, Overloaded, plan_batches
from tests.serving.conftest import FakePredictor


def run(coro):
    return asyncio.run(coro)


def started(predictor, **kwargs) -> MicroBatcher:
    batcher = MicroBatcher(predictor, **kwargs)
    batcher.start()
    return batcher


def test_concurrent_requests_share_batches_and_keep_their_order():
    predictor = FakePredictor(delay=0.02)
    sizes: list[int] = []
    batcher = started(predictor, max_batch_size=8, max_wait_ms=20, batch_overhead=10_000, on_batch=sizes.append)

    async def main():
        texts = [[f"{'welcome ' if i % 2 else ''}comment {i}-{j}" for j in range(i % 3 + 1)] for i in range(12)]
        results = await asyncio.gather(*(batcher.score([Item(t) for t in group]) for group in texts))
        return texts, results

    try:
        texts, results = run(main())
    finally:
        batcher.stop()
    for group, scored in zip(texts, results, strict=True):
        assert [("welcoming" in s.tags) for s in scored] == [t.startswith("welcome") for t in group]
    assert sum(sizes) == sum(len(g) for g in texts) == 24
    assert max(sizes) == 8 and len(sizes) <= 4  # merged, never above the max batch


def run_backlog(predictor: FakePredictor, lengths: list[int], **kwargs) -> None:
    """Hold a first one-comment batch in the model so that comments of `lengths` queue up behind it."""
    predictor.gate.clear()
    batcher = started(predictor, max_wait_ms=0, pool_batches=4, **kwargs)

    async def main():
        first = asyncio.ensure_future(batcher.score([Item("x")]))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(batcher.score([Item("y" * n)])) for n in lengths]
        await asyncio.sleep(0.05)
        predictor.gate.set()
        await asyncio.gather(first, *rest)

    try:
        run(main())
    finally:
        batcher.stop()


def test_a_backlog_is_sorted_by_token_length():
    predictor = FakePredictor()
    run_backlog(predictor, [9, 1, 7, 3, 8, 2, 6, 4], max_batch_size=4, batch_overhead=10_000)
    assert predictor.batches == [[1], [1, 2, 3, 4], [6, 7, 8, 9]]


def test_results_carry_language_hint_or_detection():
    batcher = started(FakePredictor(), detect=lambda text: "zz")

    async def main():
        return await batcher.score([Item("hello", lang="en"), Item("hola")])

    try:
        hinted, detected = run(main())
    finally:
        batcher.stop()
    assert (hinted.lang, detected.lang) == ("en", "zz")


def test_overload_and_stopped():
    predictor = FakePredictor()
    predictor.gate.clear()
    batcher = started(predictor, max_batch_size=2, max_wait_ms=0, max_queue=3)

    async def main():
        held = asyncio.ensure_future(batcher.score([Item("a")]))  # taken by the worker, blocked on the gate
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(batcher.score([Item("b"), Item("c")]))
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded, match="2 comments are already waiting"):
            await batcher.score([Item("d"), Item("e")])
        predictor.gate.set()
        await asyncio.gather(held, queued)

    try:
        run(main())
    finally:
        batcher.stop()
    with pytest.raises(BatcherStopped):
        run(batcher.score([Item("late")]))


def test_a_model_error_fails_only_its_batch():
    batcher = started(FakePredictor(fail_on="boom"), max_wait_ms=0)

    async def main():
        with pytest.raises(RuntimeError, match="model exploded"):
            await batcher.score([Item("boom")])
        return await batcher.score([Item("fine")])

    try:
        (ok,) = run(main())
    finally:
        batcher.stop()
    assert ok.tags == []


def test_plan_batches_sorts_and_weighs_padding_against_calls():
    lengths = [30, 12, 31, 10, 80, 11, 29, 78]
    # calls are dear: one sorted batch (or as few as max_batch allows)
    assert plan_batches(lengths, max_batch=32, overhead=10_000) == [[3, 5, 1, 6, 0, 2, 7, 4]]
    assert plan_batches(lengths, max_batch=3, overhead=10_000) == [[3, 5, 1], [6, 0, 2], [7, 4]]
    # a call costs 16 tokens: the three length groups run apart (padding 12->29 would cost 3 * 17)
    assert plan_batches(lengths, max_batch=32, overhead=16) == [[3, 5, 1], [6, 0, 2], [7, 4]]
    # calls are free: nothing is ever padded
    assert plan_batches(lengths, max_batch=32, overhead=0) == [[3], [5], [1], [6], [0], [2], [7], [4]]
    assert plan_batches([], max_batch=8, overhead=16) == []


def test_a_packed_model_keeps_a_few_mixed_comments_in_one_call_but_cuts_a_long_mixed_pool():
    few = [6, 8, 9, 40]
    assert len(plan_batches(few, max_batch=32, overhead=32)) == 2  # padded: 9 -> 40 costs too much
    assert plan_batches(few, max_batch=32, overhead=32, span=300) == [[0, 1, 2, 3]]  # packed: one row
    pool = [8, 96] * 16  # short and long: the long ones alike, packing them would only add attention
    assert sorted(map(len, plan_batches(pool, max_batch=32, overhead=32, span=300))) == [16, 16]

    predictor = FakePredictor()
    predictor.packed = True
    run_backlog(predictor, few, max_batch_size=8, batch_overhead=32)
    assert predictor.batches == [[1], [6, 8, 9, 40]]


def test_tokenizing_and_language_detection_run_beside_the_model():
    """Model threads only run the model: while one is busy, new requests are tokenized and their
    language detected on the preparation thread."""
    threads: dict[str, set[str]] = {"encode": set(), "detect": set(), "model": set()}
    encoded_while_busy = threading.Event()

    class Recording(FakePredictor):
        def encode(self, texts):
            threads["encode"].add(threading.current_thread().name)
            if not self.gate.is_set():
                encoded_while_busy.set()
            return super().encode(texts)

        def predict_encoded(self, encoded, batch_size=32):
            threads["model"].add(threading.current_thread().name)
            return super().predict_encoded(encoded, batch_size)

    def detect(text: str) -> str:
        threads["detect"].add(threading.current_thread().name)
        return "en"

    predictor = Recording()
    predictor.gate.clear()
    batcher = started(predictor, max_wait_ms=0, detect=detect)

    async def main():
        first = asyncio.ensure_future(batcher.score([Item("held by the model")]))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(batcher.score([Item("tokenized meanwhile")]))
        await asyncio.to_thread(encoded_while_busy.wait, 5)
        predictor.gate.set()
        return await asyncio.gather(first, second)

    try:
        results = run(main())
    finally:
        batcher.stop()
    assert encoded_while_busy.is_set()
    assert [r.lang for (r,) in results] == ["en", "en"]
    assert threads == {"encode": {"belong-prepare"}, "detect": {"belong-prepare"}, "model": {"belong-batcher-0"}}


def test_a_request_that_fails_to_tokenize_fails_alone():
    class Picky(FakePredictor):
        def encode(self, texts):
            if any("<bad>" in t for t in texts):
                raise ValueError("bad text")
            return super().encode(texts)

    batcher = started(Picky(), max_wait_ms=0, max_queue=4)

    async def main():
        with pytest.raises(ValueError, match="bad text"):
            await batcher.score([Item("a <bad> b")])
        return await batcher.score([Item("go back")] * 4)  # the failed one no longer counts as waiting

    try:
        scored = run(main())
    finally:
        batcher.stop()
    assert [s.tags for s in scored] == [["hostile"]] * 4


class ConcurrencyProbe(FakePredictor):
    """Counts the model calls running at the same moment."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay=delay)
        self.running = self.most_at_once = 0
        self.lock = threading.Lock()

    def predict_encoded(self, encoded, batch_size=32):
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            return super().predict_encoded(encoded, batch_size)
        finally:
            with self.lock:
                self.running -= 1


def test_model_threads_run_calls_side_by_side_and_share_light_traffic():
    predictor = ConcurrencyProbe(delay=0.1)
    batcher = started(predictor, max_batch_size=32, max_wait_ms=0, batch_overhead=10_000, model_threads=2)
    threads = {t.name for t in threading.enumerate()}
    assert {"belong-batcher-0", "belong-batcher-1"} <= threads

    async def main():
        predictor.gate.clear()  # let all four requests queue before any call starts
        pending = [asyncio.ensure_future(batcher.score([Item(f"welcome {i}")])) for i in range(4)]
        await asyncio.sleep(0.05)
        predictor.gate.set()
        return await asyncio.gather(*pending)

    try:
        results = run(main())
    finally:
        batcher.stop()
    assert [r[0].tags for r in results] == [["welcoming"]] * 4
    assert predictor.most_at_once == 2  # two calls at once: one per model thread
    # No thread took the whole queue: each call held at most half of the four waiting comments.
    assert max(len(b) for b in predictor.batches) <= 2
    assert not any(t.name.startswith("belong-batcher") for t in threading.enumerate())
    with pytest.raises(BatcherStopped):
        run(batcher.score([Item("late")]))


def test_one_model_thread_takes_its_pool_as_before():
    predictor = ConcurrencyProbe(delay=0.02)
    batcher = started(predictor, max_batch_size=8, max_wait_ms=20, batch_overhead=10_000)

    async def main():
        return await asyncio.gather(*(batcher.score([Item(f"c {i}")]) for i in range(6)))

    try:
        run(main())
    finally:
        batcher.stop()
    assert predictor.most_at_once == 1
    assert predictor.batches[0] == [3] * 6  # one call for all six: waits max_wait_ms to fill a batch


def test_model_threads_must_be_positive():
    with pytest.raises(ValueError, match="model_threads must be at least 1"):
        MicroBatcher(FakePredictor(), model_threads=0)

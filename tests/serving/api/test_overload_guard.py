"""The overload guard's speed estimate, driven by a fake clock: answers in bursts and out of arrival
order must not inflate it (they did when each call's latency was divided by the queue ahead of it)."""

import asyncio
import random

from serving.api.overload import AdmissionGuard


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bursts_answered_out_of_order_keep_the_true_cost_per_comment():
    async def run() -> AdmissionGuard:
        clock = Clock()
        guard = AdmissionGuard(max_wait=1.0, max_comments=8192, clock=clock)
        rng = random.Random(0)
        per_comment = 0.005
        for _round in range(5):  # 64 single comments arrive at once; batches of 32 answer them, shuffled
            calls = [guard.admit(1) for _ in range(64)]
            for call in calls:
                await call.__aenter__()
            rng.shuffle(calls)
            for batch in (calls[:32], calls[32:]):
                clock.now += 32 * per_comment
                for call in batch:
                    await call.__aexit__(None, None, None)
            clock.now += 0.5  # idle between rounds: not counted as work
        return guard

    guard = asyncio.run(run())
    assert guard.in_flight == 0
    assert abs(guard.seconds_per_comment - 0.005) < 1e-9
    guard.in_flight = 64  # a full concurrency-64 queue is 0.33 s of work: admitted
    assert not guard.overloaded(1)
    guard.in_flight = 250  # 1.25 s of work: refused
    assert guard.overloaded(1)


def test_failed_calls_teach_nothing_and_an_idle_guard_admits_anything():
    async def run() -> AdmissionGuard:
        clock = Clock()
        guard = AdmissionGuard(max_wait=1.0, max_comments=8192, first_guess=lambda: 0.01, clock=clock)
        assert guard.seconds_per_comment is None and guard.expected_wait(10) == 0.1
        try:
            async with guard.admit(10):
                clock.now += 3.0
                raise RuntimeError("the model failed")
        except RuntimeError:
            pass
        assert guard.seconds_per_comment is None and guard.in_flight == 0
        async with guard.admit(5000):  # idle: one maximal request always goes through
            clock.now += 10.0
        return guard

    guard = asyncio.run(run())
    assert guard.seconds_per_comment == 10.0 / 5000

"""Answer overload early: refuse scoring work that would wait longer than `max_wait` with 503.

Usage (the scoring service does this around every scoring call, /v1/score and /v1/stream alike):
    guard = AdmissionGuard(max_wait=1.0, max_comments=8192)
    async with guard.admit(len(comments)):     # raises ApiError 503 + Retry-After when overloaded
        ...score and store...

The guard counts the comments admitted and not yet answered (in flight) and learns how long the
server takes per comment while it is busy: the time between consecutive answers, from the moment it
went from idle to busy, divided by the comments answered, in sums that forget with a time constant of
`DECAY_SECONDS`. Answers come in bursts (a batch answers all its comments at once) and out of
arrival order (the batcher sorts a pool of requests by length), so a per-call latency / queue-length
sample would overstate the cost of a call that waited behind later arrivals: a first version did,
and then refused comments at concurrency 64 that the server had time for. A new call is refused when
comments are already in flight and `(in flight + its comments) x seconds per comment` exceeds
`max_wait`, or when in-flight comments would pass `max_comments`. An idle server always admits (so
one maximal request always goes through), and the estimate is re-learned from every answer, so it
follows the model's real speed on the machine at hand. Other routes that do heavy work can wrap it
the same way.

/v1/stream is checked once, when it opens; its lines are then counted but never refused (a stream
holds at most `stream_window` lines in flight, and slows down rather than fail lines).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request

from serving.api.errors import ApiError

DECAY_SECONDS = 5.0  # busy time older than this weighs e^-1 in the estimate


class AdmissionGuard:
    def __init__(
        self,
        max_wait: float,
        max_comments: int,
        first_guess: Callable[[], float | None] = lambda: None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.max_wait = max_wait
        self.max_comments = max_comments
        self.first_guess = first_guess  # e.g. the warm-up batch's time per comment
        self.in_flight = 0
        self.refused = 0
        self._clock = clock
        self._since: float | None = None  # last answer, or when the server went busy; None while idle
        self._busy = 0.0  # busy seconds and comments answered in them, both decayed with time
        self._answered = 0.0

    @property
    def seconds_per_comment(self) -> float | None:
        """Learned; None until the first call is answered."""
        return self._busy / self._answered if self._answered else None

    def _answer(self, comments: int, done: bool) -> None:
        now = self._clock()
        if self._since is not None:
            elapsed = max(0.0, now - self._since)
            keep = math.exp(-elapsed / DECAY_SECONDS)
            self._busy = self._busy * keep + (elapsed if done else 0.0)
            self._answered = self._answered * keep + (comments if done else 0)
        self._since = now if self.in_flight else None

    def expected_wait(self, comments: int) -> float:
        per_comment = self.seconds_per_comment if self.seconds_per_comment is not None else self.first_guess()
        return (self.in_flight + comments) * (per_comment or 0.0)

    def _refuse(self, comments: int) -> ApiError:
        self.refused += 1
        wait = self.expected_wait(comments)
        retry = max(1, math.ceil(wait - self.max_wait))
        return ApiError(
            503,
            f"server busy: {self.in_flight} comments in flight, about {wait:.1f} s of work ahead "
            f"(limit {self.max_wait:g} s); retry in {retry} s",
            kind="overloaded",
            headers={"Retry-After": str(retry)},
        )

    def overloaded(self, comments: int) -> bool:
        ahead = self.in_flight
        return ahead > 0 and (ahead + comments > self.max_comments or self.expected_wait(comments) > self.max_wait)

    def check(self, comments: int = 1) -> None:
        """Raise the 503 now if `comments` more would be refused (e.g. before opening a stream)."""
        if self.overloaded(comments):
            raise self._refuse(comments)

    @asynccontextmanager
    async def admit(self, comments: int, *, refuse: bool = True) -> AsyncIterator[None]:
        """Count `comments` in flight while the block runs; refuse them first when overloaded
        (`refuse=False`: count and learn only, for work already admitted, like an open stream's lines)."""
        if refuse and self.overloaded(comments):
            raise self._refuse(comments)
        if not self.in_flight:
            self._since = self._clock()
        self.in_flight += comments
        ok = False
        try:
            yield
            ok = True
        finally:
            self.in_flight -= comments
            self._answer(comments, ok)


async def get_guard(request: Request) -> AdmissionGuard:
    """The app's guard (the scoring service's): `guard: GuardDep` in a route, then
    `async with guard.admit(n): ...` around heavy work."""
    guard: AdmissionGuard = request.app.state.scoring.guard
    return guard


GuardDep = Annotated[AdmissionGuard, Depends(get_guard)]

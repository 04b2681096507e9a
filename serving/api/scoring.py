"""Score comments through the batcher and, unless told not to, store them idempotently.

Usage: `results = await service.score(comments, store=True)`; results follow the input order.

A comment is identified by (community_id, id), and its text never changes once stored:
- already stored with the same text: its stored result is returned (not scored or stored again);
- already stored with a different text: ApiError 409, and nothing of the request's conflicting
  comments is stored (a resend under a new id is the way to score an edited text).
Two requests racing with the same comment both score it, one insert wins, and both answer with the
winner's stored result (or 409 for the loser if its text differed), so the store counts it once and
never holds a text other than the one its scores belong to. Writes go through the GroupWriter (one
transaction for everything waiting); reads run on the thread pool.

Every call passes the AdmissionGuard first (serving.api.overload): overload is refused with 503
before any work starts. A store that cannot take writes raises StoreUnavailable (503).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from anyio import to_thread

from serving.api.errors import ApiError
from serving.api.metrics import Metrics
from serving.api.overload import AdmissionGuard
from serving.api.schemas import CommentIn, ScoredComment
from serving.engine.batching import BatcherStopped, Item, Scored
from serving.runtime import Runtime
from serving.storage.comments import Key, StoredResult, find_results
from serving.storage.db import StoreUnavailable
from serving.storage.writer import WriterStopped
from serving.timefmt import utcnow


def key_of(comment: CommentIn) -> Key:
    return (comment.community_id or "", comment.id)


def text_conflict(comments: Sequence[CommentIn], positions: Sequence[int]) -> ApiError:
    first = comments[positions[0]]
    where = f" in community {json.dumps(first.community_id)}" if first.community_id else ""
    more = f" (and {len(positions) - 1} more)" if len(positions) > 1 else ""
    return ApiError(
        409,
        f"comments[{positions[0]}].id (id {json.dumps(first.id)}): already stored{where} with a different text"
        f"{more}; a stored comment's text cannot change: send an edited text under a new id",
        kind="conflict",
        loc=("body", "comments", positions[0], "id"),
    )


class ScoringService:
    """One per app (`app.state.scoring`), over the runtime's batcher, store and writer.

    Call `check_ready()` first: it raises ModelUnavailable (answered 503) until the model is loaded.
    """

    def __init__(self, runtime: Runtime, metrics: Metrics) -> None:
        self.runtime = runtime
        self.metrics = metrics
        settings = runtime.settings
        self.guard = AdmissionGuard(
            max_wait=settings.max_queue_wait_ms / 1000,
            max_comments=settings.max_queue,
            first_guess=lambda: runtime.warmup_seconds_per_comment,
        )

    def check_ready(self) -> None:
        self.runtime.require_ready()

    @property
    def model_name(self) -> str:
        return self.runtime.model_name

    @property
    def model_version(self) -> str:
        return self.runtime.model_version

    def _find(self, keys: Sequence[Key]) -> dict[Key, StoredResult]:
        with self.runtime.sessions() as session:
            return find_results(session, keys)

    async def score(self, comments: Sequence[CommentIn], *, store: bool, admitted: bool = False) -> list[ScoredComment]:
        """`admitted`: the caller already passed the overload check (an open stream's lines)."""
        batcher = self.runtime.batcher
        if batcher is None:
            raise BatcherStopped("the model is not ready")
        async with self.guard.admit(len(comments), refuse=not admitted):
            return await self._score(comments, store=store)

    async def _score(self, comments: Sequence[CommentIn], *, store: bool) -> list[ScoredComment]:
        batcher = self.runtime.batcher
        if batcher is None:
            raise BatcherStopped("the model is not ready")
        keys = [key_of(c) for c in comments]
        stored = await to_thread.run_sync(self._find, keys) if store else {}
        changed = [i for i, k in enumerate(keys) if k in stored and stored[k].text != comments[i].text]
        if changed:
            raise text_conflict(comments, changed)
        todo = [i for i, k in enumerate(keys) if k not in stored]
        fresh = await batcher.score([Item(comments[i].text, comments[i].lang) for i in todo])
        self.metrics.count_scored([s.tags for s in fresh])
        results: dict[int, Scored | StoredResult] = dict(zip(todo, fresh, strict=True))
        if store and todo:
            now = utcnow()
            rows = [comments[i].stored_row(fresh_i, now) for i, fresh_i in zip(todo, fresh, strict=True)]
            try:
                # Stored meanwhile by a concurrent request: answer with what is stored.
                replaced = await self.runtime.writer.write(rows)
            except WriterStopped as exc:
                raise StoreUnavailable("the server is shutting down") from exc
            raced = [i for i in todo if keys[i] in replaced and replaced[keys[i]].text != comments[i].text]
            if raced:
                raise text_conflict(comments, raced)
            results.update({i: replaced[keys[i]] for i in todo if keys[i] in replaced})
        for i, k in enumerate(keys):
            if k in stored:
                results[i] = stored[k]
        return [
            ScoredComment(id=c.id, scores=r.scores, tags=r.tags, lang=r.lang, truncated=r.truncated)
            for c, r in ((comments[i], results[i]) for i in range(len(comments)))
        ]

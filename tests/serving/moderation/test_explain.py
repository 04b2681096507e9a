"""Word highlights for hostile scores: occlusion through the micro-batcher and its queue limit."""

from __future__ import annotations

import asyncio
import threading

from anyio import to_thread

from serving.engine.batching import Item, MicroBatcher
from serving.moderation.explain import MAX_UNITS, Explainer, segments, units
from tests.serving.conftest import FakePredictor


def explain(batcher: MicroBatcher, explainer: Explainer, *texts: str) -> list:
    """hostile_spans as a page calls it: from a worker thread of the event loop."""

    async def main():
        return [await to_thread.run_sync(explainer.hostile_spans, batcher, t) for t in texts]

    return asyncio.run(main())


def started(predictor: FakePredictor, **kwargs) -> MicroBatcher:
    batcher = MicroBatcher(predictor, max_wait_ms=0, **kwargs)
    batcher.start()
    return batcher


def test_units_are_words_or_cjk_characters():
    text = "go back, 滚回去 now"
    assert [text[a:b] for a, b in units(text)] == ["go", "back,", "滚", "回", "去", "now"]


def test_long_comments_are_grouped():
    text = " ".join(f"w{i}" for i in range(100))
    spans = units(text)
    assert len(spans) <= MAX_UNITS
    assert spans[0][0] == 0 and spans[-1][1] == len(text)


def test_explainer_marks_the_words_that_drive_the_score_and_caches():
    predictor = FakePredictor()  # hostile when the text holds "go back" or "idiot"
    batcher = started(predictor)
    explainer = Explainer()
    try:
        both, spans = explain(batcher, explainer, "well, go back home you idiot", "please go back home")
        calls = len(predictor.batches)
        (again,) = explain(batcher, explainer, "please go back home")
    finally:
        batcher.stop()
    assert both == []  # either phrase alone keeps it hostile
    text = "please go back home"
    assert [text[a:b] for a, b in spans] == ["go", "back"]
    assert again == spans and len(predictor.batches) == calls
    assert segments(text, spans) == [
        ("please ", False),
        ("go", True),
        (" ", False),
        ("back", True),
        (" home", False),
    ]


def test_highlights_wait_their_turn_and_give_up_when_the_queue_is_full():
    predictor = FakePredictor()
    predictor.gate.clear()  # the model is busy
    batcher = started(predictor, max_queue=4)
    explainer = Explainer()
    text = "please go back home"  # 5 texts to score: the comment and one per word

    async def main():
        busy = asyncio.ensure_future(batcher.score([Item("held by the model")]))
        await asyncio.sleep(0.05)
        waiting = asyncio.ensure_future(batcher.score([Item("waiting")]))
        await asyncio.sleep(0.05)
        full = await to_thread.run_sync(explainer.hostile_spans, batcher, text)  # 1 + 5 > 4 comments
        predictor.gate.set()
        await asyncio.gather(busy, waiting)
        return full, await to_thread.run_sync(explainer.hostile_spans, batcher, text)

    try:
        full, later = asyncio.run(main())
    finally:
        batcher.stop()
    assert full == []  # nothing cached: asked again once the queue has room, it answers
    assert [text[a:b] for a, b in later] == ["go", "back"]


def test_thread_page_marks_words_only_for_the_model_that_scored(moderator, sessions):
    from tests.serving.moderation.conftest import thread_pk

    pk = thread_pk(sessions, "c1", "t1")
    predictor = moderator.app.state.runtime.predictor
    model_threads = set()
    scoring = predictor.predict_encoded

    def recorded(encoded, batch_size=32):
        model_threads.add(threading.current_thread().name)
        return scoring(encoded, batch_size)

    predictor.predict_encoded = recorded
    try:
        page = moderator.get(f"/moderation/threads/{pk}")
    finally:
        del predictor.predict_encoded
    assert '<mark class="driver" title="drove the hostile score">go</mark>' in page.text
    assert {name.rsplit("-", 1)[0] for name in model_threads} == {"belong-batcher"}  # through the batcher, not the page
    moderator.app.state.runtime.predictor.version = "0.2"  # a newer model now serves: no guesses
    try:
        page = moderator.get(f"/moderation/threads/{pk}")
    finally:
        moderator.app.state.runtime.predictor.version = "0.1"
    assert "<mark" not in page.text

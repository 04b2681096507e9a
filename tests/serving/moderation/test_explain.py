"""Word highlights for hostile scores: occlusion through the predictor."""

from __future__ import annotations

from serving.moderation.explain import MAX_UNITS, Explainer, segments, units
from tests.serving.conftest import FakePredictor


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
    explainer = Explainer()
    text = "well, go back home you idiot"
    assert explainer.hostile_spans(predictor, text) == []  # either phrase alone keeps it hostile
    text = "please go back home"
    spans = explainer.hostile_spans(predictor, text)
    assert [text[a:b] for a, b in spans] == ["go", "back"]
    calls = len(predictor.batches)
    assert explainer.hostile_spans(predictor, text) == spans and len(predictor.batches) == calls
    assert segments(text, spans) == [
        ("please ", False),
        ("go", True),
        (" ", False),
        ("back", True),
        (" home", False),
    ]


def test_thread_page_marks_words_only_for_the_model_that_scored(moderator, sessions):
    from tests.serving.moderation.conftest import thread_pk

    pk = thread_pk(sessions, "c1", "t1")
    page = moderator.get(f"/moderation/threads/{pk}")
    assert '<mark class="driver" title="drove the hostile score">go</mark>' in page.text
    moderator.app.state.runtime.predictor.version = "0.2"  # a newer model now serves: no guesses
    try:
        page = moderator.get(f"/moderation/threads/{pk}")
    finally:
        moderator.app.state.runtime.predictor.version = "0.1"
    assert "<mark" not in page.text

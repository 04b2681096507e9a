"""Sentence spans and their UTF-16 offsets."""

from __future__ import annotations

from serving.perspective.spans import sentence_spans, utf16_length


def utf16_piece(text: str, begin: int, end: int) -> str:
    return text.encode("utf-16-le")[2 * begin : 2 * end].decode("utf-16-le")


def test_sentences_in_latin_cjk_and_arabic_text():
    text = "Hi there.  Where are you from?\n欢迎欢迎。常来玩！你是哪里人？ مرحبا؟ ok"
    spans = sentence_spans(text)
    assert [s.text for s in spans] == [
        "Hi there.",
        "Where are you from?",
        "欢迎欢迎。",
        "常来玩！",
        "你是哪里人？",
        "مرحبا؟",
        "ok",
    ]
    assert all(utf16_piece(text, s.begin, s.end) == s.text for s in spans)


def test_offsets_count_surrogate_pairs_twice():
    text = "🤗🤗 hi! 𠀀 yes."
    spans = sentence_spans(text)
    assert [(s.begin, s.end) for s in spans] == [(0, 8), (9, 16)]
    assert utf16_length(text) == 16 == len(text.encode("utf-16-le")) // 2


def test_no_terminator_is_one_span_and_decimals_do_not_split():
    assert [s.text for s in sentence_spans("  pi is 3.14 and e 2.71  ")] == ["pi is 3.14 and e 2.71"]


def test_many_sentences_are_capped():
    spans = sentence_spans("a. " * 50, max_spans=4)
    assert len(spans) == 4
    assert spans[-1].begin == 9 and spans[-1].end == len("a. " * 50) - 1

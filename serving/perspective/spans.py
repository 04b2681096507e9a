"""Sentences of a comment and their offsets in UTF-16 code units, as Perspective's spanScores count.

Usage:
    for span in sentence_spans("Hi there. 你好！"): span.text, span.begin, span.end   # end exclusive

A sentence ends at ., !, ?, …, ؟, ।, ۔ (plus closing quotes or brackets) followed by white space,
at the full-width 。！？ (no space needed in CJK text), or at a line break. A regex rather than a
segmenter library: we need exact offsets into the original text, CJK punctuation, and no model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_SPANS = 32  # sentences past this many are scored together with the last one

_END = re.compile(
    r"""[.!?…؟।۔]+["'”’»)\]]*(?=\s|$)     # terminators followed by space or the end
      | [。！？]+[」』”’）]*               # full-width terminators: CJK needs no space
      | \n+                               # a line break always ends a sentence""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Span:
    text: str
    begin: int  # UTF-16 code units
    end: int  # exclusive


def utf16_offsets(text: str) -> list[int]:
    """offsets[i] is the UTF-16 position of text[i] (offsets[len(text)] the length)."""
    offsets = [0] * (len(text) + 1)
    position = 0
    for i, ch in enumerate(text):
        offsets[i] = position
        position += 2 if ord(ch) > 0xFFFF else 1
    offsets[len(text)] = position
    return offsets


def utf16_length(text: str) -> int:
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _trimmed(text: str, start: int, stop: int) -> tuple[int, int]:
    while start < stop and text[start].isspace():
        start += 1
    while stop > start and text[stop - 1].isspace():
        stop -= 1
    return start, stop


def sentence_spans(text: str, max_spans: int = MAX_SPANS) -> list[Span]:
    """Non-empty sentences with their UTF-16 [begin, end); one span for the whole text at least."""
    bounds: list[tuple[int, int]] = []
    start = 0
    for match in _END.finditer(text):
        piece = _trimmed(text, start, match.end())
        if piece[0] < piece[1]:
            bounds.append(piece)
        start = match.end()
    tail = _trimmed(text, start, len(text))
    if tail[0] < tail[1]:
        bounds.append(tail)
    if not bounds:
        bounds = [_trimmed(text, 0, len(text))]
    if len(bounds) > max_spans:
        bounds = bounds[: max_spans - 1] + [(bounds[max_spans - 1][0], bounds[-1][1])]
    offsets = utf16_offsets(text)
    return [Span(text[a:b], offsets[a], offsets[b]) for a, b in bounds]

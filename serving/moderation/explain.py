"""Which words drove a hostile score: occlusion through the served model.

Usage (from a page's worker thread, not the event loop):
    explainer = Explainer()
    spans = explainer.hostile_spans(runtime.batcher, "go back to tiktok, idiot")   # [(0, 2), (3, 7), ...]

Each word (or each CJK / kana / hangul character, or a group of neighbouring words in a long
comment) is removed in turn and the comment scored again; a unit whose removal lowers the hostile
probability by at least MIN_DROP, and is among the TOP strongest, is marked. It costs one model
call per unit, so comments are split into at most MAX_UNITS units and results are cached.
The model only sees the comment text, so this is only offered when the predictor that serves now
is the one that scored the comment. The texts go through the server's micro-batcher like any API
request: they share its batches, never run the model beside it, and count against its queue limit;
when the queue is full the page shows no highlights (and caches nothing) rather than wait.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections import OrderedDict

from anyio import from_thread

from serving.engine.batching import BatcherStopped, Item, MicroBatcher, Overloaded

log = logging.getLogger(__name__)

# A CJK ideograph, kana or hangul syllable is a unit on its own; other runs of letters/digits are words.
UNIT_RE = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\s\u3040-\u30ff\u3400-\u4dbf"
    r"\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+"
)
MAX_UNITS = 24
MAX_CHARS = 2000  # longer comments are not explained (the model window is shorter anyway)
MIN_DROP = 0.1
TOP = 4
CACHE_SIZE = 4096

Span = tuple[int, int]


def units(text: str) -> list[Span]:
    """Character spans of the units, neighbours merged so there are at most MAX_UNITS."""
    spans = [m.span() for m in UNIT_RE.finditer(text)]
    if len(spans) <= MAX_UNITS:
        return spans
    size = -(-len(spans) // MAX_UNITS)
    return [(spans[i][0], spans[min(i + size, len(spans)) - 1][1]) for i in range(0, len(spans), size)]


def _hostile_scores(batcher: MicroBatcher, texts: list[str]) -> list[float]:
    """Through the batcher, from a worker thread of the server's event loop (FastAPI runs sync
    routes in one). The language is not needed: "und" spares the detection."""
    scored = from_thread.run(batcher.score, [Item(t, lang="und") for t in texts])
    return [float(s.scores["hostile"]) for s in scored]


class Explainer:
    def __init__(self, cache_size: int = CACHE_SIZE) -> None:
        self._cache: OrderedDict[str, list[Span]] = OrderedDict()
        self._lock = threading.Lock()
        self.cache_size = cache_size

    def hostile_spans(self, batcher: MicroBatcher, text: str) -> list[Span]:
        """Spans of `text` that drove its hostile score, in text order (empty when none stands out,
        or when the batcher is too busy to ask)."""
        if not text.strip() or len(text) > MAX_CHARS:
            return []
        predictor = batcher.predictor
        key = hashlib.sha256(f"{predictor.name}\0{predictor.version}\0{text}".encode()).hexdigest()
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        spans = units(text)
        if not spans:
            return []
        texts = [text] + [(text[:a] + text[b:]).strip() or "." for a, b in spans]
        try:
            scores = _hostile_scores(batcher, texts)
        except (Overloaded, BatcherStopped) as exc:
            log.info("no highlights for now: %s", exc)
            return []
        base = scores[0]
        drops = sorted(((base - s, span) for s, span in zip(scores[1:], spans, strict=True)), reverse=True)
        marked = sorted(span for drop, span in drops[:TOP] if drop >= MIN_DROP)
        with self._lock:
            self._cache[key] = marked
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return marked


def segments(text: str, spans: list[Span]) -> list[tuple[str, bool]]:
    """`text` cut into (piece, marked) pieces."""
    out: list[tuple[str, bool]] = []
    at = 0
    for a, b in spans:
        if a > at:
            out.append((text[at:a], False))
        out.append((text[a:b], True))
        at = b
    if at < len(text):
        out.append((text[at:], False))
    return out

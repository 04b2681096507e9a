"""Language of a comment: the caller's hint when given, else py3langid (offline, numpy only).

Usage:
    detect = language_detector(["en", "es", "zh"], min_confidence=0.3)
    detect("Bienvenida, amiga")   # -> "es"; "und" (undetermined) when unsure, e.g. for "ok"

Short comments carry few features, so the detector picks among a configured set of languages
(BELONG_LANGUAGES) rather than all 97 py3langid knows, and answers "und" below `min_confidence`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

from py3langid.langid import MODEL_FILE, LanguageIdentifier

UNDETERMINED = "und"
DEFAULT_LANGUAGES = "en,zh,es,ja,ko,ar,de,fr,pt,it,ru,uk,hi,id,ms,tl,vi,th,tr,nl,pl,sv,fa,he"


@lru_cache(maxsize=8)
def _identifier(languages: tuple[str, ...]) -> LanguageIdentifier:
    """Loading the model takes about a second: once per process and language set."""
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    known = set(identifier.nb_classes)
    unknown = sorted(set(languages) - known)
    if unknown:
        raise ValueError(f"py3langid does not know the language code(s) {unknown}; known: {sorted(known)}")
    if languages:
        identifier.set_languages(list(languages))
    return identifier


def parse_languages(value: str) -> tuple[str, ...]:
    return tuple(sorted({code.strip() for code in value.split(",") if code.strip()}))


def language_detector(languages: Sequence[str], min_confidence: float) -> Callable[[str], str]:
    """A thread-safe `text -> ISO 639-1 code` function; ValueError for unknown language codes."""
    identifier = _identifier(tuple(sorted(languages)))

    def detect(text: str) -> str:
        lang, probability = identifier.classify(text)
        return str(lang) if probability >= min_confidence else UNDETERMINED

    return detect

"""belonging's Python API: tag comments as welcoming / curious / hostile with a model bundle.

Usage:
    from belonging import Tagger

    tagger = Tagger.load("models/default")
    for result in tagger.score(["Welcome to RedNote!! Where are you from?", "滚回去，没人欢迎你们"]):
        print(result.tags, result.scores, result.lang)
    scored = tagger.score_frame(df, text_column="text")   # pandas: adds score_<tag>, tags, lang, truncated

The same code scores for `belong serve`, `belong score`, `belong consume` and `belong spark-score`.
Importing this package loads neither a web framework nor a database layer. Guide: docs/python-api.md.
"""

from __future__ import annotations

from serving.engine.batching import Scored
from serving.engine.bundle import BundleError
from serving.engine.tagger import Tagger

__all__ = ["BundleError", "Scored", "Tagger"]

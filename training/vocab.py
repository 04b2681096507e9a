"""Vocabulary pruning: keep the token ids that real comments use, drop the other embedding rows.

Usage:
    corpus = vocab_corpus(corpora_dir, [Path("seeds"), Path("data/challenge")], prepared, holdout=0.1)
    plan = plan_vocabulary(tokenizer_json, corpus.fit_texts)
    pruned_json = prune_tokenizer(tokenizer_json, plan.kept)     # a Unigram tokenizer.json, ids remapped
    prune_embeddings(onnx_model, plan.kept)                      # word-embedding rows, same order
    report = coverage(tokenizer_json, pruned_json, plan.kept, corpus.holdout)

multilingual-e5-small inherits XLM-R's 250k-piece SentencePiece vocabulary: its word embeddings are
80% of the weights, and most pieces never occur in comments in our languages. A piece is kept when
the fit corpus uses it, and every single-character piece is kept too, so that a word made of
dropped pieces is spelt with smaller kept ones (the Unigram model re-segments it) instead of
becoming <unk>; only characters the full vocabulary had no piece for, or whose piece is gone, fall
back to <unk>. Languages the corpora barely have (ja, ru, tr, vi, id here) are covered by the most
frequent words of each language from `wordfreq`'s lists (built from Wikipedia, subtitles, news,
books, Twitter and Reddit): their pieces are kept even though no corpus comment used them, so the
common words of those languages keep their own pieces. A comment whose pieces are all kept is
tokenized exactly as before (removing pieces never makes the old best segmentation worse), so its
scores only move by what int8 moves them.
Special tokens keep their ids (0-3 in XLM-R order), so padding and the template are unchanged.
"""

from __future__ import annotations

import copy
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

log = logging.getLogger(__name__)

EVAL_ONLY_FILES = {"rednote_dev.jsonl"}  # evaluation only: never fit anything on it


class VocabError(ValueError):
    """A tokenizer or model that vocabulary pruning cannot handle."""


@dataclass
class CorpusText:
    text: str
    lang: str
    origin: str  # the file it came from (stem), for the per-source report


@dataclass
class VocabCorpus:
    fit: list[CorpusText] = field(default_factory=list)  # token ids used here are kept
    holdout: list[CorpusText] = field(default_factory=list)  # real comments never looked at: coverage
    # The run's held-out seed rows (dev and test): coverage in languages the corpora do not have.
    seed_holdout: list[CorpusText] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def fit_texts(self) -> list[str]:
        return [c.text for c in self.fit]


def stable_bucket(text: str, buckets: int = 1000) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") % buckets


def read_texts(path: Path) -> Iterable[CorpusText]:
    """`text` (and `lang`) of every JSON line; lines without a text are skipped."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            text = row.get("text") if isinstance(row, dict) else None
            if isinstance(text, str) and text.strip():
                yield CorpusText(text, str(row.get("lang") or "und"), path.stem)


def vocab_corpus(
    corpora: Path | None,
    folders: Sequence[Path],
    prepared: Sequence[Any] = (),
    *,
    holdout: float = 0.1,
) -> VocabCorpus:
    """The texts whose tokens are kept, and held-out real comments to measure coverage on.

    Every `*.jsonl` of the corpora folder (but rednote_dev, evaluation only) and of `folders` (seeds,
    challenge sets), plus the labelled rows of the run (`prepared`: rows with text, lang, split).
    Texts of the run's dev and test rows are never fit on (the quality figures stay honest), and a
    stable `holdout` share of the corpora's texts is kept aside to measure coverage on.
    """
    out = VocabCorpus()
    excluded = {r.text for r in prepared if getattr(r, "split", None) in ("dev", "test")}
    seen: set[str] = set()
    cut = round(holdout * 1000)

    def add(item: CorpusText, real: bool) -> None:
        if item.text in seen:
            return
        seen.add(item.text)
        if item.text in excluded:
            return
        if real and stable_bucket(item.text) < cut:
            out.holdout.append(item)
        else:
            out.fit.append(item)

    if corpora is not None and corpora.is_dir():
        for path in sorted(corpora.glob("*.jsonl")):
            if path.name in EVAL_ONLY_FILES:
                continue
            out.files.append(str(path))
            for item in read_texts(path):
                add(item, real=True)
    for folder in folders:
        paths = sorted(folder.glob("*.jsonl")) if folder.is_dir() else [folder] if folder.is_file() else []
        for path in paths:
            out.files.append(str(path))
            for item in read_texts(path):
                add(item, real=False)
    for row in prepared:
        item = CorpusText(row.text, getattr(row, "lang", "und"), getattr(row, "source", "") or "data")
        if getattr(row, "split", None) in ("dev", "test") and item.origin == "seeds":
            out.seed_holdout.append(item)
        add(item, real=False)
    return out


@dataclass
class VocabPlan:
    kept: list[int]  # old ids, ascending: new id = position
    full_size: int
    used: int  # pieces the fit corpus used
    single_chars: int  # single-character pieces kept as a fallback beyond those used
    fit_comments: int
    fit_tokens: int
    wordlist_pieces: int = 0  # kept only because a frequent word of a wordlist language uses them

    def describe(self) -> dict[str, Any]:
        return {
            "kept": len(self.kept),
            "full": self.full_size,
            "used_by_corpus": self.used,
            "single_character_fallback": self.single_chars,
            "fit_comments": self.fit_comments,
            "fit_tokens": self.fit_tokens,
            "wordlist_pieces": self.wordlist_pieces,
        }


def unigram_model(tokenizer_json: dict) -> dict:
    model = tokenizer_json.get("model", {})
    if model.get("type") != "Unigram":
        raise VocabError(f"vocabulary pruning needs a Unigram tokenizer, got {model.get('type')!r}")
    return model


def special_ids(tokenizer_json: dict) -> set[int]:
    model = unigram_model(tokenizer_json)
    ids = {t["id"] for t in tokenizer_json.get("added_tokens", [])}
    if model.get("unk_id") is not None:
        ids.add(model["unk_id"])
    for token in (tokenizer_json.get("post_processor") or {}).get("special_tokens", {}).values():
        ids.update(token.get("ids", []))
    # <s> <pad> </s> <unk> by piece (XLM-R keeps them in the vocabulary, not as added tokens)
    for i, (piece, _score) in enumerate(model["vocab"][:8]):
        if piece.startswith("<") and piece.endswith(">"):
            ids.add(i)
    return ids


def token_counts(tokenizer: Tokenizer, texts: Sequence[str], prefix: str = "", chunk: int = 4096) -> Counter[int]:
    counts: Counter[int] = Counter()
    for start in range(0, len(texts), chunk):
        for encoding in tokenizer.encode_batch([prefix + t for t in texts[start : start + chunk]]):
            counts.update(encoding.ids)
    return counts


def plan_vocabulary(
    tokenizer_json: dict,
    texts: Sequence[str],
    *,
    prefix: str = "",
    min_count: int = 1,
    keep_single_chars: bool = True,
    wordlist_texts: Sequence[str] = (),
) -> VocabPlan:
    """Which ids to keep: specials, pieces used at least `min_count` times, pieces of the frequent
    words in `wordlist_texts` (see `wordlist_texts()`), single characters."""
    model = unigram_model(tokenizer_json)
    tokenizer = Tokenizer.from_str(json.dumps(tokenizer_json))
    counts = token_counts(tokenizer, texts, prefix)
    used = {i for i, c in counts.items() if c >= min_count}
    kept = used | special_ids(tokenizer_json)
    chars = set()
    if keep_single_chars:
        chars = {i for i, (piece, _s) in enumerate(model["vocab"]) if len(piece.lstrip("\u2581")) == 1} - kept
        kept |= chars
    from_words = set(token_counts(tokenizer, wordlist_texts, prefix)) - kept if wordlist_texts else set()
    kept |= from_words
    return VocabPlan(
        kept=sorted(kept),
        full_size=len(model["vocab"]),
        used=len(used),
        single_chars=len(chars),
        fit_comments=len(texts),
        fit_tokens=sum(counts.values()),
        wordlist_pieces=len(from_words),
    )


NO_SPACE_LANGUAGES = {"zh", "ja", "th"}  # written without spaces: words run into each other


def wordlist_texts(languages: Sequence[str], words: int, *, per_line: int = 12) -> list[str]:
    """The `words` most frequent words of each language (wordfreq's "best" list), lower-case and
    capitalised as they start sentences, `per_line` to a line, run together where the language
    writes no spaces (so pieces that span word boundaries appear as in real text)."""
    from itertools import islice

    try:
        from wordfreq import available_languages, iter_wordlist
    except ImportError as exc:  # part of the `train` extra
        raise VocabError("vocab_wordlist_words needs the wordfreq package (pip install -e '.[train]')") from exc
    known = available_languages("best")
    missing = [lang for lang in languages if lang not in known]
    if missing:
        raise VocabError(f"wordfreq has no word list for {', '.join(missing)} (it has {', '.join(sorted(known))})")
    lines: list[str] = []
    for lang in languages:
        top = list(islice(iter_wordlist(lang, "best"), words))
        forms = top + [w[:1].upper() + w[1:] for w in top if w[:1].islower()]
        sep = "" if lang in NO_SPACE_LANGUAGES else " "
        lines += [sep.join(forms[i : i + per_line]) for i in range(0, len(forms), per_line)]
    return lines


def prune_tokenizer(tokenizer_json: dict, kept: Sequence[int]) -> dict:
    """A copy of a Unigram tokenizer.json holding only `kept` pieces, ids renumbered in that order."""
    model = unigram_model(tokenizer_json)
    new_id = {old: new for new, old in enumerate(kept)}
    pruned = copy.deepcopy(tokenizer_json)
    pruned["model"]["vocab"] = [model["vocab"][i] for i in kept]
    unk = model.get("unk_id")
    if unk is not None:
        if unk not in new_id:
            raise VocabError(f"the unknown token (id {unk}) must be kept")
        pruned["model"]["unk_id"] = new_id[unk]
    for token in pruned.get("added_tokens", []):
        if token["id"] not in new_id:
            raise VocabError(f"added token {token['content']!r} (id {token['id']}) must be kept")
        token["id"] = new_id[token["id"]]
    for token in (pruned.get("post_processor") or {}).get("special_tokens", {}).values():
        token["ids"] = [new_id[i] for i in token.get("ids", [])]
    return pruned


def word_embedding_initializer(graph: Any) -> Any:
    """The initializer that `input_ids` indexes: a Gather of [vocab, hidden] rows by the ids."""
    initializers = {i.name: i for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Gather" and len(node.input) == 2 and node.input[1] == "input_ids":
            if node.input[0] in initializers and len(initializers[node.input[0]].dims) == 2:
                return initializers[node.input[0]]
    raise VocabError("no word-embedding Gather of input_ids found in the ONNX graph")


def prune_embeddings(model: Any, kept: Sequence[int]) -> tuple[int, int]:
    """Keep the word-embedding rows of `kept` ids, in that order (in place). Returns (old, new) rows."""
    import numpy as np
    from onnx import numpy_helper

    initializer = word_embedding_initializer(model.graph)
    weights = numpy_helper.to_array(initializer)
    if max(kept) >= weights.shape[0]:
        raise VocabError(f"token id {max(kept)} is beyond the {weights.shape[0]} embedding rows")
    rows = np.ascontiguousarray(weights[np.asarray(kept, dtype=np.int64)])
    initializer.CopyFrom(numpy_helper.from_array(rows, initializer.name))
    return int(weights.shape[0]), int(rows.shape[0])


def coverage(
    full_json: dict,
    pruned_json: dict,
    kept: Sequence[int],
    texts: Sequence[CorpusText],
    *,
    prefix: str = "",
    group: str = "lang",
) -> dict[str, dict[str, float | int]]:
    """Per language (or per origin): share of the full tokenizer's tokens that stay identical (same
    piece at the same characters) under the pruned one, share of comments tokenized exactly as
    before, and unknown tokens per 1,000 tokens, before and after."""
    full = Tokenizer.from_str(json.dumps(full_json))
    pruned = Tokenizer.from_str(json.dumps(pruned_json))
    unk_full = unigram_model(full_json).get("unk_id")
    unk_pruned = unigram_model(pruned_json).get("unk_id")
    stats: dict[str, Counter[str]] = defaultdict(Counter)
    batch = [prefix + t.text for t in texts]
    before = full.encode_batch(batch)
    after = pruned.encode_batch(batch)
    for item, a, b in zip(texts, before, after, strict=True):
        key = getattr(item, group)
        old = set(zip(a.ids, a.offsets, strict=True))
        new = {(kept[i], offsets) for i, offsets in zip(b.ids, b.offsets, strict=True)}
        s = stats[key]
        s["comments"] += 1
        s["tokens"] += len(a.ids)
        s["identical"] += len(old & new)
        s["same_comment"] += old == new
        s["unk_before"] += a.ids.count(unk_full) if unk_full is not None else 0
        s["unk_after"] += b.ids.count(unk_pruned) if unk_pruned is not None else 0
    out: dict[str, dict[str, float | int]] = {}
    for key in sorted(stats, key=lambda k: -stats[k]["comments"]):
        s = stats[key]
        out[key] = {
            "comments": s["comments"],
            "token_coverage": round(s["identical"] / max(1, s["tokens"]), 5),
            "comments_unchanged": round(s["same_comment"] / max(1, s["comments"]), 4),
            "unk_per_1k_before": round(1000 * s["unk_before"] / max(1, s["tokens"]), 3),
            "unk_per_1k_after": round(1000 * s["unk_after"] / max(1, s["tokens"]), 3),
        }
    return out

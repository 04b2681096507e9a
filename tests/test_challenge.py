"""The challenge sets' gates: functional test cases as minimal pairs, in every seed language, with a
held-out half that training never sees."""

import json
from collections import Counter
from pathlib import Path

import pytest

from scripts.seedlib import load_seeds, near_duplicates, normalize
from tests.conftest import ROOT

CHALLENGE = ROOT / "data" / "challenge"
LANGS = {"en", "zh", "es", "pt", "fr", "de", "it", "ja", "ko", "ar", "hi", "ru", "id", "vi", "tr"}
NOT_HOSTILE = {
    "group_neutral",
    "group_positive",
    "counter_quote",
    "counter_reference",
    "negated_hate",
    "profanity_no_target",
    "reclaimed_selfref",
    "civil_disagreement",
}
HOSTILE = {
    "derogation",
    "dehumanising",
    "threat",
    "slur",
    "exclusion",
    "spelling_variant",
    "hate_question",
    "hate_opinion",
}
FIELDS = {"id", "lang", "case", "pair", "target", "text", "welcoming", "curious", "hostile", "split"}


def _load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _load_folder(folder: Path) -> list[dict]:
    files = sorted(folder.glob("*.jsonl"))
    assert files, f"no files in {folder}"
    return [row for path in files for row in _load(path)]


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return _load_folder(CHALLENGE)


def test_schema_and_labels(rows):
    problems = []
    for row in rows:
        if set(row) != FIELDS:
            problems.append((row.get("id"), "fields", sorted(set(row) ^ FIELDS)))
        elif row["case"] not in NOT_HOSTILE | HOSTILE:
            problems.append((row["id"], "case", row["case"]))
        elif row["hostile"] != int(row["case"] in HOSTILE):
            problems.append((row["id"], "hostile does not match the case type"))
        elif any(row[t] not in (0, 1) for t in ("welcoming", "curious", "hostile")):
            problems.append((row["id"], "tags must be 0/1"))
        elif row["split"] not in ("train", "test") or not row["text"].strip():
            problems.append((row["id"], "split or text"))
    assert not problems, problems[:20]
    assert len({row["id"] for row in rows}) == len(rows), "ids must be unique"


def test_every_language_has_every_case_type_at_least_20_times(rows):
    counts = Counter((row["lang"], row["case"]) for row in rows)
    assert {row["lang"] for row in rows} == LANGS
    thin = {key: n for key, n in counts.items() if n < 20}
    missing = [(lang, case) for lang in LANGS for case in NOT_HOSTILE | HOSTILE if (lang, case) not in counts]
    assert not thin and not missing, (thin, missing)


def test_pairs_are_minimal_pairs_kept_in_one_split(rows):
    pairs: dict[str, list[dict]] = {}
    for row in rows:
        pairs.setdefault(row["pair"], []).append(row)
    broken = [
        pair
        for pair, members in pairs.items()
        if {m["hostile"] for m in members} != {0, 1} or len({m["split"] for m in members}) != 1
    ]
    assert not broken, broken[:20]


def test_a_held_out_part_of_every_case_type_in_every_language(rows):
    held = Counter((row["lang"], row["case"]) for row in rows if row["split"] == "test")
    thin = {
        (lang, case): held[(lang, case)] for lang in LANGS for case in NOT_HOSTILE | HOSTILE if held[(lang, case)] < 8
    }
    assert not thin, thin
    assert 0.4 < sum(held.values()) / len(rows) < 0.6


def test_no_duplicates_and_nothing_copied_from_the_seeds(rows):
    texts = [row["text"] for row in rows]
    keys = Counter(normalize(t) for t in texts)
    assert not [k for k, n in keys.items() if n > 1]
    seed_keys = {normalize(r["text"]) for rs in load_seeds().values() for r in rs}
    assert not [t for t in texts if normalize(t) in seed_keys]
    # Minimal pairs share words by design, so only near-copies across different pairs count.
    close = [(i, j) for i, j, _ in near_duplicates(texts, threshold=0.9) if rows[i]["pair"] != rows[j]["pair"]]
    assert len(close) <= len(rows) // 100, [(texts[i], texts[j]) for i, j in close[:5]]


COUNTERFACTUAL = ROOT / "data" / "counterfactual"


@pytest.fixture(scope="module")
def counterfactual() -> list[dict]:
    return _load_folder(COUNTERFACTUAL)


def test_counterfactual_training_pairs_are_minimal_pairs_in_every_language(counterfactual):
    fields = FIELDS - {"split"}
    assert not [r["id"] for r in counterfactual if set(r) != fields or r["hostile"] != int(r["case"] in HOSTILE)]
    assert {r["lang"] for r in counterfactual} == LANGS
    pairs: dict[str, list[dict]] = {}
    for row in counterfactual:
        pairs.setdefault(row["pair"], []).append(row)
    assert not [p for p, members in pairs.items() if sorted(m["hostile"] for m in members) != [0, 1]]
    assert len({r["id"] for r in counterfactual}) == len(counterfactual)


def test_counterfactual_pairs_copy_no_challenge_row_and_no_seed(rows, counterfactual):
    """They train the model; the challenge `test` half measures it, so no near-copy may cross over."""
    reference = [r["text"] for r in rows] + [r["text"] for rs in load_seeds().values() for r in rs]
    texts = reference + [r["text"] for r in counterfactual]
    crossing = [(i, j) for i, j, _ in near_duplicates(texts, threshold=0.8) if i < len(reference) <= j]
    assert not crossing, [(texts[i], texts[j]) for i, j in crossing[:5]]

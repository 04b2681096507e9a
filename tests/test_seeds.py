"""The seed corpus gates: schema, coverage per language, no templates in disguise, clean splits."""

import json
import re
from collections import Counter

import pytest

from scripts.seedlib import (
    SEEDS,
    TAGS,
    coverage,
    load_seeds,
    masked,
    near_duplicates,
    normalize,
    swapped_name_pairs,
)
from tests.conftest import ROOT
from training.data import read_assignment

REQUIRED_LANGS = {"en", "zh", "es", "pt", "fr", "de", "it", "ja", "ko", "ar", "hi", "ru", "id", "vi", "tr"}
FIELDS = {"id", "text", *TAGS, "lang", "kind"}
GATES = {
    "welcoming": 0.20,
    "curious": 0.20,
    "hostile": 0.20,
    "neutral": 0.25,
    "welcoming+curious": 0.08,
    "hard case (kind)": 0.15,
}


@pytest.fixture(scope="module")
def seeds():
    return load_seeds()


@pytest.fixture(scope="module")
def all_rows(seeds):
    return [row for rows in seeds.values() for row in rows]


def test_every_row_has_the_schema(seeds):
    problems = []
    for lang, rows in seeds.items():
        for number, row in enumerate(rows, start=1):
            where = f"seeds/{lang}.jsonl:{number}"
            if set(row) - FIELDS or not {"id", "text", *TAGS, "lang"} <= set(row):
                problems.append(f"{where}: fields {sorted(row)}")
                continue
            if not isinstance(row["text"], str) or not row["text"].strip():
                problems.append(f"{where}: empty text")
            if any(row[tag] not in (0, 1) or isinstance(row[tag], bool) for tag in TAGS):
                problems.append(f"{where}: tags must be 0/1 integers")
            if row["lang"] != lang:
                problems.append(f"{where}: lang {row['lang']!r} in the {lang} file")
            if not re.fullmatch(rf"{lang}-\d{{4}}", row["id"]):
                problems.append(f"{where}: id {row['id']!r} is not {lang}-NNNN")
            if "kind" in row and not re.fullmatch(r"[a-z][a-z0-9_]*", str(row["kind"])):
                problems.append(f"{where}: kind {row['kind']!r} is not snake_case")
    assert problems == []


def test_ids_are_unique_across_files(all_rows):
    repeated = [i for i, n in Counter(row["id"] for row in all_rows).items() if n > 1]
    assert repeated == []


def test_size_and_languages(seeds, all_rows):
    assert len(all_rows) >= 4000
    assert REQUIRED_LANGS <= set(seeds)
    assert len(seeds["en"]) >= 700 and len(seeds["zh"]) >= 700
    small = {lang: len(rows) for lang, rows in seeds.items() if len(rows) < 150}
    assert small == {}


def test_coverage_gates_per_language(seeds):
    failing = {}
    for lang, rows in seeds.items():
        shares = coverage(rows)
        below = {key: round(shares[key], 3) for key, floor in GATES.items() if shares[key] < floor}
        if below:
            failing[lang] = below
    assert failing == {}


def test_hard_cases_are_varied(seeds):
    for lang, rows in seeds.items():
        kinds = {row["kind"] for row in rows if row.get("kind")}
        assert len(kinds) >= 8, f"{lang}: only {sorted(kinds)}"


def test_no_near_duplicates_across_the_corpus(all_rows):
    texts = [row["text"] for row in all_rows]
    pairs = [(all_rows[i]["id"], all_rows[j]["id"], score) for i, j, score in near_duplicates(texts, 0.8)]
    assert pairs == []


def test_no_rows_that_differ_only_by_a_swapped_name_or_place(all_rows):
    pairs = [(all_rows[i]["id"], all_rows[j]["id"]) for i, j in swapped_name_pairs([r["text"] for r in all_rows])]
    assert pairs == []


def test_duplicate_detectors_catch_templates():
    # The gates above are only worth something if they fire on the templates they exist to stop.
    texts = [
        "Welcome to RedNote, friend! Where in the world do you live these days?",
        "welcome to rednote friend!! where in the world do u live these days??",
        "Totally different sentence about cats and dumplings.",
    ]
    assert [(i, j) for i, j, _ in near_duplicates(texts, 0.8)] == [(0, 1)]
    swapped = [
        "Americans are so dumb, go back to TikTok already",
        "Germans are so dumb, go back to TikTok already",
        "Maria from Brazil says hi to everyone here",
        "Kenji from Japan says hi to everyone here",
    ]
    assert swapped_name_pairs(swapped) == [(0, 1), (2, 3)]
    assert normalize("Hi, THERE!!") == "hithere" and masked("Joe is 25") == "nis0"


def test_split_assignment_covers_every_seed_once_and_is_stratified(all_rows):
    path = ROOT / "data" / "splits.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    ids = [line["id"] for line in lines]
    assert len(ids) == len(set(ids)), "an id appears in two splits"
    assignment = read_assignment(path)
    assert set(assignment) == {row["id"] for row in all_rows}
    for lang in {row["lang"] for row in all_rows}:
        rows = [row for row in all_rows if row["lang"] == lang]
        counts = Counter(assignment[row["id"]] for row in rows)
        assert 0.06 <= counts["dev"] / len(rows) <= 0.14 and 0.06 <= counts["test"] / len(rows) <= 0.14, lang
        for split in ("dev", "test"):
            members = [row for row in rows if assignment[row["id"]] == split]
            assert all(any(row[tag] for row in members) for tag in TAGS), (lang, split)


def test_seeds_readme_table_is_current():
    from scripts.seeds_table import render_tables

    readme = (SEEDS / "README.md").read_text(encoding="utf-8")
    assert render_tables(load_seeds()) in readme, "run `make seeds-table` to refresh seeds/README.md"

"""scripts/compare_bundles.py on a tiny corpus, two labelled rounds and the real tiny bundle."""

from __future__ import annotations

import json
import shutil

import pytest

from scripts.compare_bundles import main


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def test_scores_test_splits_or_whole_rounds_with_the_same_rows_for_every_bundle(tmp_path, tiny_bundle):
    corpora, rounds = tmp_path / "corpora", tmp_path / "annotations"
    corpora.mkdir()
    rounds.mkdir()
    texts = ["welcome, friend!", "where are you from?", "go back home, loser", "the bus is late"] * 3
    _write(corpora / "c.jsonl", [{"id": f"c{i}", "lang": "en", "text": f"{t} {i}"} for i, t in enumerate(texts)])
    tags = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 0, 0)] * 3
    for name in ("real_v1.jsonl", "real_v2.jsonl"):
        _write(
            rounds / name,
            [
                {"id": f"c{i}", "corpus": "c.jsonl", "welcoming": w, "curious": c, "hostile": h}
                | {"split": "test" if i < 8 else "train"}
                for i, (w, c, h) in enumerate(tags)
            ],
        )
    extra = [
        {"text": f"{t} {k}", "welcoming": w, "curious": c, "hostile": h}
        for k in range(2)
        for t, (w, c, h) in zip(texts, tags, strict=True)
    ]
    _write(tmp_path / "extra.jsonl", extra)
    copy = shutil.copytree(tiny_bundle, tmp_path / "copy")
    args = [str(tiny_bundle), str(copy), "--annotations", str(rounds), "--corpora", str(corpora)]
    text = main([*args, "--whole", "real_v2.jsonl", "--eval", str(tmp_path / "extra.jsonl"), "--resamples", "200"])

    for title in ("macro-F1", "mean PR-AUC", "hostile PR-AUC"):
        assert title in text
    table = text.split("mean PR-AUC")[0].splitlines()
    v1 = next(line.split() for line in table if line.startswith("real_v1 "))
    v2 = next(line.split() for line in table if line.startswith("real_v2 (all)"))
    assert v1[1] == "8" and v2[2] == "12"  # the test split of round 1; every row of round 2
    assert v1[2] == v1[3] and 0.0 <= float(v1[2]) <= 1.0  # one model in two folders: the same figures
    pooled = text.split("paired bootstrap interval]")[1].strip().splitlines()
    # 8 + 12 rows of the rounds and 24 of the extra file: 5 or more positives of every tag in each
    assert [line.split()[0] for line in pooled] == ["rounds"] * 3 + ["extra.jsonl"] * 3
    assert all(line.endswith("+0.000 [+0.000, +0.000]") for line in pooled)  # the same model: no difference


def test_names_a_missing_corpora_folder(tmp_path, tiny_bundle, capsys):
    with pytest.raises(SystemExit):
        main([str(tiny_bundle), "--corpora", str(tmp_path / "nowhere")])
    assert "nowhere: no corpora folder" in capsys.readouterr().err

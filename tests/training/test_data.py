import json

import pytest

from training.data import (
    DataError,
    assign_splits,
    by_split,
    deduplicate,
    load_rows,
    normalize_text,
    read_assignment,
    stratified_split,
    write_assignment,
)


def write_lines(path, lines):
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines) + b"\n")
    return path


def test_jsonl_with_tag_columns_and_label_names(tmp_path):
    path = write_lines(
        tmp_path / "a.jsonl",
        [
            json.dumps({"id": "1", "text": "welcome!", "welcoming": 1, "curious": 0, "hostile": 0, "lang": "en"}),
            json.dumps({"text": "where from?", "labels": ["curious", "welcoming"]}),
            json.dumps({"text": "ok then", "label": "neutral"}),
            json.dumps({"text": "leave", "labels": "hostile"}),
        ],
    )
    report = load_rows([path])
    assert report.errors == []
    assert [r.labels for r in report.rows] == [
        {"welcoming": 1, "curious": 0, "hostile": 0},
        {"welcoming": 1, "curious": 1, "hostile": 0},
        {"welcoming": 0, "curious": 0, "hostile": 0},
        {"welcoming": 0, "curious": 0, "hostile": 1},
    ]
    assert report.rows[1].id == "a-2" and report.rows[1].lang == "und"


def test_bad_rows_are_reported_with_file_line_and_problem(tmp_path):
    path = write_lines(
        tmp_path / "bad.jsonl",
        [
            json.dumps({"text": "fine", "labels": []}),
            json.dumps({"welcoming": 1, "curious": 0, "hostile": 0}),
            json.dumps({"text": "hm", "labels": ["angry"]}),
            json.dumps({"text": "hm2", "welcoming": 2, "curious": 0, "hostile": 0}),
            b'{"text": "caf\xe9", "labels": []}',
            "{not json",
        ],
    )
    report = load_rows([path])
    assert len(report.rows) == 1
    assert report.errors == [
        f"{path}:2: missing text",
        f"{path}:3: unknown tag 'angry' in column 'labels' (known: welcoming, curious, hostile, neutral)",
        f"{path}:4: column 'welcoming' must be 0 or 1, found 2",
        f"{path}:5: invalid UTF-8 at byte 13",
        f"{path}:6: invalid JSON: Expecting property name enclosed in double quotes (column 2)",
    ]


def test_strict_stops_at_first_bad_row(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", [json.dumps({"text": "x", "hostile": 1})])
    with pytest.raises(DataError, match=r"bad.jsonl:1: missing tag column\(s\) \['welcoming', 'curious'\]"):
        load_rows([path], strict=True)


def test_csv_and_parquet_and_folders(tmp_path):
    import pandas as pd

    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.csv").write_text("text,welcoming,curious,hostile,lang\nhello all,1,0,0,en\nwhy?,0,1,0,en\n")
    pd.DataFrame({"text": ["bye", "scram"], "labels": ["", "hostile"]}).to_parquet(folder / "b.parquet")
    report = load_rows([folder])
    assert [(r.text, r.labels["hostile"]) for r in report.rows] == [
        ("hello all", 0),
        ("why?", 0),
        ("bye", 0),
        ("scram", 1),
    ]
    assert report.rows[1].origin.endswith("a.csv:3")


def test_missing_path_and_unsupported_type(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_rows([tmp_path / "nope.jsonl"])
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match=r"unsupported file type '.txt'"):
        load_rows([tmp_path / "x.txt"])


def test_deduplicate_on_normalized_text(tmp_path):
    path = write_lines(
        tmp_path / "d.jsonl",
        [
            json.dumps({"text": "Welcome  HOME", "labels": ["welcoming"]}),
            json.dumps({"text": "welcome home", "labels": ["welcoming"]}),
            json.dumps({"text": "ｗｅｌｃｏｍｅ home", "labels": ["hostile"]}),
            json.dumps({"text": "something else", "labels": []}),
        ],
    )
    rows, dropped, conflicts = deduplicate(load_rows([path]).rows)
    assert [r.text for r in rows] == ["Welcome  HOME", "something else"]
    assert (dropped, conflicts) == (2, 1)
    assert normalize_text("ｗｅｌｃｏｍｅ\t home ") == "welcome home"


def make_rows(tmp_path, n=200):
    lines = []
    for i in range(n):
        labels = ["welcoming"] if i % 3 == 0 else ["hostile"] if i % 3 == 1 else []
        lines.append(
            json.dumps(
                {
                    "id": f"r{i}",
                    "text": f"comment number {i} about things",
                    "labels": labels,
                    "lang": "en" if i % 2 else "zh",
                }
            )
        )
    return load_rows([write_lines(tmp_path / "rows.jsonl", lines)]).rows


def test_split_is_deterministic_stratified_and_disjoint(tmp_path):
    rows = make_rows(tmp_path)
    first = stratified_split(rows, 0.1, 0.1)
    second = stratified_split(list(reversed(rows)), 0.1, 0.1)
    assert first == second  # independent of file order
    splits = by_split(assign_splits(rows))
    assert {k: len(v) for k, v in splits.items()} == {"train": 160, "dev": 20, "test": 20}
    texts = {k: {r.text for r in v} for k, v in splits.items()}
    assert not texts["train"] & texts["dev"] and not texts["train"] & texts["test"] and not texts["dev"] & texts["test"]
    for split in ("dev", "test"):  # every language and tag reaches every split
        assert {r.lang for r in splits[split]} == {"en", "zh"}
        assert all(any(r.labels[t] for r in splits[split]) for t in ("welcoming", "hostile"))


def test_committed_assignment_and_row_split_win(tmp_path):
    rows = make_rows(tmp_path, 30)
    rows[0].split = "test"
    assignment_file = tmp_path / "splits.jsonl"
    write_assignment(assignment_file, {"r1": "dev", "r2": "train"})
    assigned = {r.id: r.split for r in assign_splits(rows, assignment=read_assignment(assignment_file))}
    assert (assigned["r0"], assigned["r1"], assigned["r2"]) == ("test", "dev", "train")


def test_bad_assignment_file_is_reported(tmp_path):
    path = write_lines(tmp_path / "splits.jsonl", [json.dumps({"id": "a", "split": "validation"})])
    with pytest.raises(DataError, match=r"splits.jsonl:1: expected"):
        read_assignment(path)

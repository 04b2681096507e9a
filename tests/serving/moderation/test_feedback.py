"""`belong feedback export`: reviewed comments become seed-schema rows that the trainer loads."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import update
from typer.testing import CliRunner

from belonging_cli.main import app as cli
from serving.moderation import review
from serving.moderation.audit import Actor
from serving.moderation.feedback import feedback_id
from serving.storage.moderation import CommentLabel
from serving.timefmt import utcnow
from tests.serving.moderation.conftest import comment_pk
from training.data import load_rows

runner = CliRunner()


def decide(sessions, users, community: str, comment: str, action: str, tag: str | None) -> None:
    with sessions.begin() as db:
        review.review_comment(
            db,
            comment_pk=comment_pk(sessions, community, comment),
            action=action,
            tag=tag,
            actor=Actor(id=users.moderator_id, name=users.moderator),
        )


def export(db_url: str, out, *extra: str) -> list[dict]:
    result = runner.invoke(cli, ["feedback", "export", "--out", str(out), "--database-url", db_url, *extra])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def test_export_writes_reviewed_comments_with_provenance(seeded, users, sessions, db_url, tmp_path):
    decide(sessions, users, "c1", "2", "reject", "hostile")  # a false positive
    decide(sessions, users, "c1", "1", "add", "welcoming")  # a missed tag
    decide(sessions, users, "c2", "x2", "accept", None)  # labels correct as they stand
    rows = export(db_url, tmp_path / "feedback.jsonl")
    by_id = {r["id"]: r for r in rows}
    assert sorted(by_id) == ["mod-c1-1", "mod-c1-2", "mod-c2-x2"]
    row = by_id["mod-c1-2"]
    assert {
        k: row[k]
        for k in (
            "text",
            "lang",
            "welcoming",
            "curious",
            "hostile",
            "source",
            "moderator",
            "model_name",
            "model_version",
            "model_tags",
            "reviewed_tags",
            "community_id",
            "comment_id",
        )
    } == {
        "text": "go back to tiktok, nobody asked",
        "lang": "en",
        "welcoming": 0,
        "curious": 0,
        "hostile": 0,
        "source": "moderation",
        "moderator": "mia",
        "model_name": "fake",
        "model_version": "0.1",
        "model_tags": ["hostile"],
        "reviewed_tags": ["hostile"],
        "community_id": "c1",
        "comment_id": "2",
    }
    assert row["reviewed_at"].endswith("Z") and len(row["reviewed_at"]) == 20
    assert (by_id["mod-c1-1"]["welcoming"], by_id["mod-c1-1"]["reviewed_tags"]) == (1, ["welcoming"])
    assert by_id["mod-c2-x2"]["hostile"] == 1 and by_id["mod-c2-x2"]["reviewed_tags"] == [
        "welcoming",
        "curious",
        "hostile",
    ]


def test_exported_rows_round_trip_into_the_training_loader(seeded, users, sessions, db_url, tmp_path):
    decide(sessions, users, "c1", "2", "reject", "hostile")
    decide(sessions, users, "c1", "3", "confirm", "curious")
    decide(sessions, users, "c2", "x1", "accept", None)  # text full of markup and an RLO: kept verbatim
    out = tmp_path / "feedback.jsonl"
    exported = {r["id"]: r for r in export(db_url, out)}
    report = load_rows([out], strict=True)
    assert report.errors == [] and len(report.rows) == 3
    for row in report.rows:
        source = exported[row.id]
        assert row.text == source["text"]
        assert row.labels == {tag: source[tag] for tag in ("welcoming", "curious", "hostile")}
        assert (row.lang, row.source, row.split) == (source["lang"], "moderation", None)
    assert {r.id: r.labels["hostile"] for r in report.rows} == {"mod-c1-2": 0, "mod-c1-3": 0, "mod-c2-x1": 1}


def test_since_keeps_only_recent_reviews(seeded, users, sessions, db_url, tmp_path):
    decide(sessions, users, "c1", "2", "reject", "hostile")
    with sessions.begin() as db:
        db.execute(update(CommentLabel).values(decided_at=utcnow() - timedelta(days=10)))
    decide(sessions, users, "c1", "4", "confirm", "hostile")
    since = (utcnow() - timedelta(days=2)).strftime("%Y-%m-%d")
    assert [r["id"] for r in export(db_url, tmp_path / "a.jsonl", "--since", since)] == ["mod-c1-4"]
    assert len(export(db_url, tmp_path / "b.jsonl")) == 2
    bad = runner.invoke(
        cli,
        [
            "feedback",
            "export",
            "--out",
            str(tmp_path / "c.jsonl"),
            "--since",
            "yesterday",
            "--database-url",
            db_url,
        ],
    )
    assert bad.exit_code == 2 and "expected YYYY-MM-DD or an RFC 3339 date-time" in bad.output


def test_cleared_decisions_are_not_exported(seeded, users, sessions, db_url, tmp_path):
    decide(sessions, users, "c1", "2", "reject", "hostile")
    decide(sessions, users, "c1", "2", "clear", "hostile")
    assert export(db_url, tmp_path / "f.jsonl") == []


def test_feedback_ids_are_unambiguous():
    assert feedback_id("c1", "42") == "mod-c1-42"
    assert feedback_id("a-b", "c") != feedback_id("a", "b-c")
    assert feedback_id("", "7") == "mod--7"

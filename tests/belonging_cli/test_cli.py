"""The serving commands: keys, serve's start-up checks, and replay against a live server."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from belonging_cli.main import app as cli
from serving.api.app import create_app
from serving.storage.db import make_engine, make_sessionmaker
from serving.storage.keys import find_active_key, hash_token
from tests.live_server import serve_in_thread
from tests.serving.conftest import FakePredictor

runner = CliRunner()


def test_keys_create_prints_the_key_once_and_stores_its_hash(db_url):
    result = runner.invoke(cli, ["keys", "create", "--scopes", "score,read", "--name", "ci", "--database-url", db_url])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("blg_")
    engine = make_engine(db_url)
    with make_sessionmaker(engine)() as session:
        key = find_active_key(session, hash_token(token))
        assert key is not None and key.scopes == "score,read" and key.name == "ci"
    engine.dispose()


def test_keys_create_refuses_unknown_scopes(db_url):
    result = runner.invoke(cli, ["keys", "create", "--scopes", "score,root", "--database-url", db_url])
    assert result.exit_code == 2
    assert "unknown scope(s) ['root']" in result.output


def test_serve_refuses_keys_off_on_a_public_host(tmp_path):
    result = runner.invoke(cli, ["serve", "--no-auth", "--host", "0.0.0.0", "--bundle", str(tmp_path)])
    assert result.exit_code == 2
    assert "auth_disabled=true is only allowed on a loopback host" in result.output


def test_serve_refuses_a_bad_bundle(tmp_path, db_url):
    result = runner.invoke(cli, ["serve", "--bundle", str(tmp_path / "nope"), "--database-url", db_url])
    assert result.exit_code == 1
    assert "cannot serve:" in result.output and "does not exist" in result.output


@pytest.fixture
def live_server(settings):
    """The app with the fake predictor behind a real uvicorn on a free port."""
    with serve_in_thread(create_app(settings, predictor=FakePredictor())) as url:
        yield url


def test_replay_streams_a_file_and_summarises(live_server, keys, tmp_path):
    rows = [
        {"id": f"t{i}", "lang": "en", "text": "welcome!" if i % 4 == 0 else "hello there", "sentiment": "x"}
        for i in range(50)
    ]
    lines = [json.dumps(r) for r in rows] + ["{not json", json.dumps({"id": "e", "text": ""})]
    path = tmp_path / "tweets.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = runner.invoke(
        cli,
        [
            "replay",
            str(path),
            "--url",
            live_server,
            "--key",
            keys.score,
            "--rate",
            "500",
            "--batch",
            "8",
            "--community",
            "demo",
        ],
    )
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "replayed 52 lines" in out
    assert "│ scored │ 50 │" in out
    assert "│ welcoming │ 13 │ 26.0% │" in out
    assert "│ errors │ 2 │" in out and "│ invalid JSON │ 1 │" in out and "│ invalid comment │ 1 │" in out
    assert "line 51: invalid JSON: Expecting property name enclosed in double quotes" in out
    assert 'line 52: id "e": text: String should have at least 1 character' in out


def test_replay_with_a_wrong_key_reports_errors(live_server, tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"id": "1", "text": "hi"}) + "\n", encoding="utf-8")
    result = runner.invoke(cli, ["replay", str(path), "--url", live_server, "--key", "blg_wrong"])
    assert result.exit_code == 1
    assert "HTTP 401: invalid or revoked API key" in result.stdout


def test_replay_batches_never_repeat_an_id(tmp_path):
    from belonging_cli.replay import Summary, batches, read_comments

    path = tmp_path / "dups.jsonl"
    rows = [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}, {"id": "a", "text": "z"}, {"id": "c", "text": "w"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    summary = Summary()
    cut = list(batches(read_comments(path, summary), size=10))
    assert [[c["id"] for c in b.comments] for b in cut] == [["a", "b"], ["a", "c"]]
    assert [b.lines for b in cut] == [[1, 2], [3, 4]]
    assert summary.lines == 4


def test_replay_groups_threadless_comments_into_reply_threads(tmp_path):
    from belonging_cli.replay import Summary, read_comments

    path = tmp_path / "tweets.jsonl"
    rows = [{"id": str(i), "text": f"tweet {i}"} for i in range(5)]
    rows.insert(2, {"id": "own", "text": "already threaded", "thread_id": "t9"})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    comments = [c for _, c in read_comments(path, Summary(), thread_size=2)]
    assert [(c["id"], c.get("thread_id"), c.get("parent_id")) for c in comments] == [
        ("0", "replay-1", None),
        ("1", "replay-1", "0"),
        ("own", "t9", None),
        ("2", "replay-2", None),
        ("3", "replay-2", "2"),
        ("4", "replay-3", None),
    ]

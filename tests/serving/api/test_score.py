"""POST /v1/score: happy path, storage, idempotency, every kind of client mistake, auth."""

from __future__ import annotations

import json

from sqlalchemy import select

from serving.storage.db import make_engine, make_sessionmaker
from serving.storage.models import Comment, Thread
from tests.serving.conftest import FakePredictor, bearer


def stored_rows(db_url: str) -> list[Comment]:
    engine = make_engine(db_url)
    with make_sessionmaker(engine)() as session:
        rows = list(session.scalars(select(Comment).order_by(Comment.id)))
    engine.dispose()
    return rows


def test_scores_tags_and_languages(client, keys):
    body = {
        "comments": [
            {"id": "1", "text": "Welcome to the group! Where are you from?", "community_id": "rn"},
            {"id": "2", "text": "go back to TikTok", "community_id": "rn", "lang": "en"},
            {"id": "3", "text": "Bienvenida, amiga, me alegra que estés aquí con nosotros"},
        ]
    }
    response = client.post("/v1/score", json=body, headers=bearer(keys.score))
    assert response.status_code == 200
    out = response.json()
    assert out["count"] == 3
    assert out["model"] == {"name": "fake", "version": "0.1"}
    first, second, third = out["data"]
    assert first == {
        "id": "1",
        "scores": {"welcoming": 0.9, "curious": 0.8, "hostile": 0.05},
        "tags": ["welcoming", "curious"],
        "lang": "en",
        "truncated": False,
    }
    assert second["tags"] == ["hostile"] and second["lang"] == "en"
    assert third["tags"] == [] and third["lang"] == "es"


def test_long_text_is_scored_truncated(client, keys):
    text = "x" * 70 + " welcome"  # the fake window is 64 characters: the welcome is cut off
    response = client.post("/v1/score", json={"comments": [{"id": "1", "text": text}]}, headers=bearer(keys.score))
    assert response.status_code == 200
    item = response.json()["data"][0]
    assert item["truncated"] is True and item["tags"] == []


def test_stores_comments_with_scores_by_default(client, keys, db_url):
    body = {
        "comments": [
            {
                "id": "c1",
                "text": "welcome!",
                "community_id": "rn",
                "thread_id": "t1",
                "author_id": "a",
                "created_at": "2025-01-20T10:00:00+01:00",
            }
        ]
    }
    assert client.post("/v1/score", json=body, headers=bearer(keys.score)).status_code == 200
    (row,) = stored_rows(db_url)
    assert (row.community_id, row.comment_id, row.thread_id, row.author_id) == ("rn", "c1", "t1", "a")
    assert row.created_at.isoformat() == "2025-01-20T09:00:00"  # UTC
    assert (row.p_welcoming, row.welcoming, row.hostile) == (0.9, True, False)
    assert (row.model_name, row.model_version) == ("fake", "0.1")


def test_store_false_persists_nothing(client, keys, db_url):
    body = {"comments": [{"id": "c1", "text": "welcome!", "thread_id": "t1"}], "store": False}
    response = client.post("/v1/score", json=body, headers=bearer(keys.score))
    assert response.status_code == 200 and response.json()["data"][0]["tags"] == ["welcoming"]
    assert stored_rows(db_url) == []
    engine = make_engine(db_url)
    with make_sessionmaker(engine)() as session:
        assert session.scalars(select(Thread)).all() == []
    engine.dispose()


def test_sending_again_returns_the_stored_result_and_counts_once(make_client, settings, keys, db_url):
    predictor = FakePredictor()
    client = make_client(settings, predictor)
    first = {"comments": [{"id": "c1", "text": "welcome!", "community_id": "rn", "thread_id": "t"}]}
    again = {
        "comments": [
            {"id": "c1", "text": "welcome!", "community_id": "rn", "thread_id": "t"},  # same key, same text
            {"id": "c1", "text": "go back, idiot", "community_id": "other", "thread_id": "t"},  # other community
        ]
    }
    client.post("/v1/score", json=first, headers=bearer(keys.score))
    scored_before = sum(len(b) for b in predictor.batches)
    response = client.post("/v1/score", json=again, headers=bearer(keys.score))
    assert response.status_code == 200
    stored, other = response.json()["data"]
    assert stored["tags"] == ["welcoming"]
    assert other["tags"] == ["hostile"]
    assert sum(len(b) for b in predictor.batches) - scored_before == 1  # only the new one ran
    rows = stored_rows(db_url)
    assert [(r.community_id, r.comment_id) for r in rows] == [("rn", "c1"), ("other", "c1")]
    engine = make_engine(db_url)
    with make_sessionmaker(engine)() as session:
        thread = session.scalars(select(Thread).where(Thread.community_id == "rn")).one()
        assert (thread.comment_count, thread.welcoming_count, thread.hostile_count) == (1, 1, 0)
    engine.dispose()


def test_a_stored_id_with_another_text_is_a_conflict_and_stores_nothing(make_client, settings, keys, db_url):
    predictor = FakePredictor()
    client = make_client(settings, predictor)
    client.post(
        "/v1/score",
        json={"comments": [{"id": "c1", "text": "welcome!", "community_id": "rn"}]},
        headers=bearer(keys.score),
    )
    scored_before = sum(len(b) for b in predictor.batches)
    edited = {
        "comments": [
            {"id": "c2", "text": "hello there", "community_id": "rn"},
            {"id": "c1", "text": "go back, idiot", "community_id": "rn"},
        ]
    }
    response = client.post("/v1/score", json=edited, headers=bearer(keys.score))
    assert response.status_code == 409
    body = response.json()
    assert body["detail"].startswith('comments[1].id (id "c1"): already stored in community "rn" with a different text')
    assert body["errors"][0]["loc"] == ["body", "comments", 1, "id"] and body["errors"][0]["type"] == "conflict"
    assert sum(len(b) for b in predictor.batches) == scored_before  # refused before scoring
    assert [(r.comment_id, r.text) for r in stored_rows(db_url)] == [("c1", "welcome!")]


def test_store_false_does_not_read_the_store_either(client, keys):
    client.post("/v1/score", json={"comments": [{"id": "c1", "text": "welcome!"}]}, headers=bearer(keys.score))
    body = {"comments": [{"id": "c1", "text": "go back"}], "store": False}
    assert client.post("/v1/score", json=body, headers=bearer(keys.score)).json()["data"][0]["tags"] == ["hostile"]


# --- client mistakes: exact status and detail ---


def post(client, keys, body):
    return client.post("/v1/score", json=body, headers=bearer(keys.score))


def test_empty_text_names_the_item(client, keys):
    body = {"comments": [{"id": "a", "text": "hi"}, {"id": "b", "text": ""}]}
    response = post(client, keys, body)
    assert response.status_code == 422
    assert response.json()["detail"] == 'comments[1].text (id "b"): String should have at least 1 character'
    assert response.json()["errors"][0]["item"] == "b"


def test_text_over_10000_characters(client, keys):
    response = post(client, keys, {"comments": [{"id": "a", "text": "x" * 10_001}]})
    assert response.status_code == 422
    assert response.json()["detail"] == 'comments[0].text (id "a"): String should have at most 10000 characters'


def test_more_than_256_comments_is_413(client, keys):
    body = {"comments": [{"id": str(i), "text": "hi"} for i in range(257)]}
    response = post(client, keys, body)
    assert response.status_code == 413
    assert response.json()["detail"] == "comments: at most 256 comments per request, got 257"


def test_256_comments_are_fine(client, keys):
    body = {"comments": [{"id": str(i), "text": f"hi {i}"} for i in range(256)], "store": False}
    response = post(client, keys, body)
    assert response.status_code == 200 and response.json()["count"] == 256


def test_body_over_2_mb_is_413_before_parsing(client, keys):
    payload = json.dumps({"comments": [{"id": str(i), "text": "y" * 9000} for i in range(240)]})
    assert len(payload) > 2 * 1024 * 1024
    response = client.post(
        "/v1/score", content=payload, headers={**bearer(keys.score), "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["detail"] == f"body: at most 2097152 bytes per request, got {len(payload)} bytes"


def test_chunked_body_over_the_limit_is_413(client, keys):
    def chunks():
        for _ in range(300):
            yield b"x" * 8192

    response = client.post(
        "/v1/score", content=chunks(), headers={**bearer(keys.score), "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["detail"] == "body: at most 2097152 bytes per request, got larger than that"


def test_invalid_json_is_400(client, keys):
    response = client.post(
        "/v1/score",
        content=b'{"comments": [',
        headers={**bearer(keys.score), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "body: invalid JSON at character 14: Expecting value"


def test_not_json_content_type_is_422(client, keys):
    response = client.post("/v1/score", content=b"hello", headers={**bearer(keys.score), "Content-Type": "text/plain"})
    assert response.status_code == 422
    assert response.json()["detail"] == "body: expected a JSON object sent with Content-Type: application/json"


def test_unknown_field_wrong_type_and_bad_date(client, keys):
    body = {
        "comments": [
            {"id": "a", "text": "hi", "colour": "red"},
            {"id": 7, "text": "hi"},
            {"id": "c", "text": "hi", "created_at": "2025-01-20"},
            {"id": "d", "text": "hi", "lang": "english!"},
        ],
        "store": "yes",
    }
    response = post(client, keys, body)
    assert response.status_code == 422
    assert response.json()["detail"] == "; ".join(
        [
            'comments[0].colour (id "a"): Extra inputs are not permitted',
            "comments[1].id: Input should be a valid string",
            'comments[2].created_at (id "c"): expected an RFC 3339 date-time such as 2025-01-31T18:04:05Z, '
            "got '2025-01-20'",
            "comments[3].lang (id \"d\"): String should match pattern '^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$'",
            "store: Input should be a valid boolean",
        ]
    )


def test_no_comments_and_missing_body(client, keys):
    response = post(client, keys, {"comments": []})
    assert response.status_code == 422
    assert response.json()["detail"] == "comments: List should have at least 1 item after validation, not 0"
    response = client.post("/v1/score", headers=bearer(keys.score))
    assert response.status_code == 422
    assert response.json()["detail"] == "body: a JSON object is required"


def test_duplicate_ids_in_one_request(client, keys):
    body = {"comments": [{"id": "a", "text": "hi"}, {"id": "b", "text": "hi"}, {"id": "a", "text": "yo"}]}
    response = post(client, keys, body)
    assert response.status_code == 422
    assert response.json()["detail"] == (
        'comments[2].id (id "a"): duplicates comments[0] (same id in the same community)'
    )


# --- access ---


def test_missing_bad_and_wrong_keys(client, keys):
    body = {"comments": [{"id": "a", "text": "hi"}]}
    response = client.post("/v1/score", json=body)
    assert response.status_code == 401
    assert response.json()["detail"] == "missing API key: send 'Authorization: Bearer <key>'"
    assert response.headers["www-authenticate"] == "Bearer"
    response = client.post("/v1/score", json=body, headers={"Authorization": "Basic abc"})
    assert (response.status_code, response.json()["detail"]) == (
        401,
        "malformed Authorization header: expected 'Bearer <key>'",
    )
    response = client.post("/v1/score", json=body, headers=bearer("blg_not-a-key"))
    assert (response.status_code, response.json()["detail"]) == (401, "invalid or revoked API key")
    response = client.post("/v1/score", json=body, headers=bearer(keys.read))
    assert (response.status_code, response.json()["detail"]) == (403, "this API key lacks the 'score' scope")
    assert client.post("/v1/score", json=body, headers=bearer(keys.admin)).status_code == 200


def test_auth_disabled_on_loopback(make_client, settings, predictor):
    client = make_client(settings.model_copy(update={"auth_disabled": True}), predictor)
    response = client.post("/v1/score", json={"comments": [{"id": "a", "text": "hi"}]})
    assert response.status_code == 200


# --- server side ---


def test_model_failure_is_a_generic_500(make_client, settings, keys, caplog):
    client = make_client(settings, FakePredictor(fail_on="boom"))
    response = client.post("/v1/score", json={"comments": [{"id": "a", "text": "boom"}]}, headers=bearer(keys.score))
    assert response.status_code == 500
    assert response.json()["detail"] == "internal server error"
    assert "model exploded" in caplog.text  # logged with its traceback, not sent
    assert "Traceback" in caplog.text
    ok = client.post("/v1/score", json={"comments": [{"id": "b", "text": "fine"}]}, headers=bearer(keys.score))
    assert ok.status_code == 200  # the worker survived


def test_not_ready_is_503(make_client, settings, keys):
    slow = FakePredictor()
    slow.gate.clear()  # warm-up blocks until the gate opens
    client = make_client(settings, slow, ready=False)
    response = client.post("/v1/score", json={"comments": [{"id": "a", "text": "hi"}]}, headers=bearer(keys.score))
    assert response.status_code == 503
    assert response.json()["detail"] == "the model is still loading: retry when /readyz answers 200"
    assert client.get("/readyz").status_code == 503
    slow.gate.set()

"""Raw HTTP calls shaped exactly like Perspective's main callers: Coral and the npm client."""

from __future__ import annotations

import json
import posixpath

import pytest

from serving.storage.comments import count_comments
from serving.storage.db import make_engine, make_sessionmaker


def stored(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine)() as session:
            return count_comments(session)
    finally:
        engine.dispose()


def coral_request(client, endpoint: str, key: str, text: str, *, model: str = "TOXICITY", do_not_store: bool = True):
    """coralproject/talk services/perspective/perspective.ts: the URL is path.join(endpoint.pathname,
    "/comments:analyze") with ?key=, the body JSON.stringify'd in this key order."""
    url = posixpath.join(endpoint, "comments:analyze") + f"?key={key}"
    body = {
        "comment": {"text": text},
        "doNotStore": do_not_store,
        "requestedAttributes": {model: {}},
        "languages": ["en"],
    }
    return client.post(url, content=json.dumps(body), headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("endpoint", ["/v1alpha1", "/"])
def test_coral_reads_the_toxicity_summary_score(client, keys, db_url, endpoint):
    response = coral_request(client, endpoint, keys.score, "go back, nobody wants you")
    assert response.status_code == 200
    # toxic.ts reads only this field and compares it with the 0.80 threshold.
    assert response.json()["attributeScores"]["TOXICITY"]["summaryScore"]["value"] == 0.95
    calm = coral_request(client, endpoint, keys.score, "glad you are here").json()
    assert calm["attributeScores"]["TOXICITY"]["summaryScore"]["value"] == 0.05
    assert stored(db_url) == 0  # Coral sends doNotStore: true by default


def test_do_not_store_false_stores_in_the_community(client, keys, db_url):
    body = {
        "comment": {"text": "go back"},
        "requestedAttributes": {"HOSTILE": {}},
        "communityId": "forum",
        "clientToken": "c1",
    }
    first = client.post(f"/v1alpha1/comments:analyze?key={keys.score}", json=body)
    again = client.post(f"/v1alpha1/comments:analyze?key={keys.score}", json=body)  # a retry is stored once
    assert first.json() == again.json()
    assert stored(db_url) == 1
    thread = client.get("/v1/communities/forum/belonging", headers={"Authorization": f"Bearer {keys.read}"})
    assert thread.json()["totals"]["tags"]["hostile"] == 1


def test_npm_perspective_api_client_shape(client, keys):
    """sloria/perspective-api-client: axios.post(URL, merge(resource, {requestedAttributes, doNotStore}),
    {params: {key}}); on failure it reads response.data.error.message."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/plain, */*",
        "User-Agent": "axios/0.18.1",
    }
    body = {
        "comment": {"text": "what song is this? welcome!"},
        "requestedAttributes": {"TOXICITY": {}, "CURIOSITY_EXPERIMENTAL": {}},
        "doNotStore": True,
    }
    response = client.post(
        "/v1alpha1/comments:analyze", params={"key": keys.score}, content=json.dumps(body), headers=headers
    )
    data = response.json()
    assert data["attributeScores"]["CURIOSITY_EXPERIMENTAL"]["summaryScore"]["value"] == 0.8
    assert data["attributeScores"]["TOXICITY"]["summaryScore"]["value"] == 0.05
    failed = client.post(
        "/v1alpha1/comments:analyze", params={"key": "wrong"}, content=json.dumps(body), headers=headers
    )
    assert failed.status_code == 401
    assert failed.json()["error"]["message"] == "API key not valid. Please pass a valid API key."


def test_other_ways_to_send_the_key_and_googles_query_parameters(client, keys):
    body = {"comment": {"text": "hi"}, "requestedAttributes": {"TOXICITY": {}}, "doNotStore": True}
    query = "alt=json&prettyPrint=false&fields=attributeScores&quotaUser=u1&%24.xgafv=2"
    assert (
        client.post(
            f"/v1alpha1/comments:analyze?{query}", json=body, headers={"x-goog-api-key": keys.score}
        ).status_code
        == 200
    )
    assert (
        client.post(
            "/v1alpha1/comments:analyze", json=body, headers={"Authorization": f"Bearer {keys.score}"}
        ).status_code
        == 200
    )
    missing = client.post("/v1alpha1/comments:analyze", json=body)
    assert missing.status_code == 401
    assert missing.json()["error"]["status"] == "UNAUTHENTICATED"


def test_proto_field_names_and_request_fields(client, keys):
    body = {
        "comment": {"text": "welcome!", "type": "PLAIN_TEXT"},
        "requested_attributes": {"WELCOMING": {"score_type": "PROBABILITY"}},
        "do_not_store": True,
        "session_id": "s1",
        "context": {"articleAndParentComment": {"article": {"text": "a story"}, "parentComment": {"text": "hi"}}},
        "languages": ["pt-BR"],
    }
    response = client.post(f"/v1alpha1/comments:analyze?key={keys.score}", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["languages"] == ["pt-BR"]
    body["context"] = {"entries": [{"text": "x"}], "articleAndParentComment": {"article": {"text": "y"}}}
    both = client.post(f"/v1alpha1/comments:analyze?key={keys.score}", json=body)
    assert both.status_code == 400
    assert "only one of context.entries and context.articleAndParentComment" in both.json()["error"]["message"]


def test_bad_json_and_unknown_fields_are_invalid_argument(client, keys):
    url = f"/v1alpha1/comments:analyze?key={keys.score}"
    bad = client.post(url, content=b'{"comment": ', headers={"Content-Type": "application/json"})
    assert bad.status_code == 400
    assert bad.json()["error"]["message"].startswith("Invalid JSON payload received.")
    unknown = client.post(url, json={"comment": {"text": "x", "lang": "en"}, "requestedAttributes": {"TOXICITY": {}}})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"] == (
        'Invalid JSON payload received. Unknown name "lang" at "comment": Cannot find field.'
    )


def test_a_spent_request_budget_is_answered_as_rate_limit_exceeded(make_client, settings, keys):
    """The key's real limiter (serving/api/ratelimit.py) counts these routes too, in Google's envelope."""
    from tests.serving.conftest import FakePredictor

    limited_settings = settings.model_copy(update={"rate_limit_enabled": True, "rate_limit_requests": 2})
    client = make_client(limited_settings, FakePredictor())
    url = f"/v1alpha1/comments:analyze?key={keys.score}"
    body = {"comment": {"text": "x"}, "requestedAttributes": {"TOXICITY": {}}}
    answers = [client.post(url, json=body) for _ in range(3)]
    assert [a.status_code for a in answers[:2]] == [200, 200]
    limited = answers[2]
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["RateLimit-Limit"] == "2"
    error = limited.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert error["details"] == [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED", "domain": "belonging"}
    ]


def test_model_loading_is_unavailable_in_the_envelope(make_client, settings, keys):
    from tests.serving.conftest import FakePredictor

    slow = FakePredictor()
    slow.gate.clear()  # warm-up blocks: the model never becomes ready during this test
    client = make_client(settings, slow, ready=False)
    try:
        response = client.post(
            f"/v1alpha1/comments:analyze?key={keys.score}",
            json={"comment": {"text": "x"}, "requestedAttributes": {"TOXICITY": {}}},
        )
        assert response.status_code == 503
        assert response.json()["error"]["status"] == "UNAVAILABLE"
        assert response.headers["Retry-After"] == "1"
    finally:
        slow.gate.set()


def test_discovery_document_names_this_server(client):
    doc = client.get("/$discovery/rest?version=v1alpha1").json()
    assert doc["rootUrl"] == "http://testserver/"
    assert doc["resources"]["comments"]["methods"]["analyze"]["path"] == "v1alpha1/comments:analyze"
    missing = client.get("/$discovery/rest?version=v1")
    assert missing.status_code == 404
    assert missing.json()["error"]["status"] == "NOT_FOUND"


def test_coral_feedback_via_suggestscore_is_exported_for_training(client, keys, db_url, tmp_path):
    """events/listeners/perspective.ts: on a status change Coral sends comments:suggestscore."""
    from serving.moderation.feedback import write_feedback

    body = {
        "comment": {"text": "go back to your country"},
        "context": {"entries": [{"text": json.dumps({"url": "https://n.example/a", "Coral_comment_id": "42"})}]},
        "attributeScores": {"TOXICITY": {"summaryScore": {"value": 1}}},
        "languages": ["en"],
        "communityId": "Coral:https://n.example",
        "clientToken": "comment:42",
    }
    response = client.post(f"/v1alpha1/comments:suggestscore?key={keys.score}", json=body)
    assert response.json() == {"clientToken": "comment:42", "detectedLanguages": ["en"], "requestedLanguages": ["en"]}
    engine = make_engine(db_url)
    out = tmp_path / "feedback.jsonl"
    try:
        with make_sessionmaker(engine)() as session:
            assert write_feedback(session, out) == 1
    finally:
        engine.dispose()
    row = json.loads(out.read_text())
    assert row["source"] == "perspective-suggest"
    assert (row["text"], row["lang"], row["hostile"], row["welcoming"], row["curious"]) == (
        "go back to your country",
        "en",
        1,
        None,
        None,
    )
    assert row["client_token"] == "comment:42"

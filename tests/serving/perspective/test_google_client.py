"""Google's own discovery-based client (google-api-python-client), built from our discovery document."""

from __future__ import annotations

import json

import pytest
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from sqlalchemy import select

from serving.storage.comments import count_comments
from serving.storage.db import make_engine, make_sessionmaker
from serving.storage.perspective import SuggestedScore


def client(url: str, key: str):
    return build(
        "commentanalyzer",
        "v1alpha1",
        developerKey=key,
        discoveryServiceUrl=f"{url}/$discovery/rest?version={{apiVersion}}",
        static_discovery=False,
        cache_discovery=False,
    )


def error_of(exc: HttpError) -> dict:
    return json.loads(exc.content)["error"]


def test_analyze_through_the_discovery_client(live_url, keys, db_url):
    service = client(live_url, keys.score)
    request = {
        "comment": {"text": "go back where you came from"},
        "requestedAttributes": {"TOXICITY": {}, "CURIOSITY_EXPERIMENTAL": {}, "WELCOMING": {}},
        "languages": ["en"],
        "clientToken": "abc",
    }
    response = service.comments().analyze(body=request).execute()
    scores = response["attributeScores"]
    assert scores["TOXICITY"]["summaryScore"] == {"value": 0.95, "type": "PROBABILITY"}
    assert scores["CURIOSITY_EXPERIMENTAL"]["summaryScore"]["value"] == pytest.approx(0.2)
    assert scores["WELCOMING"]["summaryScore"]["value"] == pytest.approx(0.1)
    # Without spanAnnotations, one span covers the whole text, as Perspective answers.
    assert scores["TOXICITY"]["spanScores"] == [
        {"begin": 0, "end": len(request["comment"]["text"]), "score": {"value": 0.95, "type": "PROBABILITY"}}
    ]
    assert response["languages"] == ["en"]
    assert response["clientToken"] == "abc"
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine)() as session:
            assert count_comments(session) == 1  # doNotStore unset: stored, as Perspective's default
    finally:
        engine.dispose()


def test_spans_count_utf16_code_units_on_emoji_and_cjk(live_url, keys):
    service = client(live_url, keys.score)
    text = "Welcome 🤗! 你好？ go back 😀😀 now."
    response = (
        service.comments()
        .analyze(
            body={
                "comment": {"text": text},
                "requestedAttributes": {"TOXICITY": {}},
                "spanAnnotations": True,
                "doNotStore": True,
            }
        )
        .execute()
    )
    spans = response["attributeScores"]["TOXICITY"]["spanScores"]
    utf16 = text.encode("utf-16-le")

    def piece(span):
        return utf16[2 * span["begin"] : 2 * span["end"]].decode("utf-16-le")

    assert [piece(s) for s in spans] == ["Welcome 🤗!", "你好？", "go back 😀😀 now."]
    assert [(s["begin"], s["end"]) for s in spans] == [(0, 11), (12, 15), (16, 33)]
    assert [s["score"]["value"] for s in spans] == [0.05, 0.05, 0.95]


def test_thresholds_leave_out_low_scores_and_empty_attribute_scores(live_url, keys):
    service = client(live_url, keys.score)
    body = {
        "comment": {"text": "Welcome aboard. go back"},
        "requestedAttributes": {"WELCOMING": {"scoreThreshold": 0.5}, "TOXICITY": {"scoreThreshold": 0.99}},
        "spanAnnotations": True,
        "doNotStore": True,
    }
    response = service.comments().analyze(body=body).execute()
    assert set(response["attributeScores"]) == {"WELCOMING"}
    assert [s["begin"] for s in response["attributeScores"]["WELCOMING"]["spanScores"]] == [0]  # the welcome only
    body["requestedAttributes"] = {"TOXICITY": {"scoreThreshold": 0.99}}
    response = service.comments().analyze(body=body).execute()
    assert "attributeScores" not in response
    assert response["detectedLanguages"]


def test_errors_arrive_in_googles_envelope(live_url, keys):
    service = client(live_url, keys.score)
    with pytest.raises(HttpError) as caught:
        service.comments().analyze(body={"comment": {"text": ""}, "requestedAttributes": {"TOXICITY": {}}}).execute()
    assert caught.value.resp.status == 400
    error = error_of(caught.value)
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["details"][0]["errorType"] == "COMMENT_EMPTY"
    assert caught.value.error_details[0]["errorType"] == "COMMENT_EMPTY"

    with pytest.raises(HttpError) as caught:
        service.comments().analyze(body={"comment": {"text": "hi"}, "requestedAttributes": {}}).execute()
    assert error_of(caught.value)["details"][0]["errorType"] == "NO_REQUESTED_ATTRIBUTES"

    with pytest.raises(HttpError) as caught:
        service.comments().analyze(
            body={"comment": {"text": "x" * 20_481}, "requestedAttributes": {"TOXICITY": {}}}
        ).execute()
    assert error_of(caught.value)["details"][0]["errorType"] == "COMMENT_TOO_LONG"

    body = {
        "comment": {"text": "hi"},
        "requestedAttributes": {"TOXICITY": {}, "SEVERE_TOXICITY": {}},
        "languages": ["it"],
    }
    with pytest.raises(HttpError) as caught:
        service.comments().analyze(body=body).execute()
    error = error_of(caught.value)
    assert error["message"].startswith("Attribute SEVERE_TOXICITY does not support request languages: it")
    assert error["details"][0] == {
        "@type": "type.googleapis.com/google.commentanalyzer.v1alpha1.Error",
        "errorType": "LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE",
        "languageNotSupportedByAttributeError": {"detectedLanguages": ["it"], "attribute": "SEVERE_TOXICITY"},
    }
    body["dropUnsupportedAttributes"] = True
    assert set(service.comments().analyze(body=body).execute()["attributeScores"]) == {"TOXICITY"}

    with pytest.raises(HttpError) as caught:
        service.comments().analyze(body={"comment": {"text": "hi"}, "requestedAttributes": {"TOXCITY": {}}}).execute()
    error = error_of(caught.value)
    assert error["message"].startswith("Unknown requested attribute: TOXCITY")
    assert error["details"][0]["errorType"] == "INVALID_REQUEST"

    body = {"comment": {"text": "hi", "type": "HTML"}, "requestedAttributes": {"TOXICITY": {}}}
    with pytest.raises(HttpError) as caught:
        service.comments().analyze(body=body).execute()
    assert "PLAIN_TEXT" in error_of(caught.value)["message"]

    body = {"comment": {"text": "hi"}, "requestedAttributes": {"TOXICITY": {"scoreType": "RAW"}}}
    with pytest.raises(HttpError) as caught:
        service.comments().analyze(body=body).execute()
    assert "only PROBABILITY" in error_of(caught.value)["message"]


def test_keys_are_checked(live_url, keys):
    body = {"comment": {"text": "hi"}, "requestedAttributes": {"TOXICITY": {}}}
    with pytest.raises(HttpError) as caught:
        client(live_url, "blg_not-a-key").comments().analyze(body=body).execute()
    assert caught.value.resp.status == 401
    assert error_of(caught.value)["status"] == "UNAUTHENTICATED"
    with pytest.raises(HttpError) as caught:
        client(live_url, keys.read).comments().analyze(body=body).execute()
    assert caught.value.resp.status == 403
    assert error_of(caught.value)["message"] == "This API key lacks the 'score' scope."
    assert client(live_url, keys.admin).comments().analyze(body=body).execute()["attributeScores"]


def test_suggestscore_is_kept_as_a_review(live_url, keys, db_url):
    service = client(live_url, keys.score)
    body = {
        "comment": {"text": "you people should go back"},
        "attributeScores": {"TOXICITY": {"summaryScore": {"value": 1}}, "INSULT": {"summaryScore": {"value": 0}}},
        "communityId": "Coral:https://news.example",
        "clientToken": "comment:42",
        "context": {"entries": [{"text": json.dumps({"url": "https://news.example/a"})}]},
    }
    response = service.comments().suggestscore(body=body).execute()
    assert response["clientToken"] == "comment:42"
    assert response["detectedLanguages"]
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine)() as session:
            row = session.scalars(select(SuggestedScore)).one()
    finally:
        engine.dispose()
    assert json.loads(row.labels) == {"hostile": 1}
    assert row.community_id == "Coral:https://news.example"
    assert row.key_name == "score"
    with pytest.raises(HttpError) as caught:
        service.comments().suggestscore(body={"comment": {"text": "hi"}, "attributeScores": {}}).execute()
    assert caught.value.resp.status == 400

"""Health, readiness, info, metrics, the keys API, and the server's own failures."""

from __future__ import annotations

import pytest

from serving.api.app import create_app
from serving.engine.bundle import BundleError
from serving.settings import Settings
from tests.serving.conftest import FakePredictor, bearer


def test_health_and_readiness(client):
    assert (client.get("/healthz").status_code, client.get("/healthz").json()) == (200, {"status": "ok"})
    assert (client.get("/readyz").status_code, client.get("/readyz").json()) == (200, {"status": "ready"})


def test_readyz_is_503_until_warmed_up(make_client, settings):
    slow = FakePredictor()
    slow.gate.clear()
    client = make_client(settings, slow, ready=False)
    response = client.get("/readyz")
    assert (response.status_code, response.json()["detail"]) == (503, "the model is loading")
    assert client.get("/healthz").status_code == 200
    slow.gate.set()
    from tests.serving.conftest import wait_ready

    wait_ready(client)
    assert slow.batches  # the warm-up batch ran before ready


def test_a_model_that_fails_to_load(make_client, settings):
    client = make_client(settings, FakePredictor(fail_on="welcome"), ready=False)
    for _ in range(200):
        if client.get("/healthz").status_code == 503:
            break
        import time

        time.sleep(0.01)
    detail = "the model failed to load: RuntimeError: model exploded"
    assert (client.get("/healthz").status_code, client.get("/healthz").json()["detail"]) == (503, detail)
    assert (client.get("/readyz").status_code, client.get("/readyz").json()["detail"]) == (503, detail)


def test_info(client, keys):
    response = client.get("/v1/info", headers=bearer(keys.read))
    assert response.status_code == 200
    assert response.json() == {
        "name": "fake",
        "version": "0.1",
        "labels": ["welcoming", "curious", "hostile"],
        "thresholds": {"welcoming": 0.5, "curious": 0.5, "hostile": 0.5},
        "max_length": 64,
        "limits": {"max_comments": 256, "max_text_chars": 10000, "max_body_bytes": 2097152},
    }
    assert client.get("/v1/info").status_code == 401
    assert client.get("/v1/info", headers=bearer(keys.score)).status_code == 403


def test_metrics(client, keys):
    client.post(
        "/v1/score",
        json={"comments": [{"id": "1", "text": "welcome!"}, {"id": "2", "text": "go back"}]},
        headers=bearer(keys.score),
    )
    client.post("/v1/score", json={"comments": []}, headers=bearer(keys.score))
    client.get("/nowhere")
    text = client.get("/metrics").text
    assert "belong_comments_scored_total 2.0" in text
    assert 'belong_comment_tags_total{tag="welcoming"} 1.0' in text
    assert 'belong_comment_tags_total{tag="curious"} 0.0' in text
    assert 'belong_responses_total{method="POST",route="/v1/score",status="200"} 1.0' in text
    assert 'belong_responses_total{method="POST",route="/v1/score",status="422"} 1.0' in text
    assert 'belong_responses_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert 'belong_request_duration_seconds_count{method="POST",route="/v1/score"} 2.0' in text
    assert "belong_batch_size_count" in text and "belong_queue_depth 0.0" in text
    assert "belong_model_ready 1.0" in text


def test_two_apps_have_their_own_metrics(make_client, settings, tmp_path):
    a = make_client(settings, FakePredictor())
    b = make_client(settings, FakePredictor())
    a.get("/healthz")
    assert 'route="/healthz"' in a.get("/metrics").text
    assert 'route="/healthz"' not in b.get("/metrics").text


def test_keys_api(client, keys):
    response = client.post("/v1/keys", json={"name": "bot", "scopes": ["score"]}, headers=bearer(keys.admin))
    assert response.status_code == 201
    created = response.json()
    assert created["scopes"] == ["score"] and created["key"].startswith("blg_")
    ok = client.post("/v1/score", json={"comments": [{"id": "1", "text": "hi"}]}, headers=bearer(created["key"]))
    assert ok.status_code == 200
    listed = client.get("/v1/keys", headers=bearer(keys.admin)).json()
    assert listed["count"] == 5 and listed["data"][-1]["name"] == "bot" and "key" not in listed["data"][-1]
    assert client.delete(f"/v1/keys/{created['id']}", headers=bearer(keys.admin)).status_code == 204
    gone = client.post("/v1/score", json={"comments": [{"id": "2", "text": "hi"}]}, headers=bearer(created["key"]))
    assert (gone.status_code, gone.json()["detail"]) == (401, "invalid or revoked API key")
    again = client.delete(f"/v1/keys/{created['id']}", headers=bearer(keys.admin))
    assert (again.status_code, again.json()["detail"]) == (404, f"no active API key with id {created['id']}")
    bad = client.post("/v1/keys", json={"name": "x", "scopes": ["root"]}, headers=bearer(keys.admin))
    assert (bad.status_code, bad.json()["detail"]) == (
        422,
        "scopes[0]: Input should be 'score', 'read' or 'admin'",
    )
    denied = client.post("/v1/keys", json={"name": "x", "scopes": ["score"]}, headers=bearer(keys.both))
    assert (denied.status_code, denied.json()["detail"]) == (403, "this API key lacks the 'admin' scope")


def test_openapi_documents_the_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/v1/score",
        "/v1/stream",
        "/v1/threads/{thread_id}",
        "/v1/communities/{community_id}/belonging",
        "/v1/flags",
        "/v1/info",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= set(paths)
    assert client.get("/docs").status_code == 200


def test_unknown_route_is_a_json_404(client):
    response = client.get("/v2/nothing")
    assert (response.status_code, response.json()["detail"]) == (404, "Not Found")


def test_settings_refuse_auth_off_on_a_public_host():
    with pytest.raises(ValueError, match="auth_disabled=true is only allowed on a loopback host"):
        Settings(auth_disabled=True, host="0.0.0.0")
    assert Settings(auth_disabled=True, host="::1").auth_disabled
    assert Settings(auth_disabled=True, host="localhost").auth_disabled


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("BELONG_MAX_BATCH_SIZE", "8")
    monkeypatch.setenv("BELONG_DATABASE_URL", "sqlite:///elsewhere.db")
    settings = Settings()
    assert (settings.max_batch_size, settings.database_url) == (8, "sqlite:///elsewhere.db")


def test_bad_bundle_fails_at_create_app(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        create_app(Settings(bundle=tmp_path / "missing", database_url=f"sqlite:///{tmp_path}/x.db"))


def test_unknown_language_code_fails_at_create_app(tmp_path):
    with pytest.raises(ValueError, match=r"does not know the language code\(s\) \['xx'\]"):
        create_app(Settings(languages="en,xx", database_url=f"sqlite:///{tmp_path}/x.db"), predictor=FakePredictor())

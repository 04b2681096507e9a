"""End to end with the real tiny bundle: onnxruntime, tokenizer, calibration, micro-batching, store."""

from __future__ import annotations

import gc
import json

from serving.engine.bundle import load_bundle
from serving.engine.predictor import Predictor
from serving.settings import Settings
from tests.serving.conftest import bearer


def test_serves_the_real_tiny_bundle(tiny_bundle, make_client, db_url, keys):
    meta = load_bundle(tiny_bundle).meta
    gc.unfreeze()
    client = make_client(Settings(bundle=tiny_bundle, database_url=db_url, threads=1))
    # What start-up loaded is frozen out of the collector's sight (full collections stall every thread).
    assert gc.get_freeze_count() > 10_000
    info = client.get("/v1/info", headers=bearer(keys.read)).json()
    assert (info["name"], info["version"], info["max_length"]) == (meta.name, meta.version, meta.max_length)
    assert info["labels"] == list(meta.labels) and info["thresholds"] == meta.thresholds

    texts = [
        "Welcome to the group! Where are you from?",
        "滚回去",
        "Bienvenida, amiga 🤗",
        "go back to where you came from " * 40,
    ]
    body = {"comments": [{"id": str(i), "text": t, "thread_id": "t"} for i, t in enumerate(texts)]}
    response = client.post("/v1/score", json=body, headers=bearer(keys.score))
    assert response.status_code == 200
    data = response.json()["data"]
    # The server batches differently from one in-process call, and int8 dynamic quantization scales
    # activations per batch: scores agree closely, not bit for bit.
    expected = Predictor.from_path(tiny_bundle, threads=1).predict(texts)
    for item, want in zip(data, expected, strict=True):
        assert set(item["scores"]) == set(meta.labels)
        assert all(0.0 <= p <= 1.0 for p in item["scores"].values())
        assert item["scores"] == {k: pytest_approx(v) for k, v in want.scores.items()}
        assert item["tags"] == [label for label in meta.labels if item["scores"][label] >= meta.thresholds[label]]
    assert [item["truncated"] for item in data] == [False, False, False, True]
    assert data[1]["lang"] == "zh"

    stream = client.post(
        "/v1/stream",
        content="\n".join(json.dumps({"id": f"s{i}", "text": t}) for i, t in enumerate(texts)),
        headers={**bearer(keys.score), "Content-Type": "application/x-ndjson"},
    )
    assert [json.loads(line)["id"] for line in stream.text.splitlines()] == ["s0", "s1", "s2", "s3"]
    assert client.get("/v1/threads/t", headers=bearer(keys.read)).json()["count"] == 4


def pytest_approx(value: float):
    import pytest

    return pytest.approx(value, abs=5e-3)

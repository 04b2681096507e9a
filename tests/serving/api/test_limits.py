"""Rate limits per key, the overload guard, and store faults: 429/503 with Retry-After, nothing lost."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid
from collections import Counter

import httpx
import pytest

from serving.api.app import create_app
from serving.api.auth import Principal
from serving.api.errors import ApiError
from serving.api.ratelimit import RateLimiter, Rates
from tests.live_server import serve_in_thread
from tests.serving.api.test_score import stored_rows
from tests.serving.conftest import FakePredictor, bearer


def make_key(client, keys, **limits) -> str:
    body = {"name": "limited", "scopes": ["score", "read"], "rate_limits": limits}
    response = client.post("/v1/keys", json=body, headers=bearer(keys.admin))
    assert response.status_code == 201 and response.json()["rate_limits"] == {
        "requests_per_second": None,
        "comments_per_second": None,
        **limits,
    }
    return response.json()["key"]


def one(i: int) -> dict:
    return {"comments": [{"id": f"r{i}", "text": "hello"}]}


def test_request_rate_per_key_answers_429_with_headers(client, keys):
    key = make_key(client, keys, requests_per_second=3)
    answers = [client.post("/v1/score", json=one(i), headers=bearer(key)) for i in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["ratelimit-remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert all(a.headers["ratelimit-limit"] == "3" for a in answers)
    refused = answers[3]
    assert 1 <= int(refused.headers["retry-after"]) <= 1
    assert refused.json()["errors"][0]["type"] == "rate_limited"
    assert "3 requests per second" in refused.json()["detail"]
    assert client.post("/v1/score", json=one(9), headers=bearer(keys.score)).status_code == 200  # other keys
    time.sleep(1.1)
    assert client.post("/v1/score", json=one(5), headers=bearer(key)).status_code == 200


def test_comment_rate_per_key(client, keys):
    key = make_key(client, keys, comments_per_second=2)  # 20 per 10 s
    batch = {"comments": [{"id": f"c{i}", "text": "hello"} for i in range(15)]}
    assert client.post("/v1/score", json=batch, headers=bearer(key)).status_code == 200
    more = {"comments": [{"id": f"d{i}", "text": "hello"} for i in range(10)]}
    refused = client.post("/v1/score", json=more, headers=bearer(key))
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    too_big = {"comments": [{"id": f"e{i}", "text": "hello"} for i in range(21)]}
    response = client.post("/v1/score", json=too_big, headers=bearer(key))
    assert response.status_code == 413
    assert (
        response.json()["detail"] == "comments: this key may send at most 20 comments per 10 s, got 21 in one request"
    )


def test_rate_limits_can_be_changed_per_key(client, keys):
    key = make_key(client, keys)
    key_id = next(
        k["id"] for k in client.get("/v1/keys", headers=bearer(keys.admin)).json()["data"] if k["name"] == "limited"
    )
    response = client.put(f"/v1/keys/{key_id}/rate-limits", json={"requests_per_second": 1}, headers=bearer(keys.admin))
    assert response.status_code == 200
    codes = [client.get("/v1/info", headers=bearer(key)).status_code for _ in range(2)]
    assert codes == [200, 429]
    assert client.put("/v1/keys/999/rate-limits", json={}, headers=bearer(keys.admin)).status_code == 404
    bad = client.put(f"/v1/keys/{key_id}/rate-limits", json={"requests_per_second": 0}, headers=bearer(keys.admin))
    assert bad.status_code == 422


# --- overload ---


async def _flood(url: str, key: str, requests: int, size: int) -> list[tuple[int, dict, list[str]]]:
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=requests)) as http:

        async def send(i: int) -> tuple[int, dict, list[str]]:
            ids = [f"o{i}-{j}" for j in range(size)]
            body = {"comments": [{"id": cid, "text": f"hello {cid}"} for cid in ids]}
            response = await http.post("/v1/score", json=body, headers=bearer(key))
            return response.status_code, dict(response.headers), ids

        return await asyncio.gather(*(send(i) for i in range(requests)))


def test_overload_is_refused_early_and_nothing_accepted_is_lost(settings, keys, db_url, make_client):
    """A model doing ~80 comments/s and a 0.3 s wait limit: 48 concurrent requests of 4 comments are
    more than 2 s of work, so most are refused with 503 at once; every accepted comment is stored."""
    tight = settings.model_copy(update={"max_queue_wait_ms": 300, "max_batch_size": 4, "rate_limit_enabled": False})
    slow = FakePredictor(delay=0.05)
    make_client(tight, slow)  # migrate the store first
    with serve_in_thread(create_app(tight, predictor=slow)) as url:
        started = time.perf_counter()
        results = asyncio.run(_flood(url, keys.score, requests=48, size=4))
        elapsed = time.perf_counter() - started
    codes = Counter(status for status, _, _ in results)
    assert set(codes) <= {200, 503} and codes[200] >= 1 and codes[503] >= 10, codes
    assert all(int(headers["retry-after"]) >= 1 for status, headers, _ in results if status == 503)
    accepted = sorted(cid for status, _, ids in results if status == 200 for cid in ids)
    stored = sorted(r.comment_id for r in stored_rows(db_url))
    assert stored == accepted  # every acknowledged comment stored once, nothing refused was stored
    assert elapsed < 2.4  # refused at once, not queued for 48 * 4 / 80 = 2.4 s


# --- store faults ---


def test_a_locked_store_answers_503_then_recovers_by_itself(make_client, settings, predictor, keys, db_url):
    quick = settings.model_copy(update={"store_busy_timeout_ms": 100, "store_probe_ms": 50})
    client = make_client(quick, predictor)
    assert client.post("/v1/score", json=one(0), headers=bearer(keys.score)).status_code == 200
    holder = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        failed = client.post("/v1/score", json=one(1), headers=bearer(keys.score))
        assert failed.status_code == 503 and int(failed.headers["retry-after"]) >= 1
        assert failed.json()["errors"][0]["type"] == "store_unavailable"
        assert "database is locked" in failed.json()["detail"]
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "the store cannot take writes: database is locked" in ready.json()["detail"]
        again = client.post("/v1/score", json=one(2), headers=bearer(keys.score))
        assert again.status_code == 503  # refused at once while failing
        unstored = client.post("/v1/score", json={**one(3), "store": False}, headers=bearer(keys.score))
        assert unstored.status_code == 200  # scoring without the store still works
        lines = client.post(
            "/v1/stream",
            content=b'{"id": "s", "text": "hi"}\n',
            headers={**bearer(keys.score), "Content-Type": "application/x-ndjson"},
        )
        assert lines.status_code == 200 and '"status":503' in lines.text
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        released = time.monotonic()
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() - released < 1.0, "not ready within a second of the fault ending"
        time.sleep(0.01)
    assert client.post("/v1/score", json=one(4), headers=bearer(keys.score)).status_code == 200
    assert sorted(r.comment_id for r in stored_rows(db_url)) == ["r0", "r4"]


# --- counters shared through Redis ---

REDIS_URL = os.environ.get("BELONG_TEST_REDIS_URL")


@pytest.mark.skipif(not REDIS_URL, reason='BELONG_TEST_REDIS_URL is not set (eval "$(bash .ci/redis.sh)")')
def test_redis_counters_are_shared_between_server_processes():
    """Two limiters on one Redis stand for two server processes: together they allow one budget."""
    assert REDIS_URL is not None
    first, second = (RateLimiter(REDIS_URL, Rates(3, 100)) for _ in range(2))
    principal = Principal(key_id=uuid.uuid4().int % 2**31, name="shared", scopes=frozenset({"score"}))

    async def four_requests() -> list[str | int]:
        seen: list[str | int] = []
        for limiter in (first, second, first, second):
            state: dict = {}
            try:
                await limiter.hit_request(state, principal)
                seen.append(state["rate_limit_headers"]["RateLimit-Remaining"])
            except ApiError as exc:
                seen.append(exc.status_code)
        return seen

    assert asyncio.run(four_requests()) == ["2", "1", "0", 429]


def test_a_limiter_storage_outage_lets_requests_through():
    limiter = RateLimiter("redis://127.0.0.1:1", Rates(1, 1))  # nothing listens there
    principal = Principal(key_id=1, name="k", scopes=frozenset({"score"}))

    async def twice() -> None:
        for _ in range(2):
            await limiter.hit_request({}, principal)

    asyncio.run(twice())  # no 429 and no 500: scoring must not depend on the limiter's storage


@pytest.mark.postgres
def test_a_read_only_postgres_answers_503_then_recovers(make_client, settings, predictor, postgres_url):
    """PostgreSQL reports a read-only database as its own error class (SQLSTATE 25006), not an
    OperationalError: it must still be a 503 with Retry-After, and recover by itself."""
    from sqlalchemy import text

    from serving.storage.db import make_engine, make_sessionmaker
    from serving.storage.keys import create_key

    admin = make_engine(postgres_url)
    with make_sessionmaker(admin).begin() as session:
        key = create_key(session, name="pg", scopes=["score"]).token
    database = admin.url.database
    pg = settings.model_copy(update={"database_url": postgres_url, "auto_migrate": False, "store_probe_ms": 50})
    client = make_client(pg, predictor)
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    try:
        with admin.begin() as connection:
            connection.execute(text(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on'))
        runtime.engine.dispose()  # the setting applies to new connections
        refused = client.post("/v1/score", json=one(1), headers=bearer(key))
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert "read-only transaction" in refused.json()["detail"]
        assert client.get("/readyz").status_code == 503
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'ALTER DATABASE "{database}" SET default_transaction_read_only = off'))
        runtime.engine.dispose()
        admin.dispose()
    deadline = time.monotonic() + 2
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert client.post("/v1/score", json=one(2), headers=bearer(key)).status_code == 200

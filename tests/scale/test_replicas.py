"""Two `belong serve` processes on one PostgreSQL: the guarantees of one server hold across both.

The same comments sent to both replicas at once, and interleaved NDJSON streams with overlapping
ids, are stored and counted once; each replica answers a comment with the one stored result; flags,
threads and belonging metrics read the same through either replica.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy import func, select

from serving.labels import SCOPES
from serving.storage.db import make_engine, make_sessionmaker
from serving.storage.keys import create_key
from serving.storage.models import Comment, Thread
from tests.conftest import ROOT
from tests.serving.conftest import truncate_all

pytestmark = pytest.mark.postgres

PORTS = range(18400, 18500)  # this suite's share of the machine's ports
COMMUNITY = "replicas"
SINCE, UNTIL = "2025-03-01T00:00:00Z", "2025-03-03T00:00:00Z"
FLAG_ENV = {"BELONG_FLAG_HOSTILE_COUNT": "1", "BELONG_FLAG_MIN_COMMENTS": "1", "BELONG_FLAG_HOSTILE_SHARE": "0.01"}

TEXTS = [
    "Welcome to the group, so glad you found us! Where are you from?",
    "go back to where you came from, nobody wants you here",
    "滚回去，这里不欢迎你",
    "Bienvenida amiga, ¿de qué país eres?",
    "lárgate, nadie te quiere aquí",
    "how do I switch the app to English?",
    "欢迎欢迎，常来玩呀",
    "what song is this? thank you all",
]


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS}")


def comment(i: int, thread: int) -> dict:
    return {
        "id": f"c{i}",
        "text": f"{TEXTS[i % len(TEXTS)]} #{i}",
        "community_id": COMMUNITY,
        "thread_id": f"t{thread}",
        "author_id": f"u{i % 7}",
        "created_at": f"2025-03-01T{10 + i // 60:02d}:{i % 60:02d}:00Z",
    }


@contextmanager
def running_replicas(postgres_url: str, bundle, extra_env: dict[str, str]) -> Iterator[tuple[list[str], str]]:
    """Two `belong serve` processes on the same PostgreSQL database, and an API key both accept."""
    truncate_all(postgres_url)
    engine = make_engine(postgres_url)
    with make_sessionmaker(engine).begin() as session:
        token = create_key(session, name="replicas", scopes=list(SCOPES)).token
    engine.dispose()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BELONG_DATABASE_URL": postgres_url, "BELONG_THREADS": "1"}
    env.update(extra_env)
    processes, urls = [], []
    try:
        for _ in range(2):
            port = free_port()
            command = [sys.executable, "-m", "belonging_cli.main", "serve", "--bundle", str(bundle)]
            command += ["--port", str(port), "--no-access-log"]
            processes.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            urls.append(f"http://127.0.0.1:{port}")
            wait_ready(urls[-1], processes[-1])  # one at a time: the next picks another free port
        yield urls, token
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@pytest.fixture
def replicas(postgres_url: str, tiny_bundle) -> Iterator[tuple[list[str], str]]:
    with running_replicas(postgres_url, tiny_bundle, FLAG_ENV) as running:
        yield running


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"replica at {url} exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"replica at {url} not ready after {timeout} s")


def stored_counts(url: str) -> tuple[int, dict[str, int], dict[str, int], set[str], int]:
    """(comments, comments per thread by counting rows, the threads' own counters, threads with a
    hostile comment, hostile comments)."""
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        total = session.scalar(select(func.count()).select_from(Comment)) or 0
        per_thread = dict(session.execute(select(Comment.thread_id, func.count()).group_by(Comment.thread_id)).all())
        counters = dict(session.execute(select(Thread.thread_id, Thread.comment_count)).all())
        hostile = list(session.scalars(select(Comment.thread_id).where(Comment.hostile.is_(True))).all())
    engine.dispose()
    threads = {str(k): v for k, v in per_thread.items()}
    return total, threads, {str(k): v for k, v in counters.items()}, {str(t) for t in hostile}, len(hostile)


def test_two_replicas_store_and_count_each_comment_once(replicas, postgres_url):
    (a, b), token = replicas
    headers = {"Authorization": f"Bearer {token}"}
    comments = [comment(i, thread=i % 6) for i in range(96)]
    batches = [comments[i : i + 12] for i in range(0, len(comments), 12)]

    # Every batch goes to both replicas at the same moment: the same comments race on insert.
    with httpx.Client(timeout=60) as client, ThreadPoolExecutor(8) as pool:
        jobs = [
            pool.submit(client.post, f"{url}/v1/score", json={"comments": batch}, headers=headers)
            for batch in batches
            for url in (a, b)
        ]
        answers = [job.result() for job in jobs]
    assert [r.status_code for r in answers] == [200] * len(answers)
    for via_a, via_b in zip(answers[::2], answers[1::2], strict=True):
        assert via_a.json()["data"] == via_b.json()["data"]  # both answer with the one stored result

    # Interleaved streams with overlapping ids: c80..c127 to A and c64..c111 to B (c96.. are new).
    more = [comment(i, thread=i % 6) for i in range(128)]
    to_a, to_b = more[80:128], more[64:112]

    def stream(url: str, items: list[dict]) -> list[dict]:
        body = "\n".join(json.dumps(item) for item in items)
        response = httpx.post(
            f"{url}/v1/stream", content=body, headers={**headers, "Content-Type": "application/x-ndjson"}, timeout=60
        )
        assert response.status_code == 200
        return [json.loads(line) for line in response.text.splitlines()]

    with ThreadPoolExecutor(2) as pool:
        lines_a, lines_b = pool.map(stream, (a, b), (to_a, to_b))
    assert all("error" not in line for line in lines_a + lines_b)
    by_a = {line["id"]: line for line in lines_a}
    for line in lines_b:
        if line["id"] in by_a:
            assert {k: v for k, v in line.items() if k != "line"} == {
                k: v for k, v in by_a[line["id"]].items() if k != "line"
            }

    total, per_thread, counters, hostile_threads, hostile_comments = stored_counts(postgres_url)
    assert hostile_threads, "the flag checks below need some hostile comments"
    assert total == 128
    assert per_thread == counters == {f"t{t}": sum(1 for i in range(128) if i % 6 == t) for t in range(6)}

    # Reads agree through either replica, and with what is stored.
    def read(url: str, path: str, **params: str) -> dict:
        response = httpx.get(f"{url}{path}", params=params, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    flags_a = read(a, "/v1/flags", community_id=COMMUNITY, sort="worst", limit="500")
    assert flags_a == read(b, "/v1/flags", community_id=COMMUNITY, sort="worst", limit="500")
    assert {f["thread_id"] for f in flags_a["data"]} == hostile_threads
    window = {"since": SINCE, "until": UNTIL, "bucket": "hour"}
    report = read(a, f"/v1/communities/{COMMUNITY}/belonging", **window)
    assert report == read(b, f"/v1/communities/{COMMUNITY}/belonging", **window)
    assert report["totals"]["count"] == 128 and report["totals"]["tags"]["hostile"] == hostile_comments
    for thread in ("t0", "t5"):
        via_a = read(a, f"/v1/threads/{thread}", community_id=COMMUNITY, limit="200")
        assert via_a == read(b, f"/v1/threads/{thread}", community_id=COMMUNITY, limit="200")
        assert via_a["count"] == counters[thread]


REDIS_URL = os.environ.get("BELONG_TEST_REDIS_URL")


@pytest.mark.skipif(not REDIS_URL, reason='BELONG_TEST_REDIS_URL is not set (eval "$(bash .ci/redis.sh)")')
def test_rate_limits_hold_across_replicas(postgres_url, tiny_bundle):
    """A key's request budget holds for the sum of its requests over both replicas: the counters
    live in Redis (BELONG_RATE_LIMIT_STORAGE), not one per process (which would admit twice as many)."""
    assert REDIS_URL
    limit = 5
    env = {"BELONG_RATE_LIMIT_STORAGE": REDIS_URL, "BELONG_RATE_LIMIT_REQUESTS": str(limit)}
    with running_replicas(postgres_url, tiny_bundle, env) as ((a, b), token), httpx.Client(timeout=30) as client:
        headers = {"Authorization": f"Bearer {token}"}
        answers = [
            client.get(f"{url}/v1/flags", params={"community_id": COMMUNITY}, headers=headers)
            for _ in range(10)
            for url in (a, b)
        ]
    statuses = [r.status_code for r in answers]
    assert set(statuses) == {200, 429}, statuses
    # One budget for both: at most the limit (plus what a 1 s window boundary can let through),
    # never the 2 x limit two separate counters would admit.
    assert 1 <= statuses.count(200) <= limit + 1, statuses
    assert {200, 429} <= {r.status_code for r in answers[1::2]}  # replica B saw A's requests counted
    limited = next(r for r in answers if r.status_code == 429)
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["RateLimit-Limit"] == str(limit)

"""Reliability benchmark (not a test): a bounded run against a live `belong serve` that prints the
figures of issue 12's "Done when".

Usage:
    .venv/bin/python bench/reliability.py [--bundle models/default] [--port 18300]
        [--fuzz-examples 200] [--stream-examples 1500] [--overload-seconds 60] [--skip fuzz,overload,...]

Steps, each against the same server process (restarted once, by the kill -9 step):
1. reproducers: the inputs that answered 5xx or aborted a stream before; each must be 4xx;
2. fuzz: schemathesis on the server's own /openapi.json (valid and invalid data, every operation),
   then hypothesis-generated /v1/stream bodies sent by a full-duplex client: counts inputs, 5xx,
   schema violations and aborted streams;
3. rate limits: one key with the default limits sends 600 requests as fast as it can (429s with
   Retry-After and RateLimit-* headers); overload: the sustainable rate is measured first (closed
   loop, 4 clients x 8 comments honouring Retry-After, 10 s:
   the baseline, with its p99), then requests are sent open-loop at 4x that rate for 60 s; every
   acknowledged comment must be in the store exactly once, the excess answered 429/503 with
   Retry-After; prints the p99 of accepted requests;
4. kill -9 in the middle of a 5,000-line stream, restart, compare acknowledged with stored;
5. the database not writable for 10 s (another connection holds SQLite's exclusive lock) while 4
   clients keep storing and /readyz is polled: 503s with Retry-After, readiness, time to recover
   after the lock is released, acknowledged comments lost;
6. a moderator logs in with the right password while an attacker on the same IP sprays 300 wrong
   logins at other usernames.
Takes about 6-8 minutes on 2 cores; needs the machine to itself for meaningful latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.reliability.duplex import StreamBroken, stream_lines  # noqa: E402

HOST = "127.0.0.1"
PASSWORD = "a long moderator passphrase"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def heading(text: str) -> None:
    print(f"\n== {text}", flush=True)


# --- the server ---


@dataclass
class Server:
    bundle: Path
    database: Path
    port: int
    process: subprocess.Popen | None = None
    log: Path = field(default_factory=lambda: Path(tempfile.mkstemp(prefix="belong-reliability-", suffix=".log")[1]))

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        command = [
            sys.executable,
            "-c",
            "from belonging_cli.main import app; app()",
            "serve",
            "--bundle",
            str(self.bundle),
            "--database-url",
            f"sqlite:///{self.database}",
            "--port",
            str(self.port),
            "--no-access-log",
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited; see {self.log}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"the server was not ready within 180 s; see {self.log}")

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def prepare_store(database: Path) -> dict[str, str]:
    """Migrate, create keys (decoys first, so fuzzed key deletions rarely hit ours) and moderators."""
    from serving.moderation import accounts
    from serving.moderation.audit import Actor
    from serving.storage.db import make_sessionmaker, open_at_head
    from serving.storage.keys import create_key
    from serving.storage.ratelimits import KeyLimits, set_key_limits

    engine = open_at_head(f"sqlite:///{database}", migrate=True)
    keys = {}
    with make_sessionmaker(engine).begin() as session:
        for i in range(50):
            create_key(session, name=f"decoy{i}", scopes=["read"])
        for name, scopes in {"fuzz": ["admin"], "load": ["score", "read"], "ops": ["admin"]}.items():
            created = create_key(session, name=name, scopes=scopes)
            keys[name] = created.token
            if name in ("fuzz", "load"):  # high limits: these steps exercise the server, not the limiter
                set_key_limits(session, created.id, KeyLimits(100_000, 100_000))
        keys["default"] = create_key(session, name="default-limits", scopes=["score", "read"]).token
        for name in ("alice", "bob", "carol"):
            accounts.create_user(session, name, PASSWORD, "moderator", actor=Actor.cli())
    engine.dispose()
    return keys


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def free_port(preferred: int) -> int:
    for port in range(preferred, preferred + 100):
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
            return port
    raise SystemExit(f"no free port from {preferred}")


# --- 1. reproducers ---

REPRODUCERS = [
    ("GET", "/v1/flags?offset=9223372036854775808", None),
    ("GET", "/v1/threads/t1?offset=9223372036854775808", None),
    ("DELETE", "/v1/keys/9223372036854775808", None),
    ("POST", "/v1/score", '{"comments": [{"id": "x\\ud800", "text": "hi"}]}'),
    (
        "POST",
        "/v1/score",
        '{"comments": [{"id": "a", "text": "hi", "created_at": "9999-12-31T23:59:59-01:00"}], "store": true}',
    ),
    (
        "POST",
        "/v1/score",
        '{"comments": [{"id": "b", "text": "hi", "created_at": "0001-01-01T00:00:00+01:00"}], "store": true}',
    ),
    ("GET", "/v1/communities/c/belonging?since=9999-12-31T23:00:00-05:00", None),
    ("POST", "/v1/score", "[" * 100_000 + "]" * 100_000),
    ("POST", "/v1/score", '{"comments": [{"id": "c", "text": "hi", "n": ' + "9" * 5000 + "}]}"),
]


def reproducers(server: Server, key: str) -> bool:
    heading("1. reproducers of issue 12")
    ok = True
    with httpx.Client(base_url=server.url, headers=auth(key), timeout=30) as client:
        for method, path, body in REPRODUCERS:
            headers = {"Content-Type": "application/json"} if body else {}
            response = client.request(method, path, content=body.encode() if body else None, headers=headers)
            good = 400 <= response.status_code < 500 and "errors" in response.json()
            ok &= good
            shown = (body or "")[:60] + ("..." if body and len(body) > 60 else "")
            print(f"  {response.status_code} {method} {path[:60]} {shown}")
        stream_body = [
            b"[" * 50_000 + b"]" * 50_000,
            b'{"id": "s1", "text": "hi", "n": ' + b"9" * 5000 + b"}",
            b'{"id": "x\\ud800", "text": ""}',
            b'{"id": "s4", "text": "welcome"}',
        ]
        status, answers = stream_lines(
            HOST, server.port, stream_body, target="/v1/stream?store=false", headers=auth(key)
        )
        complete = status == 200 and [a["line"] for a in answers] == [1, 2, 3, 4]
        ok &= complete and "scores" in answers[3]
        print(
            f"  stream of 4 lines (deep JSON, 5000 digits, surrogate id, valid): {len(answers)} answers, "
            f"statuses {[a.get('error', {}).get('status', 200) for a in answers]}"
        )
        dup = [
            b'{"id": "dup", "text": "first text"}',
            b'{"id": "dup", "text": "first text"}',
            b'{"id": "dup", "text": "other"}',
        ]
        _status, answers = stream_lines(HOST, server.port, dup, target="/v1/stream?store=true", headers=auth(key))
        print(
            f"  duplicate id in one stream: {[a.get('error', {}).get('status', 200) for a in answers]} "
            "(same text: one result; other text: 409)"
        )
        for tid in ("a/b", "../x", "a%2Fb", "ü/ñ"):
            body = {"comments": [{"id": f"id-{uuid.uuid4().hex[:6]}", "text": "hello", "thread_id": tid}]}
            client.post("/v1/score", json=body)
            read = client.get(f"/v1/threads/{quote(tid, safe='')}")
            ok &= read.status_code == 200 and read.json()["thread_id"] == tid
            print(f"  thread id {tid!r} read back: {read.status_code}")
    print(f"  => all answered 4xx, no stream aborted: {'yes' if ok else 'NO'}")
    return ok


# --- 2. fuzz ---


def schemathesis_fuzz(server: Server, key: str, examples: int) -> tuple[int, Counter, list[str]]:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.failures import FailureGroup
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    import tests.reliability.test_fuzz  # noqa: F401  (registers the NDJSON serializer)

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    statuses: Counter = Counter()
    failures: list[str] = []
    sent = 0

    def fuzz_one(operation, mode) -> None:
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case):
            nonlocal sent
            sent += 1
            try:
                response = case.call_and_validate(base_url=server.url, headers=auth(key), checks=checks)
                statuses[f"{response.status_code // 100}xx"] += 1
            except (Exception, FailureGroup) as exc:
                statuses["failed check"] += 1
                failures.append(f"{operation.label} ({mode.value}): {str(exc)[:600]}")

        try:
            run()
        except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
            pass

    for result in schema.get_all_operations():
        operation = result.ok()
        inputs = bool(operation.path_parameters or operation.query or operation.headers or operation.body)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if inputs else (GenerationMode.POSITIVE,):
            fuzz_one(operation, mode)
    return sent, statuses, failures


def fresh_key(database: Path, name: str) -> str:
    """A new score key with high limits, made while the server runs (keys are read per request)."""
    from serving.storage.db import make_engine, make_sessionmaker
    from serving.storage.keys import create_key
    from serving.storage.ratelimits import KeyLimits, set_key_limits

    engine = make_engine(f"sqlite:///{database}")
    with make_sessionmaker(engine).begin() as session:
        created = create_key(session, name=name, scopes=["score"])
        set_key_limits(session, created.id, KeyLimits(100_000, 100_000))
    engine.dispose()
    return created.token


def stream_fuzz(server: Server, key: str, examples: int) -> tuple[int, int, int, int, Counter]:
    """(streams, lines, aborted streams, 5xx lines, statuses of streams refused whole)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.reliability.test_stream_properties import line_values

    streams = lines_sent = aborted = server_errors = 0
    refused: Counter = Counter()

    @given(lines=st.lists(line_values, min_size=3, max_size=30), store=st.booleans())
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(lines, store):
        nonlocal streams, lines_sent, aborted, server_errors
        streams += 1
        lines_sent += len(lines)
        target = f"/v1/stream?store={str(store).lower()}"
        try:
            status, answers = stream_lines(HOST, server.port, lines, target=target, headers=auth(key), timeout=60)
        except (StreamBroken, TimeoutError):
            aborted += 1
            return
        expected = [n for n, raw in enumerate(lines, start=1) if raw.strip()]
        if status != 200:
            refused[status] += 1  # answered whole (e.g. 429/503 with Retry-After), not aborted
            if status >= 500 and status != 503:
                server_errors += 1
            return
        if [a["line"] for a in answers] != expected:
            aborted += 1
        server_errors += sum(1 for a in answers if a.get("error", {}).get("status", 200) >= 500)

    run()
    return streams, lines_sent, aborted, server_errors, refused


def fuzz(server: Server, key: str, examples: int, stream_examples: int) -> bool:
    heading("2. fuzz")
    started = time.perf_counter()
    sent, statuses, failures = schemathesis_fuzz(server, key, examples)
    print(
        f"  schemathesis: {sent} requests over every operation (valid and invalid data) in "
        f"{time.perf_counter() - started:.0f} s; answers by class {dict(statuses)}"
    )
    for failure in failures[:5]:
        print("  FAILED:", failure.replace("\n", " ")[:400])
    started = time.perf_counter()
    # A key of its own: schemathesis, with an admin key, may have revoked or re-limited the fuzz key.
    stream_key = fresh_key(server.database, "stream-fuzz")
    streams, lines, aborted, server_errors, refused = stream_fuzz(server, stream_key, stream_examples)
    print(
        f"  streams: {streams} generated /v1/stream bodies, {lines} lines in {time.perf_counter() - started:.0f} s; "
        f"aborted or incomplete: {aborted}; 5xx lines: {server_errors}; refused whole: {dict(refused)}"
    )
    total_5xx = statuses.get("5xx", 0) + server_errors
    print(
        f"  => fuzzed inputs: {sent + lines} (requests + stream lines); 5xx: {total_5xx}; aborted streams: {aborted}; "
        f"schema violations: {len(failures)}"
    )
    return total_5xx == 0 and aborted == 0 and not failures


# --- 3. overload ---


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)  # accepted requests, seconds
    statuses: Counter = field(default_factory=Counter)
    retry_after_missing: int = 0
    acknowledged: list[str] = field(default_factory=list)
    refused_ids: list[str] = field(default_factory=list)


async def _send(client: httpx.AsyncClient, ids: list[str], load: Load) -> float:
    """Send one request; the Retry-After it asked for (0 when accepted)."""
    body = {"comments": [{"id": cid, "text": f"Welcome to the group! where are you from? ({cid})"} for cid in ids]}
    started = time.perf_counter()
    try:
        response = await client.post("/v1/score", json=body)
    except httpx.HTTPError as exc:
        load.statuses[type(exc).__name__] += 1
        return 1.0
    load.statuses[response.status_code] += 1
    if response.status_code == 200:
        load.latencies.append(time.perf_counter() - started)
        load.acknowledged += ids
        return 0.0
    load.refused_ids += ids
    if response.status_code in (429, 503) and "retry-after" not in response.headers:
        load.retry_after_missing += 1
    return float(response.headers.get("retry-after", "1"))


async def closed_loop(url: str, key: str, clients: int, size: int, seconds: float) -> tuple[Load, float]:
    load = Load()
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=auth(key), timeout=60, limits=limits) as client:

        async def worker() -> None:  # a well-behaved client: waits as long as Retry-After asks
            while time.perf_counter() < deadline:
                wait = await _send(client, [f"base-{uuid.uuid4().hex}" for _ in range(size)], load)
                await asyncio.sleep(min(wait, max(0.0, deadline - time.perf_counter())))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return load, len(load.acknowledged) / elapsed


async def open_loop(url: str, key: str, rate: float, size: int, seconds: float) -> Load:
    """Requests of `size` comments at `rate` comments/s, whatever the answers take (no coordination)."""
    load = Load()
    interval = size / rate
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=512)
    async with httpx.AsyncClient(base_url=url, headers=auth(key), timeout=120, limits=limits) as client:
        tasks = []
        started = time.perf_counter()
        n = 0
        while (now := time.perf_counter()) - started < seconds:
            due = started + n * interval
            if due > now:
                await asyncio.sleep(due - now)
            tasks.append(asyncio.ensure_future(_send(client, [f"over-{uuid.uuid4().hex}" for _ in range(size)], load)))
            n += 1
        await asyncio.gather(*tasks)
    return load


def stored_ids(database: Path, ids: list[str]) -> Counter:
    found: Counter = Counter()
    with sqlite3.connect(database) as db:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for (cid,) in db.execute(f"SELECT comment_id FROM comments WHERE comment_id IN ({marks})", chunk):
                found[cid] += 1
    return found


async def burst(url: str, key: str, requests: int, clients: int) -> tuple[Counter, int, int]:
    """As fast as possible with one key: (statuses, 429s without Retry-After, answers without RateLimit-*)."""
    statuses: Counter = Counter()
    missing_retry = missing_headers = 0
    async with httpx.AsyncClient(base_url=url, headers=auth(key), timeout=60) as client:

        async def worker(n: int) -> None:
            nonlocal missing_retry, missing_headers
            for _ in range(n):
                response = await client.get("/v1/info")
                statuses[response.status_code] += 1
                missing_retry += response.status_code == 429 and "retry-after" not in response.headers
                missing_headers += "ratelimit-remaining" not in response.headers

        await asyncio.gather(*(worker(requests // clients) for _ in range(clients)))
    return statuses, missing_retry, missing_headers


def overload(server: Server, key: str, seconds: float, default_key: str) -> bool:
    heading("3. rate limits and overload at 4x the sustainable rate")
    started = time.perf_counter()
    statuses, missing_retry, missing_headers = asyncio.run(burst(server.url, default_key, 600, 16))
    print(
        f"  one key with the default limits (100 requests/s), 600 GET /v1/info as fast as 16 clients go "
        f"({time.perf_counter() - started:.1f} s): {dict(statuses)}; 429 without Retry-After: {missing_retry}; "
        f"answers without RateLimit-*: {missing_headers}"
    )
    size = 8
    base, sustainable = asyncio.run(closed_loop(server.url, key, clients=4, size=size, seconds=10))
    print(
        f"  baseline (closed loop, 4 clients x {size} comments honouring Retry-After, 10 s): "
        f"{sustainable:.0f} comments/s sustained, "
        f"p50 {pct(base.latencies, 0.5) * 1000:.0f} ms, p99 {pct(base.latencies, 0.99) * 1000:.0f} ms, "
        f"answers {dict(base.statuses)}"
    )
    rate = 4 * sustainable
    load = asyncio.run(open_loop(server.url, key, rate=rate, size=size, seconds=seconds))
    sent = sum(load.statuses.values())
    found = stored_ids(server.database, load.acknowledged + load.refused_ids)
    lost = [cid for cid in load.acknowledged if found[cid] != 1]
    refused_but_stored = sum(1 for cid in load.refused_ids if found[cid])
    accepted = load.statuses.get(200, 0)
    print(
        f"  offered {rate:.0f} comments/s ({rate / size:.0f} requests of {size}/s) for {seconds:.0f} s: "
        f"{sent} requests; "
        f"answers {dict(load.statuses)}"
    )
    print(
        f"  accepted: {accepted} requests, {len(load.acknowledged)} comments "
        f"({len(load.acknowledged) / seconds:.0f}/s); "
        f"p50 {pct(load.latencies, 0.5) * 1000:.0f} ms, p99 {pct(load.latencies, 0.99) * 1000:.0f} ms, "
        f"max {max(load.latencies, default=0) * 1000:.0f} ms"
    )
    print(
        f"  refused (429/503) without Retry-After: {load.retry_after_missing}; acknowledged comments lost or "
        f"stored twice: {len(lost)}; refused comments stored anyway: {refused_but_stored}"
    )
    return (
        not lost
        and load.retry_after_missing == 0
        and set(load.statuses) <= {200, 429, 503}
        and statuses.get(429, 0) > 0
        and missing_retry == missing_headers == 0
    )


# --- 4. kill -9 ---


def kill9(server: Server, key: str, lines_total: int = 5000, kill_after: int = 2000) -> bool:
    heading(f"4. kill -9 in the middle of a {lines_total}-line stream")
    texts = {f"kill-{uuid.uuid4().hex[:10]}": f"line {i}: welcome, where are you from?" for i in range(lines_total)}
    lines = [
        json.dumps({"id": cid, "text": text, "thread_id": f"kt{i % 100}"}).encode()
        for i, (cid, text) in enumerate(texts.items())
    ]

    def kill_at(count: int, _answer: dict) -> bool:
        if count == kill_after:
            server.kill9()
        return False

    try:
        stream_lines(HOST, server.port, lines, target="/v1/stream?store=true", headers=auth(key), on_answer=kill_at)
        answers: list[dict] = []
        print("  the stream finished before the kill")
    except StreamBroken as broken:
        answers = broken.answers
    acknowledged = [a["id"] for a in answers if "scores" in a]
    server.start()
    found = stored_ids(server.database, list(texts))
    with sqlite3.connect(server.database) as db:
        marks = ",".join("?" * len(acknowledged[:900]))
        wrong_text = sum(
            1
            for cid, text in db.execute(
                f"SELECT comment_id, text FROM comments WHERE comment_id IN ({marks})", acknowledged[:900]
            )
            if texts[cid] != text
        )
    missing = [cid for cid in acknowledged if found[cid] != 1]
    print(
        f"  acknowledged before the kill: {len(acknowledged)}; stored after restart: {sum(found.values())} "
        f"(each once: {all(v == 1 for v in found.values())}); "
        f"acknowledged but not stored exactly once: {len(missing)}; "
        f"stored with another text: {wrong_text}"
    )
    status, again = stream_lines(HOST, server.port, lines, target="/v1/stream?store=true", headers=auth(key))
    found = stored_ids(server.database, list(texts))
    print(
        f"  resent the whole stream: {len(again)} answers (status {status}); stored now: {sum(found.values())} of "
        f"{lines_total}, each once: {all(v == 1 for v in found.values())}"
    )
    return not missing and wrong_text == 0 and sum(found.values()) == lines_total


# --- 5. database not writable ---


def store_fault(server: Server, key: str, seconds: float = 10.0) -> bool:
    heading(f"5. database not writable for {seconds:.0f} s (exclusive lock held by another connection)")
    stop = threading.Event()
    events: list[tuple[float, int, bool, list[str]]] = []  # (time, status, retry-after, ids)
    ready: list[tuple[float, int]] = []

    def writer() -> None:
        with httpx.Client(base_url=server.url, headers=auth(key), timeout=60) as client:
            while not stop.is_set():
                ids = [f"fault-{uuid.uuid4().hex}" for _ in range(4)]
                body = {"comments": [{"id": cid, "text": "hello, welcome!"} for cid in ids]}
                try:
                    response = client.post("/v1/score", json=body)
                except httpx.HTTPError:
                    continue
                events.append((time.monotonic(), response.status_code, "retry-after" in response.headers, ids))

    def prober() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not stop.is_set():
                ready.append((time.monotonic(), client.get("/readyz").status_code))
                time.sleep(0.02)

    threads = [threading.Thread(target=writer) for _ in range(4)] + [threading.Thread(target=prober)]
    for t in threads:
        t.start()
    time.sleep(2)
    holder = sqlite3.connect(server.database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    locked_at = time.monotonic()
    time.sleep(seconds)
    holder.execute("ROLLBACK")
    holder.close()
    released_at = time.monotonic()
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join(60)
    during = [e for e in events if locked_at <= e[0] <= released_at]
    statuses = Counter(e[1] for e in during)
    no_retry = sum(1 for e in during if e[1] == 503 and not e[2])
    not_ready = [t for t, s in ready if locked_at <= t <= released_at and s == 503]
    first_not_ready = min(not_ready, default=None)
    ready_again = min((t for t, s in ready if t > released_at and s == 200), default=None)
    write_again = min((e[0] for e in events if e[0] > released_at and e[1] == 200), default=None)
    acknowledged = [cid for e in events if e[1] == 200 for cid in e[3]]
    refused = [cid for e in events if e[1] != 200 for cid in e[3]]
    found = stored_ids(server.database, acknowledged + refused)
    lost = sum(1 for cid in acknowledged if found[cid] != 1)
    print(f"  answers while locked: {dict(statuses)}; 503 without Retry-After: {no_retry}")
    if first_not_ready is not None:
        share = len(not_ready) / max(1, sum(1 for t, _ in ready if locked_at <= t <= released_at))
        print(
            f"  /readyz: 503 from {first_not_ready - locked_at:.2f} s after the lock was taken "
            f"({share:.0%} of the polls during the fault)"
        )
    else:
        print("  /readyz: never 503 during the fault")
    print(
        f"  recovery after the lock was released: /readyz 200 after "
        f"{(ready_again - released_at) if ready_again else float('nan'):.2f} s, first stored write after "
        f"{(write_again - released_at) if write_again else float('nan'):.2f} s"
    )
    print(
        f"  acknowledged comments: {len(acknowledged)}, lost or twice: {lost}; refused ones stored: "
        f"{sum(1 for cid in refused if found[cid])}"
    )
    return (
        statuses.get(503, 0) > 0
        and no_retry == 0
        and first_not_ready is not None
        and ready_again is not None
        and ready_again - released_at < 1.0
        and lost == 0
    )


# --- 6. login under a spraying attacker ---

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def login(client: httpx.Client, username: str, password: str) -> int:
    page = client.get("/moderation/login")
    match = CSRF_RE.search(page.text)
    assert match, "no CSRF token on the login page"
    response = client.post(
        "/moderation/login", data={"username": username, "password": password, "csrf_token": match.group(1)}
    )
    return response.status_code


def login_throttling(server: Server, attempts: int = 300) -> bool:
    heading(f"6. moderator login while an attacker on the same IP sprays {attempts} wrong logins")
    with httpx.Client(base_url=server.url, timeout=30) as alice:
        before = login(alice, "alice", PASSWORD)
    answers: Counter = Counter()

    def attacker(offset: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for i in range(offset, attempts, 4):
                answers[login(client, "bob" if i % 3 == 0 else f"user{i}", "password-guess-123")] += 1

    threads = [threading.Thread(target=attacker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(2)
    during = []
    with httpx.Client(base_url=server.url, timeout=30) as alice:
        during.append(login(alice, "alice", PASSWORD))
    for t in threads:
        t.join()
    with httpx.Client(base_url=server.url, timeout=30) as alice:
        after = login(alice, "alice", PASSWORD)
    with httpx.Client(base_url=server.url, timeout=30) as carol:
        newcomer = login(carol, "carol", PASSWORD)
    print(
        f"  alice (has logged in from this IP before): {before} before the attack, {during[0]} during, {after} after "
        "(303 = logged in)"
    )
    print(f"  attacker's answers: {dict(answers)} (401 wrong password, 429 refused unchecked)")
    print(
        f"  carol, who never logged in from this IP, right after the attack: {newcomer} "
        "(429 while the IP is over its budget: the documented limitation)"
    )
    return before == during[0] == after == 303 and answers.get(429, 0) > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--port", type=int, default=18300)
    parser.add_argument("--fuzz-examples", type=int, default=200, help="schemathesis examples per operation and mode")
    parser.add_argument("--stream-examples", type=int, default=1500, help="generated /v1/stream bodies")
    parser.add_argument("--overload-seconds", type=float, default=60)
    parser.add_argument("--skip", default="", help="comma-separated: reproducers,fuzz,overload,kill9,store,login")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    workdir = Path(tempfile.mkdtemp(prefix="belong-reliability-"))
    database = workdir / "belonging.db"
    keys = prepare_store(database)
    server = Server(args.bundle, database, free_port(args.port))
    print(f"bundle {args.bundle}, store {database}, server {server.url}, log {server.log}")
    server.start()
    results = {}
    try:
        if "reproducers" not in skip:
            results["reproducers answer 4xx"] = reproducers(server, keys["fuzz"])
        if "fuzz" not in skip:
            results["fuzz: no 5xx, no aborted stream"] = fuzz(
                server, keys["fuzz"], args.fuzz_examples, args.stream_examples
            )
        if "overload" not in skip:
            results["rate limits and overload: nothing lost, Retry-After"] = overload(
                server, keys["load"], args.overload_seconds, keys["default"]
            )
        if "kill9" not in skip:
            results["kill -9: acknowledged = stored once"] = kill9(server, keys["load"])
        if "store" not in skip:
            results["store fault: 503, readyz, recovery < 1 s"] = store_fault(server, keys["load"])
        if "login" not in skip:
            results["login under spraying"] = login_throttling(server)
    finally:
        server.stop()
    heading("summary")
    for name, ok in results.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")


if __name__ == "__main__":
    main()

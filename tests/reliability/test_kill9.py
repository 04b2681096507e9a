"""kill -9 in the middle of a /v1/stream: after a restart every acknowledged comment is stored,
exactly once and with the text that was scored; resending the whole stream stores nothing twice."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.reliability.duplex import StreamBroken, stream_lines

ROOT = Path(__file__).resolve().parents[2]
LINES = 3000
KILL_AFTER = 800


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(bundle: Path, database: Path, port: int) -> subprocess.Popen:
    command = [
        sys.executable,
        "-c",
        "from belonging_cli.main import app; app()",
        "serve",
        "--bundle",
        str(bundle),
        "--database-url",
        f"sqlite:///{database}",
        "--port",
        str(port),
        "--no-auth",
        "--no-access-log",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BELONG_THREADS": "1", "BELONG_RATE_LIMIT_ENABLED": "false"}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the server exited: {server.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.kill()
    raise AssertionError("the server was not ready within 60 s")


def stored(database: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT comment_id, text FROM comments").fetchall()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kill_9_mid_stream_loses_and_duplicates_nothing_acknowledged(tiny_bundle, tmp_path):
    database, port = tmp_path / "belonging.db", free_port()
    texts = {f"k{i}": f"comment number {i}, welcome to the thread" for i in range(LINES)}
    lines = [
        f'{{"id": "{cid}", "text": "{text}", "thread_id": "t{i % 50}"}}'.encode()
        for i, (cid, text) in enumerate(texts.items())
    ]

    server = start_server(tiny_bundle, database, port)
    try:

        def kill_midway(count: int, _answer: dict) -> bool:
            if count == KILL_AFTER:
                server.send_signal(signal.SIGKILL)
            return False

        with pytest.raises(StreamBroken) as broken:
            stream_lines("127.0.0.1", port, lines, target="/v1/stream?store=true", on_answer=kill_midway)
    finally:
        server.kill()
        server.wait(10)
    answers = broken.value.answers
    acknowledged = [a["id"] for a in answers if "scores" in a]
    assert KILL_AFTER <= len(acknowledged) < LINES  # killed mid-stream, after some acknowledgements

    server = start_server(tiny_bundle, database, port)  # the store must open cleanly after the kill
    try:
        rows = stored(database)
        ids = [cid for cid, _ in rows]
        assert len(ids) == len(set(ids))  # nothing twice
        assert set(acknowledged) <= set(ids)  # everything acknowledged is there
        assert all(texts[cid] == text for cid, text in rows)  # with the text that was scored
        status, again = stream_lines("127.0.0.1", port, lines, target="/v1/stream?store=true")
        assert status == 200 and [a["line"] for a in again] == list(range(1, LINES + 1))
        assert all("scores" in a for a in again)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(20)
    rows = stored(database)
    assert sorted(cid for cid, _ in rows) == sorted(texts)  # each once, after the resend

"""`belong serve --workers N`: N processes on one port, each with its own model, writing one SQLite
database safely."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def _workers(pid: int) -> list[int]:
    """uvicorn's worker processes under `pid` (not multiprocessing's resource tracker)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes():
                out.append(int(child))
    return out


def test_two_workers_share_the_port_and_the_database(tiny_bundle, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    db = tmp_path / "var" / "belonging.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("BELONG_THREADS", None)
    command = [sys.executable, "-m", "belonging_cli.main", "serve", "--workers", "2", "--no-auth", "--no-access-log"]
    command += ["--bundle", str(tiny_bundle), "--port", str(port), "--database-url", f"sqlite:///{db}"]
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        ready = 0
        while ready < 8 and time.monotonic() < deadline:  # each worker answers /readyz for itself
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                ready = ready + 1 if httpx.get(url + "/readyz").status_code == 200 else 0
            except httpx.TransportError:
                ready = 0
            time.sleep(0.1)
        assert ready >= 8, (tmp_path / "server.log").read_text()
        assert len(_workers(server.pid)) == 2

        def post(i: int) -> int:
            body = {"comments": [{"id": f"c{i}", "thread_id": "t1", "text": f"welcome number {i}"}]}
            return httpx.post(url + "/v1/score", json=body, timeout=30).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(post, range(40)))
        assert statuses == [200] * 40
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # stored by each process's group writer
            thread = httpx.get(url + "/v1/threads/t1")
            if thread.status_code == 200 and thread.json()["count"] == 40:
                break
            time.sleep(0.2)
        assert thread.status_code == 200 and thread.json()["count"] == 40, thread.text
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()

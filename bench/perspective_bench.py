"""Latency of the Perspective-compatible `comments:analyze`, against /v1/score in the same run.

Usage:
    .venv/bin/python bench/perspective_bench.py [--bundle models/default] [--seconds 8] [--port 18110]

Starts `belong serve` in its own process and sends closed-loop single-comment requests at
concurrency 1 and 8 (each client sends its next request when the last is answered), from a lean
keep-alive asyncio client:
- `POST /v1alpha1/comments:analyze?key=` shaped like Coral's call (doNotStore true, TOXICITY, en);
- the same with doNotStore false (stored, Perspective's default) and with spanAnnotations;
- the baseline: `POST /v1/score` with one comment, store=false.
Prints p50/p99 latency per request and requests/s. Texts: real tweets from
../shared/data/xlmt_tweets.jsonl when present, else a built-in multilingual sample.
Coral gives Perspective 800 ms by default; the target is p99 well inside that at concurrency 8.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_bench import ROOT, Result, load_texts, start_server  # noqa: E402

FALLBACK = [
    "Welcome to RedNote!! Where are you from?",
    "go back to TikTok, nobody wants you here",
    "欢迎欢迎，常来玩",
    "滚回去，没人欢迎你们",
    "Bienvenida, amiga 🤗 ¿de dónde eres?",
    "What song is this? I love it",
    "Thanks for the help everyone, you are all so kind to newcomers.",
    "ようこそ！どこから来たの？",
]


class Connection:
    def __init__(self, port: int, path: str, headers: str) -> None:
        self.port = port
        self.head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
        header = await self.reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in header.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        await self.reader.readexactly(length)
        return int(header[9:12])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def closed_loop(
    name: str, port: int, path: str, headers: str, make_body: Callable[[int], bytes], concurrency: int, seconds: float
) -> Result:
    result = Result(name, 0, 0.0)
    counter = 0
    warm_until = time.perf_counter() + 1.0  # one second of warm-up, not measured
    stop = warm_until + seconds

    async def client() -> None:
        nonlocal counter
        connection = Connection(port, path, headers)
        try:
            while time.perf_counter() < stop:
                counter += 1
                body = make_body(counter)
                sent = time.perf_counter()
                status = await connection.post(body)
                done = time.perf_counter()
                if sent >= warm_until and done <= stop:
                    result.texts += 1
                    result.errors += status != 200
                    result.latencies.append(done - sent)
        finally:
            connection.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    result.seconds = seconds
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--texts", type=Path, default=ROOT.parent / "shared" / "data" / "xlmt_tweets.jsonl")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured time per configuration")
    parser.add_argument("--port", type=int, default=18110)
    args = parser.parse_args()
    texts = load_texts(args.texts, 1024) if args.texts.exists() else FALLBACK
    print(f"{len(texts)} texts from {args.texts if args.texts.exists() else 'the built-in sample'}")
    run = f"{time.monotonic_ns():x}"

    def analyze(extra: dict) -> Callable[[int], bytes]:
        def body(i: int) -> bytes:
            text = texts[i % len(texts)]
            request = {"comment": {"text": text}, "requestedAttributes": {"TOXICITY": {}}, "languages": ["en"]}
            return json.dumps({**request, "doNotStore": True, **extra, "clientToken": f"{run}-{i}"}).encode()

        return body

    def score(i: int) -> bytes:
        comment = {"id": f"{run}-{i}", "text": texts[i % len(texts)], "community_id": "bench"}
        return json.dumps({"comments": [comment], "store": False}).encode()

    with tempfile.TemporaryDirectory() as tmp:
        server, key = start_server(args.bundle, Path(tmp), args.port)
        try:
            configs = [
                (
                    "/v1/score, 1 comment, store=false (baseline)",
                    "/v1/score",
                    f"Authorization: Bearer {key}\r\n",
                    score,
                ),
                (
                    "comments:analyze, Coral's call (doNotStore)",
                    f"/v1alpha1/comments:analyze?key={key}",
                    "",
                    analyze({}),
                ),
                (
                    "comments:analyze, stored (doNotStore false)",
                    f"/v1alpha1/comments:analyze?key={key}",
                    "",
                    analyze({"doNotStore": False}),
                ),
                (
                    "comments:analyze, spanAnnotations",
                    f"/v1alpha1/comments:analyze?key={key}",
                    "",
                    analyze({"spanAnnotations": True}),
                ),
            ]
            print(f"{'configuration':<48} {'conc':>4} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
            for concurrency in (1, 8):
                for name, path, headers, make_body in configs:
                    r = asyncio.run(closed_loop(name, args.port, path, headers, make_body, concurrency, args.seconds))
                    print(
                        f"{name:<48} {concurrency:>4} {r.rate:>7.1f} {r.pct(0.5) or 0:>7.1f} "
                        f"{r.pct(0.99) or 0:>7.1f} {r.errors:>6}",
                        flush=True,
                    )
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()

"""`belong consume`: score comments from a Redis Streams consumer group, store them, publish results.

Usage:
    belong consume --redis redis://127.0.0.1:6379/0 --stream comments --group belonging \
        [--out-stream scores] [--consumer NAME] [--batch-size 64] [--claim-idle-ms 60000] \
        [--metrics-port 9108] [--bundle models/default] [--database-url URL] [--drain]

Run several with the same --group (and distinct --consumer names) to share the work. See
docs/scale-out.md.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path
from typing import Annotated

import typer

from belonging_cli.common import DatabaseUrl, err, fail, load_settings, store


def consume(
    redis_url: Annotated[str, typer.Option("--redis", help="Redis URL, e.g. redis://127.0.0.1:6379/0.")],
    stream: Annotated[str, typer.Option(help="The stream of comments to read.")],
    group: Annotated[str, typer.Option(help="Consumer group; created (from the stream's start) if missing.")],
    out_stream: Annotated[
        str | None, typer.Option("--out-stream", help="Publish each result to this stream (default: none).")
    ] = None,
    dead_stream: Annotated[
        str | None, typer.Option("--dead-stream", help="Malformed entries go here (default: STREAM:dead).")
    ] = None,
    consumer: Annotated[
        str | None,
        typer.Option(help="This consumer's name in the group; keep it stable across restarts (default: host-pid)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Entries read and scored at once.", min=1, max=4096)] = 64,
    block_ms: Annotated[int, typer.Option(help="How long one read waits for new entries.", min=1)] = 1000,
    claim_idle_ms: Annotated[
        int, typer.Option(help="Reclaim entries another consumer has held unacknowledged this long.", min=1)
    ] = 60_000,
    start_id: Annotated[
        str, typer.Option(help="Where a NEW group starts: 0 (the whole stream) or $ (only new entries).")
    ] = "0",
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics on this port (on --metrics-host).")
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Interface for the metrics port.")] = "127.0.0.1",
    bundle: Annotated[
        Path | None, typer.Option("--bundle", help="Bundle folder (default: BELONG_BUNDLE or models/default).")
    ] = None,
    database_url: DatabaseUrl = None,
    drain: Annotated[
        bool, typer.Option("--drain", help="Exit once the stream has nothing new and nothing to reclaim.")
    ] = False,
) -> None:
    """Score a Redis stream through a consumer group; acknowledge each entry only once it is stored."""
    import redis
    from prometheus_client import start_http_server

    from serving.consumer.metrics import ConsumerMetrics
    from serving.consumer.stream import ConsumerConfig, StreamConsumer
    from serving.engine.bundle import BundleError
    from serving.engine.tagger import Tagger

    settings = load_settings(bundle=bundle, database_url=database_url)
    try:
        config = ConsumerConfig(
            stream=stream,
            group=group,
            consumer=consumer or f"{socket.gethostname()}-{os.getpid()}",
            out_stream=out_stream,
            dead_stream=dead_stream,
            batch_size=batch_size,
            block_ms=block_ms,
            claim_idle_ms=claim_idle_ms,
            start_id=start_id,
        )
        client = redis.Redis.from_url(redis_url)
        client.ping()
    except ValueError as exc:
        raise fail(str(exc)) from exc
    except redis.RedisError as exc:
        raise fail(f"cannot reach Redis at {redis_url}: {exc}", 1) from exc
    try:
        tagger = Tagger.load(
            settings.bundle,
            threads=settings.threads,
            languages=settings.languages,
            min_language_confidence=settings.lang_min_confidence,
            batch_size=settings.max_batch_size,
        )
    except (BundleError, ValueError) as exc:
        raise fail(f"cannot load the model: {exc}", 1) from exc
    metrics = ConsumerMetrics()
    if metrics_port is not None:
        start_http_server(metrics_port, addr=metrics_host, registry=metrics.registry)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())  # finish the batch in hand, then exit
    with store(settings) as sessions:
        err.print(
            f"consuming {stream!r} as {config.consumer!r} in group {group!r}"
            + (f", results to {out_stream!r}" if out_stream else "")
            + f", dead letters to {config.dead_letters!r}"
        )
        try:
            StreamConsumer(client, tagger, sessions, config, metrics).run(stop, drain=drain)
        except redis.RedisError as exc:
            raise fail(f"Redis failed: {exc}", 1) from exc

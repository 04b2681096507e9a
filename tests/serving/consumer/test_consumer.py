"""The Redis Streams consumer against a real redis-server, the real tiny model and a real store:
results stored once and published once, acknowledged only after storage, malformed entries in the
dead-letter stream, several consumers sharing a group, one killed mid-batch."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import select

from serving.consumer.metrics import ConsumerMetrics
from serving.consumer.stream import ConsumerConfig, StreamConsumer
from serving.storage.comments import count_comments
from serving.storage.db import make_engine, make_sessionmaker
from serving.storage.models import Thread
from tests.conftest import ROOT


@pytest.fixture
def sessions(db_url):
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def consumer_for(redis_client, tagger, sessions, streams, name="c1", **overrides) -> StreamConsumer:
    config = ConsumerConfig(
        stream=streams.source,
        group=streams.group,
        consumer=name,
        out_stream=streams.out,
        dead_stream=streams.dead,
        batch_size=overrides.pop("batch_size", 16),
        block_ms=overrides.pop("block_ms", 100),
        claim_idle_ms=overrides.pop("claim_idle_ms", 60_000),
        **overrides,
    )
    return StreamConsumer(redis_client, tagger, sessions, config, ConsumerMetrics())


def published(redis_client, stream) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in redis_client.xrange(stream)]


def metric(consumer: StreamConsumer, name: str, **labels: str) -> float:
    value = consumer.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_scores_stores_publishes_and_acknowledges(redis_client, tagger, sessions, streams):
    ids = [
        redis_client.xadd(streams.source, {"id": "c1", "text": "Welcome! where are you from?", "thread_id": "t1"}),
        redis_client.xadd(streams.source, {"comment": json.dumps({"id": "c2", "text": "滚回去", "thread_id": "t1"})}),
        redis_client.xadd(streams.source, {"id": "c3", "txt": "typo"}),
        redis_client.xadd(streams.source, {"id": "c1", "text": "Welcome! where are you from?", "thread_id": "t1"}),
        redis_client.xadd(streams.source, {"id": "c4", "text": "hi", "community_id": "other", "lang": "en"}),
    ]
    consumer = consumer_for(redis_client, tagger, sessions, streams)
    consumer.run(drain=True)

    out = published(redis_client, streams.out)
    assert [o["entry"] for o in out] == [ids[0].decode(), ids[1].decode(), ids[3].decode(), ids[4].decode()]
    assert [(o["id"], o["community_id"]) for o in out] == [("c1", ""), ("c2", ""), ("c1", ""), ("c4", "other")]
    # The comments the consumer scored together, scored together again: the same batches, the same
    # results (int8 scales activations per batch, so other company could move a score slightly).
    direct = tagger.score(["Welcome! where are you from?", "滚回去", "hi"], [None, None, "en"])
    for o, want in zip([out[0], out[1], out[3]], direct, strict=True):
        assert json.loads(o["tags"]) == want.tags and o["lang"] == want.lang and o["truncated"] == "false"
        assert json.loads(o["scores"]) == want.scores
    assert out[2]["scores"] == out[0]["scores"]  # the duplicate answers with the stored result
    assert out[3]["lang"] == "en" and out[0]["model"] == tagger.name

    (dead,) = published(redis_client, streams.dead)
    assert dead["entry"] == ids[2].decode() and dead["stream"] == streams.source and dead["consumer"] == "c1"
    assert dead["reason"].startswith("unknown field(s) ['txt']") and json.loads(dead["fields"]) == {
        "id": "c3",
        "txt": "typo",
    }

    assert redis_client.xpending(streams.source, streams.group)["pending"] == 0
    with sessions() as session:
        assert count_comments(session) == 3
        thread = session.scalars(select(Thread).where(Thread.thread_id == "t1")).one()
        assert thread.comment_count == 2  # c1 counted once
    assert metric(consumer, "belong_consumer_entries_total", outcome="scored") == 3
    assert metric(consumer, "belong_consumer_entries_total", outcome="stored_before") == 1
    assert metric(consumer, "belong_consumer_dead_letters_total") == 1
    assert metric(consumer, "belong_consumer_batch_size_sum") == 5


def test_a_redelivered_comment_is_not_scored_or_counted_again(redis_client, tagger, sessions, streams):
    for _ in range(2):
        redis_client.xadd(streams.source, {"id": "same", "text": "go back", "thread_id": "t"})
        consumer_for(redis_client, tagger, sessions, streams).run(drain=True)
    with sessions() as session:
        assert count_comments(session) == 1
        assert session.scalars(select(Thread)).one().comment_count == 1
    first, second = published(redis_client, streams.out)
    assert first["scores"] == second["scores"] and first["entry"] != second["entry"]


def test_a_failing_store_acknowledges_only_the_dead_letters(redis_client, tagger, streams, tmp_path):
    # A database that does not exist (not migrated): storing fails, entries stay pending.
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    consumer = consumer_for(redis_client, tagger, make_sessionmaker(engine), streams)
    redis_client.xadd(streams.source, {"id": "ok", "text": "fine"})
    redis_client.xadd(streams.source, {"text": "no id"})
    consumer.ensure_group()
    assert consumer.step() == 2
    pending = redis_client.xpending(streams.source, streams.group)
    assert pending["pending"] == 1 and published(redis_client, streams.out) == []
    assert len(published(redis_client, streams.dead)) == 1
    assert metric(consumer, "belong_consumer_failed_batches_total") == 1
    engine.dispose()


def run_until_done(consumers: list[StreamConsumer], done, timeout: float = 60.0) -> None:
    """Run consumers in threads until `done()`; fail after `timeout`."""
    stop = threading.Event()
    threads = [threading.Thread(target=c.run, args=(stop,), daemon=True) for c in consumers]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    try:
        while not done():
            assert time.monotonic() < deadline, "consumers did not finish in time"
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)


def all_settled(redis_client, streams, sessions, expected: int):
    def done() -> bool:
        with sessions() as session:
            stored = count_comments(session)
        return stored == expected and redis_client.xpending(streams.source, streams.group)["pending"] == 0

    return done


def test_consumers_in_one_group_share_the_work(redis_client, tagger, sessions, streams):
    consumers = [consumer_for(redis_client, tagger, sessions, streams, name=n, batch_size=4) for n in ("a", "b")]
    consumers[0].ensure_group()

    def produce() -> None:
        for i in range(40):
            redis_client.xadd(streams.source, {"id": f"c{i}", "text": f"comment number {i}, welcome?"})
            time.sleep(0.01)

    producer = threading.Thread(target=produce)
    producer.start()
    run_until_done(consumers, all_settled(redis_client, streams, sessions, 40))
    producer.join()
    handled = [metric(c, "belong_consumer_entries_total", outcome="scored") for c in consumers]
    assert sum(handled) == 40 and all(h > 0 for h in handled), handled
    out = published(redis_client, streams.out)
    assert sorted(o["id"] for o in out) == sorted(f"c{i}" for i in range(40))  # each published once


def test_a_consumer_killed_mid_batch_loses_nothing_and_stores_nothing_twice(
    redis_client, redis_url, tagger, sessions, streams, db_url, tiny_bundle
):
    redis_client.xgroup_create(streams.source, streams.group, id="0", mkstream=True)
    for i in range(30):
        redis_client.xadd(streams.source, {"id": f"k{i}", "text": f"hello {i}, where are you from?", "thread_id": "t"})
    # Hold the SQLite write lock: the first consumer reads and scores a batch, then waits to store it.
    lock = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BELONG_DATABASE_URL": db_url, "BELONG_THREADS": "1"}
    doomed = subprocess.Popen(
        [sys.executable, "-m", "belonging_cli.main", "consume", "--redis", redis_url, "--stream", streams.source]
        + ["--group", streams.group, "--consumer", "doomed", "--out-stream", streams.out, "--batch-size", "10"]
        + ["--bundle", str(tiny_bundle)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not redis_client.xpending_range(streams.source, streams.group, "-", "+", 100, consumername="doomed"):
            assert doomed.poll() is None, doomed.stdout.read().decode() if doomed.stdout else ""
            assert time.monotonic() < deadline, "the consumer never read a batch"
            time.sleep(0.05)
        time.sleep(0.5)
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(10)
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait(10)
    held = redis_client.xpending_range(streams.source, streams.group, "-", "+", 100, consumername="doomed")
    assert len(held) == 10  # read, never acknowledged...
    assert lock.execute("SELECT count(*) FROM comments").fetchone() == (0,)  # ...and never stored
    assert published(redis_client, streams.out) == []
    lock.execute("ROLLBACK")
    lock.close()

    survivors = [
        consumer_for(redis_client, tagger, sessions, streams, name=n, batch_size=8, claim_idle_ms=300) for n in "xy"
    ]
    run_until_done(survivors, all_settled(redis_client, streams, sessions, 30))
    assert sum(metric(c, "belong_consumer_claimed_total") for c in survivors) >= 10
    out = published(redis_client, streams.out)
    assert sorted(o["id"] for o in out) == sorted(f"k{i}" for i in range(30))  # every entry exactly once
    with sessions() as session:
        assert session.scalars(select(Thread)).one().comment_count == 30
    assert redis_client.xpending(streams.source, streams.group)["pending"] == 0


def test_metrics_report_lag_and_pending(redis_client, tagger, sessions, streams):
    consumer = consumer_for(redis_client, tagger, sessions, streams, batch_size=2)
    for i in range(5):
        redis_client.xadd(streams.source, {"id": f"m{i}", "text": "hello"})
    consumer.ensure_group()
    consumer.step()
    assert metric(consumer, "belong_consumer_lag") == 3
    assert metric(consumer, "belong_consumer_pending") == 0


def test_the_consume_command_drains_a_stream(redis_client, redis_url, streams, db_url, tiny_bundle, sessions):
    from typer.testing import CliRunner

    from belonging_cli.main import app

    redis_client.xadd(streams.source, {"id": "cli", "text": "Welcome!"})
    redis_client.xadd(streams.source, {"id": "bad"})
    result = CliRunner().invoke(
        app,
        ["consume", "--redis", redis_url, "--stream", streams.source, "--group", "g", "--out-stream", streams.out]
        + ["--bundle", str(tiny_bundle), "--database-url", db_url, "--drain", "--block-ms", "100"],
    )
    assert result.exit_code == 0, result.output
    assert [o["id"] for o in published(redis_client, streams.out)] == ["cli"]
    (dead,) = published(redis_client, f"{streams.source}:dead")
    assert dead["reason"] == "text: Field required"
    redis_client.delete(f"{streams.source}:dead")


def test_the_consume_command_names_an_unreachable_redis(tiny_bundle, db_url):
    from typer.testing import CliRunner

    from belonging_cli.main import app

    result = CliRunner().invoke(
        app, ["consume", "--redis", "redis://127.0.0.1:1/0", "--stream", "s", "--group", "g", "--database-url", db_url]
    )
    assert result.exit_code == 1 and "cannot reach Redis at redis://127.0.0.1:1/0" in result.output


def test_config_refuses_nonsense():
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        ConsumerConfig("s", "g", batch_size=0)

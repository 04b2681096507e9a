"""Scale-out benchmark: the Redis Streams consumer and a Spark backfill against their baselines.

Usage:
    python bench/scale_bench.py --bundle models/default [--data ../shared/data/xlmt_tweets.jsonl] \
        [--limit 1000] [--redis-port 16390] [--master local[2]]

Prints, in one run on the same texts:
- the engine's raw texts/s (`Predictor.predict`, length-sorted batches of 32) and the Tagger's
  (the same plus batch planning and language detection);
- `belong consume`'s loop texts/s (XADD all, then one consumer drains the group: read, validate,
  score, store in SQLite, publish, XACK), and its ratio to the raw engine;
- `belong score` end to end (a process: start-up, model load, a JSON Lines file in and out) and
  `belong spark-score --master local[2]` end to end (JVM start, one model load per Python worker,
  Parquet in and out), and its ratio; plus the Spark job alone (session already up).

It starts its own redis-server (Debian's, nothing kept on disk) on --redis-port and stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def load_texts(path: Path, limit: int) -> list[str]:
    texts = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            text = json.loads(line).get("text")
            if isinstance(text, str) and text.strip():
                texts.append(text)
            if len(texts) >= limit:
                break
    return texts


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:8.1f} texts/s ({seconds:6.2f} s)"


def start_redis(port: int, folder: Path) -> subprocess.Popen:
    if shutil.which("redis-server") is None:
        sys.exit("redis-server not found: bash .ci/redis.sh installs it")
    process = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
        + ["--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return process
        except redis.ConnectionError:
            time.sleep(0.05)
    process.kill()
    sys.exit(f"redis-server did not start on port {port}")


def bench_consumer(texts: list[str], bundle: Path, port: int, work: Path, tagger) -> float:
    import redis

    from serving.consumer.stream import ConsumerConfig, StreamConsumer
    from serving.storage.db import make_engine, make_sessionmaker, upgrade

    engine = make_engine(f"sqlite:///{work / 'consume.db'}")
    upgrade(engine)
    server = start_redis(port, work)
    try:
        client = redis.Redis(port=port)
        pipe = client.pipeline(transaction=False)
        for i, text in enumerate(texts):
            pipe.xadd("comments", {"id": f"c{i}", "text": text, "community_id": "bench"})
        pipe.execute()
        config = ConsumerConfig("comments", "belonging", consumer="bench", out_stream="scores", block_ms=50)
        consumer = StreamConsumer(client, tagger, make_sessionmaker(engine), config)
        started = time.perf_counter()
        consumer.run(drain=True)
        elapsed = time.perf_counter() - started
        published = client.xlen("scores")
        if published != len(texts):
            sys.exit(f"the consumer published {published} results for {len(texts)} entries")
        return elapsed
    finally:
        server.terminate()
        server.wait(10)
        engine.dispose()


def bench_belong_score(texts: list[str], bundle: Path, work: Path) -> float:
    source = work / "in.jsonl"
    source.write_text("".join(json.dumps({"id": f"c{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "belonging_cli.main", "score", "--bundle", str(bundle)]
    command += ["--input", str(source), "--output", str(work / "out.jsonl")]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def bench_spark(texts: list[str], bundle: Path, work: Path, master: str) -> tuple[float, float, float]:
    """(end-to-end `belong spark-score` seconds, session start-up seconds, job seconds)."""
    import pandas as pd

    source = work / "in.parquet"
    pd.DataFrame({"id": [f"c{i}" for i in range(len(texts))], "text": texts}).to_parquet(source)
    parts = master.removeprefix("local[").removesuffix("]")
    partitions = parts if parts.isdigit() else "2"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "belonging_cli.main", "spark-score", "--bundle", str(bundle)]
    command += ["--input", str(source), "--output", str(work / "cli.parquet"), "--master", master]
    command += ["--partitions", partitions, "--conf", "spark.ui.showConsoleProgress=false"]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    end_to_end = time.perf_counter() - started

    from pyspark.sql import SparkSession

    from serving.batch.spark import score_dataframe

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ["PYTHONPATH"] = str(ROOT)
    started = time.perf_counter()
    spark = (
        SparkSession.builder.master(master)
        .appName("scale_bench")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    session = time.perf_counter() - started
    try:
        frame = spark.read.parquet(str(source)).repartition(int(partitions))
        started = time.perf_counter()
        score_dataframe(frame, bundle).write.mode("overwrite").parquet(str(work / "job.parquet"))
        job = time.perf_counter() - started
    finally:
        spark.stop()
    return end_to_end, session, job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "default")
    corpora = Path(os.environ.get("BELONG_CORPORA", ROOT.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=corpora / "xlmt_tweets.jsonl", help="JSON Lines with `text`.")
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--redis-port", type=int, default=16390)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--skip-spark", action="store_true")
    args = parser.parse_args()

    from serving.engine.predictor import Predictor
    from serving.engine.tagger import Tagger

    if not args.data.is_file():
        sys.exit(f"{args.data} not found: pass --data FILE (JSON Lines with a `text` field) or set BELONG_CORPORA")
    texts = load_texts(args.data, args.limit)
    print(f"{len(texts)} texts from {args.data}; bundle {args.bundle}; {os.cpu_count()} CPU(s); "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    predictor = Predictor.from_path(args.bundle)
    tagger = Tagger(predictor, _detector())
    predictor.predict(texts[:64])  # warm up
    tagger.score(texts[:64])

    started = time.perf_counter()
    predictor.predict(texts)
    raw = time.perf_counter() - started
    started = time.perf_counter()
    tagger.score(texts)
    tagged = time.perf_counter() - started
    print(f"engine raw (Predictor.predict, batches of 32)  {rate(len(texts), raw)}")
    print(
        f"Tagger.score (planned batches + language ID)   {rate(len(texts), tagged)}   ratio to raw {raw / tagged:.2f}"
    )

    with tempfile.TemporaryDirectory(prefix="scale_bench_") as tmp:
        work = Path(tmp)
        consumed = bench_consumer(texts, args.bundle, args.redis_port, work, tagger)
        print(f"consumer (read, score, store, publish, XACK)   {rate(len(texts), consumed)}", end="")
        print(f"   ratio to raw {raw / consumed:.2f}")
        cli = bench_belong_score(texts, args.bundle, work)
        print(f"belong score, end to end (process)            {rate(len(texts), cli)}")
        if args.skip_spark:
            return
        end_to_end, session, job = bench_spark(texts, args.bundle, work, args.master)
        print(f"belong spark-score {args.master}, end to end     {rate(len(texts), end_to_end)}", end="")
        print(f"   ratio to belong score {cli / end_to_end:.2f}")
        print(f"  Spark session start-up {session:.2f} s; the job alone {rate(len(texts), job)}", end="")
        print(f"   ratio to belong score {cli / job:.2f}")


def _detector():
    from serving.engine.lang import DEFAULT_LANGUAGES, language_detector, parse_languages

    return language_detector(parse_languages(DEFAULT_LANGUAGES), 0.3)


if __name__ == "__main__":
    main()

"""Training throughput on this machine with the real base model (a benchmark, not a test).

Usage: python bench/train_bench.py [--steps 12] [--batch-size 16] [--full]

Prints examples/s of the training step (forward, backward, optimiser) on real seed rows at
max_length 64 and 128, with the word-embedding matrix frozen (the default recipe) and, as the
baseline measured in the same run, trainable. `--full` also times building a bundle from the seeds
with the default recipe (`belong train --data seeds`), the wall time `make run` spends on the model.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def step_throughput(rows, max_length: int, freeze: bool, steps: int, batch_size: int) -> float:
    import numpy as np
    import torch

    from serving.engine.predictor import load_tokenizer, pad_id_of
    from training.config import TrainConfig
    from training.model import build_tagger
    from training.train import collate, encode_rows

    config = TrainConfig(max_length=max_length, freeze_embeddings=freeze, batch_size=batch_size)
    tokenizer = load_tokenizer(Path(config.base_model) / "tokenizer.json", max_length)
    model = build_tagger(config)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    ids = encode_rows(tokenizer, rows, config)
    y = np.array([r.label_vector() for r in rows], dtype=np.float32)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    seen, started = 0, None
    for step in range(steps + 2):  # two warm-up steps are not timed
        if step == 2:
            started = time.perf_counter()
        index = [(step * batch_size + i) % len(ids) for i in range(batch_size)]
        batch = collate([ids[i] for i in index], y[index], pad_id_of(tokenizer))
        loss = loss_fn(model(batch.input_ids, batch.attention_mask), batch.labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step >= 2:
            seen += batch_size
    return seen / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--full", action="store_true", help="also time a full default build")
    args = parser.parse_args()
    import torch

    from training.data import load_rows

    rows = load_rows([ROOT / "seeds"]).rows
    rows = [rows[i] for i in range(0, len(rows), max(1, len(rows) // 400))][:400]  # every language
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
        f"{args.steps} timed steps on seed rows"
    )
    results = {}
    for max_length in (64, 128):
        for freeze in (True, False):
            rate = step_throughput(rows, max_length, freeze, args.steps, args.batch_size)
            results[(max_length, freeze)] = rate
            print(
                f"max_length {max_length:3d}  embeddings {'frozen   ' if freeze else 'trainable'}  "
                f"{rate:6.1f} examples/s",
                flush=True,
            )
    for max_length in (64, 128):
        ratio = results[(max_length, True)] / results[(max_length, False)]
        print(f"max_length {max_length}: frozen embeddings train {ratio:.2f}x faster than trainable (baseline)")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")
    if args.full:
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "belonging_cli.main",
                "train",
                "--data",
                "seeds",
                "--out",
                "runs/bench-default/bundle",
                "--work",
                "runs/bench-default",
            ],
            cwd=ROOT,
            check=True,
        )
        print(f"full default build from seeds: {(time.perf_counter() - started) / 60:.1f} min wall time")


if __name__ == "__main__":
    main()

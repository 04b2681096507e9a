"""Packed batches: several comments share a model row, so a batch of mixed lengths carries no padding.

A padded batch runs every comment at the length of the longest one: four random tweets waste 27% of
their tokens on padding, eight 34% (measured on XLM-T tweets), and the model's matrix products pay
for every padded token. A packed model (exported by training with `packed = true`) takes instead

    input_ids, positions  [packs, width]   the comments of a pack one after another, positions
                                           restarting at 0 for each comment
    segments              [packs, width]   which comment each token belongs to (-1: padding);
                                           attention never crosses from one comment to another
    pool                  [comments, packs * width]  each comment's mean-pooling weights

and returns one row of logits per comment, in the order of `pool`'s rows: the same numbers as
the comment scored alone. Attention inside a pack costs width squared (in fp32, while the matrix
products run in int8), so long packs lose what they save: `plan_packs` puts each comment in its
own row (the padded layout) when lengths are alike, and packs short comments together when not.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PACKED_INPUTS = ("input_ids", "positions", "segments", "pool")
# Cost of a row of width w: w * (1 + w / ATTENTION_SPAN) token-steps. Fitted with the int8 e5-small
# bundle on one core: sorted batches of 32 (width ~36) forced into rows of 128 tokens ran at 0.80x of
# the padded layout. bench/pack_bench.py compares spans: 100 to 600 plan within 5% of each other.
ATTENTION_SPAN = 300.0
# Widest row the planner builds from several comments: attention memory and time grow with its
# square, and wider rows measured no faster (bench/pack_bench.py).
PACK_WIDTH = 128


def _first_fit(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: the longest comments first, each into the first pack it fits."""
    packs: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for pack, left in enumerate(room):
            if lengths[index] <= left:
                packs[pack].append(index)
                room[pack] -= lengths[index]
                break
        else:
            packs.append([index])
            room.append(capacity - lengths[index])
    return packs


def layout_cost(lengths: Sequence[int], packs: Sequence[Sequence[int]], span: float = ATTENTION_SPAN) -> float:
    """Token-steps of running `packs` as one call: every row is as wide as the fullest pack."""
    width = max(sum(lengths[i] for i in pack) for pack in packs)
    return len(packs) * width * (1.0 + width / span)


def plan_packs(lengths: Sequence[int], span: float = ATTENTION_SPAN) -> list[list[int]]:
    """Group comments (by index) into packs for one call, cheapest layout first.

    Tries pack capacities from the longest comment (one comment per row unless two fit) up to
    `PACK_WIDTH`, and keeps the cheapest by `layout_cost`. Under 1 ms for 64 comments.
    """
    if not lengths:
        return []
    longest = max(lengths)
    widest = max(longest, PACK_WIDTH)
    capacities = sorted(
        {longest, *(c for c in (2 * longest, 3 * longest, 64, 96, PACK_WIDTH) if longest <= c <= widest)}
    )
    best: list[list[int]] | None = None
    best_cost = float("inf")
    for capacity in capacities:
        packs = _first_fit(lengths, capacity)
        cost = layout_cost(lengths, packs, span)
        if cost < best_cost:
            best, best_cost = packs, cost
    assert best is not None
    return best


def packed_feeds(rows: Sequence[Sequence[int]], packs: Sequence[Sequence[int]], pad_id: int) -> dict[str, np.ndarray]:
    """The packed model's inputs for token-id `rows` grouped as `packs` (every row in one pack)."""
    width = max(sum(len(rows[i]) for i in pack) for pack in packs)
    shape = (len(packs), width)
    input_ids = np.full(shape, pad_id, dtype=np.int64)
    positions = np.zeros(shape, dtype=np.int64)
    segments = np.full(shape, -1, dtype=np.int64)
    pool = np.zeros((len(rows), len(packs) * width), dtype=np.float32)
    for row, pack in enumerate(packs):
        at = 0
        for index in pack:
            n = len(rows[index])
            input_ids[row, at : at + n] = rows[index]
            positions[row, at : at + n] = np.arange(n)
            segments[row, at : at + n] = index
            pool[index, row * width + at : row * width + at + n] = 1.0 / n
            at += n
    return {"input_ids": input_ids, "positions": positions, "segments": segments, "pool": pool}

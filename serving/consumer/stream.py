"""Score comments from a Redis Streams consumer group, store them as `/v1/score` does, publish results.

Usage:
    consumer = StreamConsumer(redis.Redis.from_url(url), tagger, sessions, ConsumerConfig("comments", "belonging"))
    consumer.run(stop_event)        # until stop_event is set (or, with drain=True, the stream is done)

One batch, in order:
1. XAUTOCLAIM entries idle longer than `claim_idle_ms` (their consumer died mid-batch), else
   XREADGROUP up to `batch_size` new ones (a restarted consumer first re-reads its own pending);
2. validate each entry (serving.consumer.entries); a malformed one becomes a dead letter;
3. skip comments already stored under their (community_id, id), score the rest in one call of the
   tagger, insert them (first write wins, threads counted once: the storage code `/v1/score` uses);
4. one Lua script, atomic in Redis: XACK each entry and, only if this call acknowledged it, XADD its
   result to the output stream (or its reason to the dead-letter stream).

So an entry is acknowledged only after its comment is stored; a consumer killed anywhere before
step 4 leaves its entries pending for another to reclaim, and storage answers the redelivery with
the stored result. A reclaimed entry that its slow first owner acknowledges meanwhile is published
by whichever call acknowledges it, never twice. If scoring or storing fails (the database is down),
nothing is acknowledged but the dead letters, and the entries are retried after `claim_idle_ms`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import ResponseError
from sqlalchemy.orm import Session, sessionmaker

from serving.api.schemas import CommentIn
from serving.consumer.entries import (
    Entry,
    Malformed,
    dead_letter_fields,
    key_of,
    parse_entry,
    result_fields,
)
from serving.consumer.metrics import ConsumerMetrics
from serving.engine.batching import Scored
from serving.engine.tagger import Tagger
from serving.storage.comments import Key, StoredResult, find_results, insert_scored
from serving.timefmt import utcnow

log = logging.getLogger(__name__)

# KEYS: stream, output stream, dead-letter stream. ARGV: group, then a JSON list of
# [entry id, target (0: none, 1: output, 2: dead letters), [field, value, ...]].
# Returns 1/0 per entry: acknowledged by this call or not (someone else already had).
ACK_AND_PUBLISH = """
local acked = {}
for i, item in ipairs(cjson.decode(ARGV[2])) do
  local done = redis.call('XACK', KEYS[1], ARGV[1], item[1])
  acked[i] = done
  if done == 1 and item[2] > 0 then
    redis.call('XADD', KEYS[item[2] + 1], '*', unpack(item[3]))
  end
end
return acked
"""
NO_TARGET, TO_OUTPUT, TO_DEAD_LETTERS = 0, 1, 2


@dataclass(frozen=True)
class ConsumerConfig:
    stream: str
    group: str
    consumer: str = "belong"
    out_stream: str | None = None
    dead_stream: str | None = None  # default: "<stream>:dead"
    batch_size: int = 64
    block_ms: int = 1000
    claim_idle_ms: int = 60_000
    start_id: str = "0"  # where a new group starts: "0" the whole stream, "$" only new entries

    def __post_init__(self) -> None:
        for name in ("batch_size", "block_ms", "claim_idle_ms"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.stream or not self.group or not self.consumer:
            raise ValueError("stream, group and consumer names must not be empty")

    @property
    def dead_letters(self) -> str:
        return self.dead_stream or f"{self.stream}:dead"


@dataclass(frozen=True)
class Outcome:
    """What one batch did."""

    scored: int = 0
    stored_before: int = 0
    dead_letters: int = 0
    acknowledged_elsewhere: int = 0  # reclaimed meanwhile by another consumer, which published it
    failed: int = 0  # left pending: scoring or storing failed


class StreamConsumer:
    def __init__(
        self,
        client: Redis,
        tagger: Tagger,
        sessions: sessionmaker[Session],
        config: ConsumerConfig,
        metrics: ConsumerMetrics | None = None,
    ) -> None:
        self.client = client
        self.tagger = tagger
        self.sessions = sessions
        self.config = config
        self.metrics = metrics or ConsumerMetrics()
        self._ack_and_publish = client.register_script(ACK_AND_PUBLISH)
        self._next_claim = 0.0
        self._next_gauges = 0.0

    # --- the loop ---

    def ensure_group(self) -> None:
        """Create the group (and the stream) unless it exists."""
        try:
            self.client.xgroup_create(self.config.stream, self.config.group, id=self.config.start_id, mkstream=True)
            log.info(
                "created consumer group %r on %r from %s", self.config.group, self.config.stream, self.config.start_id
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def run(self, stop: threading.Event | None = None, *, drain: bool = False) -> None:
        """Consume until `stop` is set; with `drain`, also return once a read finds nothing new
        and nothing is waiting to be reclaimed."""
        stop = stop or threading.Event()
        self.ensure_group()
        self.recover_own_pending()
        while not stop.is_set():
            handled = self.step()
            if drain and handled == 0 and self._claimable() == 0:
                return

    def recover_own_pending(self) -> None:
        """Entries delivered to this consumer name before a restart: process them first."""
        while True:
            entries = self._read("0")
            if not entries:
                return
            outcome = self.process(entries)
            if outcome.failed:
                return  # retried by XAUTOCLAIM after the claim time

    def step(self) -> int:
        """One batch: reclaimed entries when their time has come, else new ones. Returns its size."""
        now = time.monotonic()
        if now >= self._next_claim:
            claimed = self.claim()
            full = len(claimed) >= self.config.batch_size
            self._next_claim = now if full else now + min(self.config.claim_idle_ms / 2000, 5.0)
            if claimed:
                self.process(claimed)
                self._update_gauges()
                return len(claimed)
        entries = self._read(">", block=self.config.block_ms)
        if entries:
            self.process(entries)
        self._update_gauges()
        return len(entries)

    def claim(self) -> list[Entry]:
        """XAUTOCLAIM up to a batch of entries idle longer than the claim time."""
        reply: Any = self.client.xautoclaim(
            self.config.stream,
            self.config.group,
            self.config.consumer,
            min_idle_time=self.config.claim_idle_ms,
            start_id="0-0",
            count=self.config.batch_size,
        )
        # [next cursor, [(id, fields), ...], deleted ids]; an entry trimmed away has no fields.
        entries = [Entry(_text(i), fields) for i, fields in reply[1] if fields]
        if entries:
            log.info("reclaimed %d entries idle for over %d ms", len(entries), self.config.claim_idle_ms)
            self.metrics.claimed.inc(len(entries))
        return entries

    def _read(self, start: str, block: int | None = None) -> list[Entry]:
        reply: Any = self.client.xreadgroup(
            self.config.group,
            self.config.consumer,
            {self.config.stream: start},
            count=self.config.batch_size,
            block=block,
        )
        return [Entry(_text(i), fields) for _stream, items in reply or [] for i, fields in items if fields]

    def _claimable(self) -> int:
        """Pending entries idle long enough to be reclaimed now."""
        summary: Any = self.client.xpending_range(
            self.config.stream, self.config.group, min="-", max="+", count=1, idle=self.config.claim_idle_ms
        )
        return len(summary)

    # --- one batch ---

    def process(self, entries: Sequence[Entry]) -> Outcome:
        started = time.monotonic()
        self.metrics.batch_size.observe(len(entries))
        parsed = [(entry, parse_entry(entry)) for entry in entries]
        dead = [item for _, item in parsed if isinstance(item, Malformed)]
        good = [(entry, item) for entry, item in parsed if isinstance(item, CommentIn)]
        dead_items = [
            [
                m.entry.entry_id,
                TO_DEAD_LETTERS,
                _flat(dead_letter_fields(m, stream=self.config.stream, consumer=self.config.consumer)),
            ]
            for m in dead
        ]
        try:
            results, fresh = self.score_and_store([comment for _, comment in good])
        except Exception:
            log.exception("scoring or storing a batch of %d entries failed; they stay pending", len(good))
            self.metrics.failed_batches.inc()
            self._publish(dead_items)
            self.metrics.dead_letters.inc(len(dead))
            self.metrics.entries.labels(outcome="dead_letter").inc(len(dead))
            return Outcome(dead_letters=len(dead), failed=len(good))
        target = TO_OUTPUT if self.config.out_stream else NO_TARGET
        items: list[list[Any]] = []
        for entry, comment in good:
            key = key_of(comment)
            fields = result_fields(
                entry.entry_id, comment, results[key], model=self.tagger.name, version=self.tagger.version
            )
            items.append([entry.entry_id, target, _flat(fields)])
        acked = self._publish(items + dead_items)
        mine = acked[: len(items)]
        scored = stored_before = elsewhere = 0
        first_seen: set[Key] = set()
        for (_, comment), done in zip(good, mine, strict=True):
            key = key_of(comment)
            if not done:
                elsewhere += 1
            elif key in fresh and key not in first_seen:
                scored += 1
            else:
                stored_before += 1
            first_seen.add(key)
        dead_acked = sum(acked[len(items) :])
        self.metrics.entries.labels(outcome="scored").inc(scored)
        self.metrics.entries.labels(outcome="stored_before").inc(stored_before)
        self.metrics.entries.labels(outcome="dead_letter").inc(dead_acked)
        self.metrics.dead_letters.inc(dead_acked)
        self.metrics.batch_duration.observe(time.monotonic() - started)
        return Outcome(
            scored=scored, stored_before=stored_before, dead_letters=dead_acked, acknowledged_elsewhere=elsewhere
        )

    def score_and_store(self, comments: Sequence[CommentIn]) -> tuple[dict[Key, Scored | StoredResult], set[Key]]:
        """Each comment's result by key, and the keys this call inserted.

        As `/v1/score`: a comment already stored is not scored again; one stored by someone else
        between our read and our insert answers with what is stored (the first write wins).
        """
        unique: dict[Key, CommentIn] = {}
        for comment in comments:
            unique.setdefault(key_of(comment), comment)  # a duplicate in the batch: the first one counts
        if not unique:
            return {}, set()
        with self.sessions() as session:
            stored = find_results(session, unique)
        todo = [key for key in unique if key not in stored]
        scored = self.tagger.score([unique[k].text for k in todo], [unique[k].lang for k in todo])
        now = utcnow()
        rows = [unique[k].stored_row(result, now) for k, result in zip(todo, scored, strict=True)]
        results: dict[Key, Scored | StoredResult] = {**stored, **dict(zip(todo, scored, strict=True))}
        inserted: set[Key] = set()
        if rows:
            with self.sessions.begin() as session:
                inserted = insert_scored(session, rows, model_name=self.tagger.name, model_version=self.tagger.version)
                lost = [row.key for row in rows if row.key not in inserted]
                results.update(find_results(session, lost) if lost else {})
        return results, inserted

    def _publish(self, items: list[list[Any]]) -> list[int]:
        if not items:
            return []
        keys = [self.config.stream, self.config.out_stream or self.config.dead_letters, self.config.dead_letters]
        reply: Any = self._ack_and_publish(keys=keys, args=[self.config.group, json.dumps(items, ensure_ascii=False)])
        return [int(x) for x in reply]

    def _update_gauges(self) -> None:
        now = time.monotonic()
        if now < self._next_gauges:
            return
        self._next_gauges = now + 1.0
        try:
            for group in self.client.xinfo_groups(self.config.stream):
                if _text(group["name"]) == self.config.group:
                    self.metrics.pending.set(group["pending"])
                    if group.get("lag") is not None:  # Redis >= 7.0; None when it cannot tell
                        self.metrics.lag.set(group["lag"])
        except ResponseError:
            log.debug("XINFO GROUPS failed", exc_info=True)


def _flat(fields: dict[str, str]) -> list[str]:
    return [part for pair in fields.items() for part in pair]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

"""Prometheus metrics of a stream consumer, in a registry of its own (tests run several consumers).

Usage: `metrics = ConsumerMetrics()`; `prometheus_client.start_http_server(port, registry=metrics.registry)`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
OUTCOMES = ("scored", "stored_before", "dead_letter")


class ConsumerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.lag = Gauge(
            "belong_consumer_lag",
            "Entries in the stream not yet delivered to the consumer group (XINFO GROUPS lag).",
            registry=self.registry,
        )
        self.pending = Gauge(
            "belong_consumer_pending",
            "Entries delivered to the group but not acknowledged yet, all consumers together.",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "belong_consumer_batch_size",
            "Entries per batch read or reclaimed.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_duration = Histogram(
            "belong_consumer_batch_duration_seconds",
            "From a batch read to its acknowledgement: validate, score, store, publish.",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.entries = Counter(
            "belong_consumer_entries",
            "Entries acknowledged, by outcome: scored now, stored before (a redelivery or a duplicate), dead letter.",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in OUTCOMES:
            self.entries.labels(outcome=outcome)
        self.dead_letters = Counter(
            "belong_consumer_dead_letters",
            "Malformed entries acknowledged into the dead-letter stream.",
            registry=self.registry,
        )
        self.claimed = Counter(
            "belong_consumer_claimed",
            "Entries reclaimed (XAUTOCLAIM) from consumers idle longer than the claim time.",
            registry=self.registry,
        )
        self.failed_batches = Counter(
            "belong_consumer_failed_batches",
            "Batches that failed to score or store; their entries stay pending and are retried.",
            registry=self.registry,
        )

"""Prometheus metrics of the worker's own pipeline (score gauges come with the read-model issue)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, generate_latest

EVENTS = Counter("cx_events", "Input records by topic and outcome (ok, invalid, duplicate, too_late).",
                 ["topic", "outcome"])
BATCH_SECONDS = Histogram("cx_batch_processing_seconds", "Time to process one fetched batch, writes included.",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
RECORDS = Counter("cx_records_processed", "Records handed to the batch path (inputs and partials).")


def record_batch(outcomes: dict[tuple[str, str], int], records: int, seconds: float) -> None:
    for (topic, outcome), count in outcomes.items():
        EVENTS.labels(topic=topic, outcome=outcome).inc(count)
    RECORDS.inc(records)
    BATCH_SECONDS.observe(seconds)


# aiohttp takes the charset separately, so the text format's type is given without it.
CONTENT_TYPE = "text/plain; version=0.0.4"


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE

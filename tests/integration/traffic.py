"""Seeded simulator traffic as Kafka records, with the events kept for the reference count."""

from __future__ import annotations

from dataclasses import dataclass

from stream_app.simulate import generate
from tests.harness import Deployment, dumps, latest_snapshots, wait_for
from tests.reference import expected_counts, snapshot_matches, to_ms

DAY_START = "2026-11-20T08:00:00Z"


@dataclass
class Traffic:
    records: list[tuple[str, bytes, bytes]]
    interactions: list[dict]
    surveys: list[dict]


def simulated(deployment: Deployment, count: int, *, seed: int = 11, start: str = DAY_START,
              rate: float = 5.0, incident: str | None = None) -> Traffic:
    topics = deployment.topics
    records, interactions, surveys = [], [], []
    for rec in generate(seed, count, to_ms(start), rate, incident=incident):
        topic = topics["interactions"] if rec.kind == "interaction" else topics["surveys"]
        records.append((topic, rec.key, dumps(rec.value)))
        (interactions if rec.kind == "interaction" else surveys).append(rec.value)
    return Traffic(records, interactions, surveys)


async def assert_exact(deployment: Deployment, traffic: Traffic, dimensions=("all", "channel"),
                       window: str = "1d", timeout: float = 90.0) -> dict:
    """Wait until the rolling snapshots equal the independent count, then check they stay so."""
    expected = {d: expected_counts(traffic.interactions, traffic.surveys, d) for d in dimensions}

    async def check():
        latest = await latest_snapshots(deployment.topics["scores"])
        diffs = {}
        for dimension, per_key in expected.items():
            for (key, _start), counts in per_key.items():
                doc = latest.get(f"default/{dimension}/{key}/{window}")
                problems = ["missing"] if doc is None else snapshot_matches(doc, counts)
                if problems:
                    diffs[f"{dimension}/{key}"] = problems
        return (not diffs, diffs, latest)

    ok, _, latest = await wait_for(check, timeout=timeout, message="exact snapshots")
    return latest

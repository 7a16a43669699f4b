"""Seeded simulator traffic as Kafka records, with the events kept for the reference count."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from stream_app.simulate import PanelAgent, generate
from tests.harness import Deployment, dumps, latest_snapshots
from tests.reference import expected_counts, snapshot_matches, to_ms

DAY_START = "2026-11-20T08:00:00Z"


@dataclass
class Traffic:
    records: list[tuple[str, bytes, bytes]]
    interactions: list[dict]
    surveys: list[dict]


@dataclass
class Settled:
    """The score topic once it stopped changing, or as it was when time ran out."""

    exact: bool
    diffs: dict[str, list[str]]  # "dimension/key" -> what differs from the independent count
    latest: dict[str, dict]  # the latest snapshot per key


def simulated(deployment: Deployment, count: int, *, seed: int = 11, start: str = DAY_START,
              rate: float = 5.0, incident: str | None = None,
              panel: Sequence[PanelAgent] | None = None) -> Traffic:
    topics = deployment.topics
    records, interactions, surveys = [], [], []
    for rec in generate(seed, count, to_ms(start), rate, incident=incident, panel=panel):
        topic = topics["interactions"] if rec.kind == "interaction" else topics["surveys"]
        records.append((topic, rec.key, dumps(rec.value)))
        (interactions if rec.kind == "interaction" else surveys).append(rec.value)
    return Traffic(records, interactions, surveys)


def differences(latest: dict[str, dict], traffic: Traffic, dimensions=("all", "channel"),
                window: str = "1d") -> dict[str, list[str]]:
    """Rolling snapshots of ``window`` against the independent count, per dimension and key."""
    diffs = {}
    for dimension in dimensions:
        expected = expected_counts(traffic.interactions, traffic.surveys, dimension)
        for (key, _start), counts in expected.items():
            doc = latest.get(f"default/{dimension}/{key}/{window}")
            problems = ["missing"] if doc is None else snapshot_matches(doc, counts)
            if problems:
                diffs[f"{dimension}/{key}"] = problems
    return diffs


async def settle(deployment: Deployment, traffic: Traffic, dimensions=("all", "channel"), window: str = "1d",
                 timeout: float = 90.0, hold: float = 1.5) -> Settled:
    """Wait until the snapshots equal the independent count and still do ``hold`` seconds later
    (a late re-emission that counts twice would show then); on timeout, the last state seen."""
    deadline = time.monotonic() + timeout
    while True:
        latest = await latest_snapshots(deployment.topics["scores"], deployment.kafka)
        diffs = differences(latest, traffic, dimensions, window)
        if not diffs:
            await asyncio.sleep(hold)
            latest = await latest_snapshots(deployment.topics["scores"], deployment.kafka)
            diffs = differences(latest, traffic, dimensions, window)
        if not diffs or time.monotonic() > deadline:
            return Settled(not diffs, diffs, latest)
        await asyncio.sleep(0.5)


async def assert_exact(deployment: Deployment, traffic: Traffic, dimensions=("all", "channel"),
                       window: str = "1d", timeout: float = 90.0) -> dict:
    """Wait until the rolling snapshots equal the independent count, then check they stay so."""
    settled = await settle(deployment, traffic, dimensions, window, timeout)
    assert settled.exact, f"snapshots differ from the independent count: {settled.diffs!r}"[:6000]
    return settled.latest

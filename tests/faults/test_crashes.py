"""Crashes and scale-out on the real broker: kill -9, graceful restart, two workers, one of two killed.

Every window is compared with the independent count (tests/reference.py); the cut-off records mixed
into the stream are matched one by one in the dead letter, where a crash may repeat one (README,
Exactness) but never lose one.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.ledger import (
    dead_expected,
    metric,
    produce_paced,
    records_of,
    samples,
    settle_dead_letters,
    spoil,
    tally,
    until_processing,
)
from tests.harness import Deployment, latest_snapshots, produce, wait_for
from tests.integration.traffic import settle, simulated

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]


async def test_kill9_mid_stream_twice_keeps_every_window_exact(deployment, start_worker, figures):
    traffic = simulated(deployment, 24_000, seed=5, rate=20.0)
    entries = spoil(traffic, every=1_000)
    # each third spans the whole day: out of order, within lateness
    thirds = [entries[i::3] for i in range(3)]
    worker = start_worker()
    expected = {}
    for number, chunk in enumerate(thirds):
        send = asyncio.create_task(produce_paced(records_of(chunk), pieces=8, pause=0.25))
        if number < 2:
            await until_processing(worker)
            await asyncio.sleep(0.3)
            assert not send.done(), "the stream was over before the kill"
            worker.kill9()
        expected |= dead_expected(chunk, await send)
        if number < 2:
            worker = start_worker()
    await assert_settled_after_kills(deployment, traffic, entries, expected, figures,
                                     dimensions=("all", "channel", "queue"))


async def test_graceful_restart_keeps_windows_exact_and_still_drops_duplicates(deployment, start_worker,
                                                                              figures):
    traffic = simulated(deployment, 8_000, seed=8)
    half = len(traffic.records) // 2
    worker = start_worker()
    await produce(traffic.records[:half])
    await asyncio.sleep(2)
    assert worker.stop() == 0, worker.log()[-3000:]
    worker = start_worker()
    # The first half again: every record is a duplicate by event_id and must not count.
    await produce(traffic.records[:half] + traffic.records[half:])
    settled = await settle(deployment, traffic, dimensions=("all", "channel", "agent"))
    dropped = metric(worker.metrics(), "cx_events_total", outcome="duplicate")
    lost, duplicated = tally(settled.latest, traffic)
    figures(fed=half + len(traffic.records), lost=lost, duplicated=duplicated, dead_lettered=0,
            resent=half, dropped_as_duplicate=int(dropped))
    assert settled.exact, settled.diffs
    assert dropped == half, "every resent record is recognised as a duplicate"


async def test_two_workers_give_the_same_windows_as_one(deployment, workers, tmp_path, figures):
    """Same events into two deployments: one worker alone, two sharing the partitions."""
    (tmp_path / "solo").mkdir()
    solo = Deployment(tmp_path / "solo")
    traffic = simulated(deployment, 12_000, seed=9)
    pair = [workers(deployment, "w1"), workers(deployment, "w2")]
    workers(solo, "solo")
    await produce(traffic.records + simulated(solo, 12_000, seed=9).records)
    shared = await settle(deployment, traffic)
    alone = await settle(solo, traffic)
    assert shared.exact and alone.exact, (shared.diffs, alone.diffs)

    async def differing():
        ours = _without_clock(await latest_snapshots(deployment.topics["scores"]))
        theirs = _without_clock(await latest_snapshots(solo.topics["scores"]))
        keys = [key for key in ours.keys() | theirs.keys() if ours.get(key) != theirs.get(key)]
        return (not keys, keys, len(ours))
    _, _, compared = await wait_for(differing, timeout=30,
                                    message="the same snapshots from one and two workers")
    lost, duplicated = tally(shared.latest, traffic)
    figures(fed=len(traffic.records), lost=lost, duplicated=duplicated, dead_lettered=0,
            snapshots_compared=compared)
    for worker in pair:
        assert metric(worker.metrics(), "cx_records_processed_total") > 0, f"{worker.name} owned no partition"


async def test_killing_one_of_two_workers_hands_its_partitions_over_with_windows_exact(
        deployment, start_worker, figures):
    traffic = simulated(deployment, 16_000, seed=10, rate=20.0)
    entries = spoil(traffic, every=1_000)
    survivor = start_worker("w1")
    victim = start_worker("w2")
    send = asyncio.create_task(produce_paced(records_of(entries), pieces=10, pause=0.3))
    await until_processing(victim)
    await asyncio.sleep(0.3)
    assert not send.done(), "the stream was over before the kill"
    victim.kill9()
    expected = dead_expected(entries, await send)
    await assert_settled_after_kills(deployment, traffic, entries, expected, figures)
    text = survivor.metrics()
    topic = deployment.topics["interactions"]
    owned = [p for p in range(deployment.partitions)
             if samples(text, "cx_consumer_lag_records", topic=topic, partition=str(p))]
    assert owned == list(range(deployment.partitions)), "the survivor reads every input partition"


def _without_clock(latest: dict[str, dict]) -> dict[str, dict]:
    """Snapshots without ``updated_at``, the one field that is wall-clock time, and without empty
    scopes: a survey that waits for its interaction under ``unknown`` and is moved on leaves an
    all-zero ``unknown`` snapshot, or none, depending on where batches happened to be cut."""
    return {key: {k: v for k, v in doc.items() if k != "updated_at"} for key, doc in latest.items()
            if any(doc[group]["n"] for group in ("ces", "csat", "nps", "interactions"))}


async def assert_settled_after_kills(deployment, traffic, entries, expected, figures,
                                     **settle_options) -> None:
    """Exact windows and every dead letter accounted for (repeats allowed: outputs are at-least-once)."""
    settled = await settle(deployment, traffic, timeout=120, **settle_options)
    found, problems = await settle_dead_letters(deployment, expected, repeats=True)
    lost, duplicated = tally(settled.latest, traffic)
    figures(fed=len(entries), lost=lost, duplicated=duplicated, dead_lettered=len(found),
            dead_letter_repeats=sum(len(records) - 1 for records in found.values()))
    assert settled.exact, settled.diffs
    assert not problems, problems

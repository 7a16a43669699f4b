"""Restarts against the real broker: graceful, kill -9 (twice), and two workers sharing partitions."""

from __future__ import annotations

import asyncio

import pytest

from tests.harness import produce
from tests.integration.traffic import assert_exact, simulated

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_kill9_mid_stream_twice_keeps_every_window_exact(deployment, start_worker):
    traffic = simulated(deployment, 24_000, seed=5, rate=20.0)
    worker = start_worker()
    thirds = [traffic.records[i::3] for i in range(3)]
    for chunk in thirds[:2]:
        send = asyncio.create_task(produce(chunk))
        await asyncio.sleep(1.5)  # the worker is mid-batch when it dies
        worker.kill9()
        await send
        worker = start_worker()
    await produce(thirds[2])
    await assert_exact(deployment, traffic, dimensions=("all", "channel", "queue"))


async def test_graceful_restart_keeps_windows_exact_and_still_drops_duplicates(deployment, start_worker):
    traffic = simulated(deployment, 8_000, seed=8)
    half = len(traffic.records) // 2
    worker = start_worker()
    await produce(traffic.records[:half])
    await asyncio.sleep(2)
    assert worker.stop() == 0, worker.log()[-3000:]
    worker = start_worker()
    # The first half again: every record is a duplicate by event_id and must not count.
    await produce(traffic.records[:half] + traffic.records[half:])
    await assert_exact(deployment, traffic, dimensions=("all", "channel", "agent"))


async def test_two_workers_share_the_partitions_and_give_one_exact_figure(deployment, start_worker):
    traffic = simulated(deployment, 12_000, seed=9)
    first = start_worker("w1")
    second = start_worker("w2")
    await produce(traffic.records)
    await assert_exact(deployment, traffic, dimensions=("all", "channel"))
    for worker in (first, second):
        processed = [line for line in worker.metrics().splitlines()
                     if line.startswith("cx_records_processed_total ")]
        assert processed and float(processed[0].split()[1]) > 0, f"{worker.name} owned no partition"


async def test_killing_one_of_two_workers_hands_its_partitions_over_with_windows_exact(deployment, start_worker):
    traffic = simulated(deployment, 16_000, seed=10, rate=20.0)
    start_worker("w1")
    second = start_worker("w2")
    half = len(traffic.records) // 2
    send = asyncio.create_task(produce(traffic.records))
    await asyncio.sleep(1.0)
    second.kill9()
    await send
    await assert_exact(deployment, traffic, dimensions=("all", "channel"), timeout=120)
    assert half  # the kill happened while the stream was being produced

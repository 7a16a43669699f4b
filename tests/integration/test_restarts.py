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

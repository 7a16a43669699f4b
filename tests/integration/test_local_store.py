"""A local store that claims more than its changelog holds is dropped at start, not trusted.

Restarts on a kept store are covered by tests/faults/test_crashes.py (the same worker name keeps its
data dir).
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests.harness import BOOTSTRAP, produce
from tests.integration.traffic import settle, simulated

pytestmark = pytest.mark.integration


async def delete_and_wait(names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.delete_topics(names)
        for _ in range(100):
            if not set(names) & set(await admin.list_topics()):
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"topics not deleted: {names}")
    finally:
        await admin.close()


async def test_a_store_ahead_of_a_changelog_made_again_is_rebuilt_from_it(deployment, start_worker):
    traffic = simulated(deployment, 300, seed=22)
    worker = start_worker()  # creates the topics
    await produce(traffic.records)
    assert (await settle(deployment, traffic, timeout=60)).exact
    assert worker.stop() == 0
    app_id = deployment.env("w1")["CX_APP_ID"]
    await delete_and_wait([f"{app_id}-intake-changelog", f"{app_id}-rollup-changelog"])
    restarted = start_worker("w1")  # same data dir: its stores claim offsets the new changelogs lack
    assert "ahead of their changelog" in restarted.log()
    assert restarted.proc is not None and restarted.proc.poll() is None

"""The shared broker stopped and started again while a worker is working through a backlog.

The broker is the session's one local Kafka (deploy/local/kafka.sh, KRaft, log on disk under
.run/kafka): a graceful stop keeps every acknowledged record. Tests run one at a time, so no other
test sees it go; it is started again even when this test fails.
"""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

from tests.faults.ledger import produce_paced, tally, until_processing
from tests.harness import ROOT, latest_snapshots
from tests.integration.traffic import settle, simulated

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]


def kafka(action: str) -> None:
    done = subprocess.run([str(ROOT / "deploy/local/kafka.sh"), action], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"kafka.sh {action}:\n{done.stdout}\n{done.stderr}"


async def test_broker_restart_mid_stream_worker_reconnects_by_itself_and_loses_nothing(
        deployment, start_worker, figures):
    traffic = simulated(deployment, 16_000, seed=12, rate=20.0)
    half = len(traffic.records) // 2
    # Small batches: the worker is still working through the first half when the broker goes.
    worker = start_worker(CX_BATCH_MAX_RECORDS="500")
    await produce_paced(traffic.records[:half], pieces=4, pause=0.2)
    await until_processing(worker)
    counted = (await latest_snapshots(deployment.topics["scores"])).get("default/all/all/1d")
    stopped = time.monotonic()
    try:
        kafka("stop")
        await asyncio.sleep(3)
    finally:
        kafka("start")
    down_s = round(time.monotonic() - stopped)
    # The feed pauses while there is no broker to take it (a producer cannot deliver then).
    await produce_paced(traffic.records[half:], pieces=4, pause=0.2)
    settled = await settle(deployment, traffic, timeout=180)
    lost, duplicated = tally(settled.latest, traffic)
    before = counted["interactions"]["n"] if counted else 0
    figures(fed=len(traffic.records), lost=lost, duplicated=duplicated, dead_lettered=0,
            interactions_counted_when_stopped=before, broker_away_s=down_s)
    assert settled.exact, settled.diffs
    assert worker.proc.poll() is None, "the same worker process throughout, never restarted"
    assert before < len(traffic.interactions) // 2, "the broker stopped while the backlog was being processed"

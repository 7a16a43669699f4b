"""Redis, the serving copy, stopped and started again during traffic (a Redis of the test's own).

Kafka is the source of truth: while Redis is down the worker goes on counting and emitting; once Redis
is back (empty: it keeps nothing on disk), the read model catches up with the snapshots on Kafka.
"""

from __future__ import annotations

import orjson
import pytest

from stream_app.sinks.redis import score_key
from tests.faults.ledger import metric, produce_paced, read_model_differences, tally
from tests.harness import latest_snapshots, wait_for
from tests.integration.traffic import settle, simulated

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]


async def test_redis_outage_never_stops_processing_and_the_read_model_catches_up(deployment, start_worker,
                                                                                 redis_server, figures):
    traffic = simulated(deployment, 9_000, seed=13)  # about 23 minutes of event time, in order
    before_outage = simulated(deployment, 3_000, seed=13)
    during_outage = simulated(deployment, 6_000, seed=13)
    worker = start_worker(CX_REDIS_URL=redis_server.url)
    redis = redis_server.client()

    await produce_paced(before_outage.records, pieces=3, pause=0.2)
    assert (await settle(deployment, before_outage)).exact
    await wait_for(lambda: read_model_differences(deployment, redis), timeout=30, message="Redis serving")

    redis_server.stop()
    errors_before = metric(worker.metrics(), "cx_sink_errors_total", sink="redis")
    await produce_paced(during_outage.records[3_000:], pieces=3, pause=0.2)
    while_down = await settle(deployment, during_outage)
    assert while_down.exact, f"processing stopped with Redis: {while_down.diffs}"
    errors = metric(worker.metrics(), "cx_sink_errors_total", sink="redis") - errors_before
    assert errors > 0, "failed writes are counted"
    assert worker.proc.poll() is None

    redis_server.start()
    await produce_paced(traffic.records[6_000:], pieces=3, pause=0.2)
    settled = await settle(deployment, traffic)
    caught_up = await wait_for(lambda: read_model_differences(deployment, redis), timeout=60,
                               message="the read model caught up with Kafka")
    lost, duplicated = tally(settled.latest, traffic)
    figures(fed=len(traffic.records), lost=lost, duplicated=duplicated, dead_lettered=0,
            redis_errors=int(errors), redis_scores=caught_up[2])
    assert settled.exact, settled.diffs
    doc = orjson.loads(redis.get(score_key("default", "all", "all", "1d")))
    assert doc == (await latest_snapshots(deployment.topics["scores"]))["default/all/all/1d"]

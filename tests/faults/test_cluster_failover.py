"""Leader fail-over on a three-node KRaft cluster (deploy/local/cluster.sh): replication factor 3,
min.insync.replicas=2, the worker's producers idempotent with acks=all.

A node is killed with SIGKILL (its pid, by cluster.sh) while the worker works through a backlog: the
node that leads most input and changelog partitions, then, once it is back and in sync, the node that
leads most then. A rolling restart stops and starts each node in turn. The same worker process runs
throughout and is never restarted by hand; every window is compared with the independent count, every
cut-off record is matched in the dead letter, and no alert event appears twice. How long processing
stalled at each fault is measured from the worker's processed-record counter and reported.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict

import orjson
import pytest

from tests.faults.cluster import Cluster, Progress
from tests.faults.ledger import dead_expected, produce_paced, records_of, settle_dead_letters, spoil, tally
from tests.harness import Deployment, Worker, read_all
from tests.integration.traffic import settle, simulated

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

RULES = """rules:
  - name: probe
    metric: ces.net_ease
    dimension: channel
    window: 15m
    comparison: below
    threshold: 100
    min_samples: 1
    for: 0s
    cooldown: 0s
    severity: info
  - name: chat-effort
    metric: ces.net_ease
    dimension: channel
    window: 15m
    comparison: below
    threshold: -10
    clear: 0
    min_samples: 20
    for: 1m
    cooldown: 5m
    severity: critical
"""


@pytest.fixture
def on_cluster(kafka_cluster: Cluster, redis_service, tmp_path, workers):
    """A deployment on the cluster whose topics (the worker makes them) have 3 replicas, and its worker."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    deployment = Deployment(tmp_path, bootstrap=kafka_cluster.bootstrap,
                            extra={"CX_REPLICATION_FACTOR": "3", "CX_RULES_FILE": str(rules),
                                   # small batches: the backlog takes long enough for a fault to hit it
                                   "CX_BATCH_MAX_RECORDS": "1000"})
    return deployment, workers(deployment, "w1")


async def _partitions_to_watch(cluster: Cluster, deployment: Deployment) -> list[str]:
    """The input and changelog topics: the ones whose leaders the fault picks."""
    names = await cluster.topics(deployment.tag)
    return [n for n in names if n in (deployment.topics["interactions"], deployment.topics["surveys"])
            or n.endswith("-changelog")]


async def _assert_replicated(cluster: Cluster, deployment: Deployment) -> int:
    """Every topic of the deployment (inputs, outputs, partials, changelogs, Faust's own) has 3 replicas."""
    names = await cluster.topics(deployment.tag)
    described = await cluster.describe(names)
    thin = [f"{t['topic']}-{p['partition']}: {p['replicas']}" for t in described for p in t["partitions"]
            if len(p["replicas"]) != 3]
    assert not thin, f"partitions not replicated 3 times: {thin[:10]}"
    assert sum(n.endswith("-changelog") for n in names) == 2, names
    return len(names)


async def _alert_events(deployment: Deployment) -> list[dict]:
    records = await read_all(deployment.topics["alerts"], kafka=deployment.kafka)
    return [orjson.loads(r.value) for r in records]


def _alerts_once(events: list[dict]) -> list[str]:
    """Problems with the alert events: an (alert_id, status) twice, or a resolve without its firing."""
    seen = Counter((e["alert_id"], e["status"]) for e in events)
    problems = [f"{key} sent {n} times" for key, n in seen.items() if n > 1]
    by_id: dict[str, list[str]] = defaultdict(list)
    for event in events:
        by_id[event["alert_id"]].append(event["status"])
    problems += [f"{alert_id}: {statuses}" for alert_id, statuses in by_id.items()
                 if statuses not in (["firing"], ["firing", "resolved"])]
    return problems


async def _settle_and_report(deployment: Deployment, worker: Worker, traffic, entries, expected, figures,
                             **notes: object) -> None:
    settled = await settle(deployment, traffic, dimensions=("all", "channel", "queue"), timeout=180)
    found, problems = await settle_dead_letters(deployment, expected, repeats=True)
    events = await _alert_events(deployment)
    lost, duplicated = tally(settled.latest, traffic)
    figures(fed=len(entries), lost=lost, duplicated=duplicated, dead_lettered=len(found),
            dead_letter_repeats=sum(len(records) - 1 for records in found.values()),
            alert_events=len(events), **notes)
    assert settled.exact, settled.diffs
    assert not problems, problems
    assert events, "the rules fired nothing: the alert check checked nothing"
    assert not _alerts_once(events), _alerts_once(events)
    assert worker.proc is not None and worker.proc.poll() is None, "the same worker process throughout"
    assert "Traceback" not in worker.log(), worker.log()[-4000:]


async def test_kill9_of_the_leading_broker_twice_keeps_every_window_exact(kafka_cluster, on_cluster, figures):
    cluster = kafka_cluster
    deployment, worker = on_cluster
    topics_checked = await _assert_replicated(cluster, deployment)
    watched = await _partitions_to_watch(cluster, deployment)
    traffic = simulated(deployment, 24_000, seed=71, rate=20.0, incident="chat")
    entries = spoil(traffic, every=1_000)
    thirds = [entries[i::3] for i in range(3)]
    progress = Progress(worker).start()
    expected: dict = {}
    kills: list[tuple[int, float, int]] = []  # node, when, partitions it led
    in_sync_s = []
    try:
        for number, chunk in enumerate(thirds):
            send = asyncio.create_task(produce_paced(records_of(chunk), pieces=16, pause=0.25,
                                                     kafka=deployment.kafka))
            if number < 2:
                await _until_more_processed(progress, 1_000)
                led = await cluster.leaders(watched)
                node, count = led.most_common(1)[0]
                assert not send.done(), "the backlog was over before the kill"
                kills.append((node, time.monotonic(), count))
                cluster.kill(node)
            expected |= dead_expected(chunk, await send)
            if number < 2:
                await asyncio.sleep(2)
                cluster.start_node(kills[-1][0])
                in_sync_s.append(round(await cluster.wait_in_sync(await cluster.topics(deployment.tag)), 1))
        ends = [at for _, at, _ in kills[1:]] + [time.monotonic() + 300]
        stalls = [progress.stall_after(at, within=end - at)
                  for (_, at, _), end in zip(kills, ends, strict=True)]
        total = sum((await cluster.leaders(watched)).values())
        await _settle_and_report(
            deployment, worker, traffic, entries, expected, figures,
            killed=[f"node {n} (led {c} of {total})" for n, _, c in kills],
            stall_s=stalls, back_in_sync_s=in_sync_s, topics_replicated_3=topics_checked)
    finally:
        await progress.stop()
    print(f"\nfail-over stalls (s): {stalls}; back in sync after restart (s): {in_sync_s}")


async def test_rolling_restart_of_all_three_keeps_every_window_exact(kafka_cluster, on_cluster, figures):
    cluster = kafka_cluster
    deployment, worker = on_cluster
    await cluster.wait_in_sync(await cluster.topics(deployment.tag))
    traffic = simulated(deployment, 20_000, seed=72, rate=20.0, incident="chat")
    entries = spoil(traffic, every=1_000)
    progress = Progress(worker).start()
    restarts: list[tuple[int, float]] = []
    try:
        send = asyncio.create_task(produce_paced(records_of(entries), pieces=60, pause=0.5,
                                                 kafka=deployment.kafka))
        await _until_more_processed(progress, 1_000)
        for node in (1, 2, 3):
            restarts.append((node, time.monotonic()))
            cluster.stop_node(node)
            cluster.start_node(node)
            await cluster.wait_in_sync(await cluster.topics(deployment.tag))
        restarted_while_fed = not send.done()
        expected = dead_expected(entries, await send)
        ends = [at for _, at in restarts[1:]] + [time.monotonic() + 300]
        stalls = [progress.stall_after(at, within=end - at)
                  for (_, at), end in zip(restarts, ends, strict=True)]
        await _settle_and_report(deployment, worker, traffic, entries, expected, figures,
                                 stall_s=stalls, restarted_while_fed=restarted_while_fed)
    finally:
        await progress.stop()
    print(f"\nrolling restart stalls (s): {stalls}")
    assert restarted_while_fed, "the feed was over before the rolling restart ended"


async def _until_more_processed(progress: Progress, records: int, timeout: float = 60.0) -> None:
    """Wait until the worker has processed ``records`` more than when this was called."""
    deadline = time.monotonic() + timeout
    while not progress.samples:
        await asyncio.sleep(0.1)
    start = progress.samples[-1][1]
    while progress.samples[-1][1] < start + records:
        assert time.monotonic() < deadline, "the worker is not processing"
        await asyncio.sleep(0.1)

"""Delay from the event that crosses an alert threshold to the alert on ``cx.alerts.v1``.

``python -m benchmarks.alert_latency [--probes N] [--rate R]`` (defaults 20 and 100).

One worker runs with a probe rule (tenant ``probe``: chat-like CES net ease below 0 on 15m, no
minimum, no ``for``, no cooldown) while the simulator sends live traffic of R records/s for the
default tenant. Each probe is one difficult CES answer on a channel of its own, answered now: that
one event crosses the threshold. Rules are judged in event time at each step boundary (each minute
for 15m), once every partition's data have passed it: so two delays are printed, from the moment the
broker acknowledged the probe, and from the step boundary after its answered_at (the moment the
condition holds for the window that ends there) to the moment a consumer of the alert topic received
its ``firing`` event. It prints every delay, the medians and the worst; it measures, it never fails on
a figure.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from benchmarks.bench import discard
from stream_app.snapshot import rfc3339
from tests.harness import BOOTSTRAP, ROOT, Deployment, Worker

STEP_MS = 60_000  # the 15m window's step: rules are judged at each minute boundary
RULES = """rules:
  - name: latency-probe
    tenant: probe
    metric: ces.net_ease
    dimension: channel
    window: 15m
    comparison: below
    threshold: 0
    clear: 50
    min_samples: 0
    for: 0s
    cooldown: 0s
    severity: info
"""


async def receive(topic: str, arrivals: dict[str, float], stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest")
    await consumer.start()
    try:
        while not stop.is_set():
            for records in (await consumer.getmany(timeout_ms=100)).values():
                for record in records:
                    event = orjson.loads(record.value)
                    if event["status"] == "firing":
                        arrivals.setdefault(event["key"], time.time())
    finally:
        await consumer.stop()


async def probe(deployment: Deployment, count: int,
                arrivals: dict[str, float]) -> list[tuple[float, float]]:
    """Per probe: (seconds from send, seconds from the step boundary) to its alert."""
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    delays = []
    try:
        for i in range(count):
            channel = f"probe-{i}"
            answered_ms = int(time.time() * 1000)
            event = {"event_id": f"{deployment.tag}-{i}", "tenant": "probe", "channel": channel,
                     "answered_at": rfc3339(answered_ms), "answers": [{"metric": "ces", "value": 1}]}
            await producer.send_and_wait(deployment.topics["surveys"], orjson.dumps(event),
                                         key=event["event_id"].encode())
            sent = time.time()
            step_s = (answered_ms // STEP_MS + 1) * STEP_MS / 1000
            while channel not in arrivals and time.time() < sent + STEP_MS / 1000 + 60:
                await asyncio.sleep(0.005)
            got = arrivals.get(channel, float("inf"))
            delays.append((got - sent, got - step_s))
            print(f"probe {i:2d}: {delays[-1][0] * 1000:8.1f} ms from send, "
                  f"{delays[-1][1] * 1000:8.1f} ms after the step boundary")
            await asyncio.sleep(0.5)
    finally:
        await producer.stop()
    return delays


async def main_async(probes: int, rate: float) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="cx-alert-latency-"))
    deployment = Deployment(tmp)
    rules = tmp / "rules.yaml"
    rules.write_text(RULES)
    deployment.extra.update({"CX_RULES_FILE": str(rules), "CX_EMIT_INTERVAL": "1s", "CX_IDLE_TIMEOUT": "60s"})
    worker = Worker(deployment).start()
    topics = deployment.topics
    simulator = subprocess.Popen(
        [sys.executable, "-m", "stream_app", "simulate", "--rate", str(rate), "--bootstrap", BOOTSTRAP,
         "--interactions-topic", topics["interactions"], "--surveys-topic", topics["surveys"]],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    arrivals: dict[str, float] = {}
    stop = asyncio.Event()
    receiver = asyncio.create_task(receive(topics["alerts"], arrivals, stop))
    try:
        await asyncio.sleep(5)  # the simulator's traffic is flowing and the receiver is assigned
        delays = await probe(deployment, probes, arrivals)
    finally:
        stop.set()
        await receiver
        simulator.terminate()
        simulator.wait(10)
        worker.stop()
    await discard(tmp, deployment.tag, keep_topics=False)
    ms = sorted(d * 1000 for d, _ in delays)
    after = sorted(a * 1000 for _, a in delays)
    print(f"\nalert delay over {len(ms)} probes at {rate:g} records/s of background traffic: from send "
          f"median {statistics.median(ms):.1f} ms, worst {ms[-1]:.1f} ms; after the step boundary "
          f"median {statistics.median(after):.1f} ms, worst {after[-1]:.1f} ms")
    print(f"RESULT alert_delay_median_ms={statistics.median(ms):.1f} alert_delay_worst_ms={ms[-1]:.1f} "
          f"after_step_median_ms={statistics.median(after):.1f} after_step_worst_ms={after[-1]:.1f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.alert_latency",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--probes", type=int, default=20, help="threshold crossings to time (default 20)")
    parser.add_argument("--rate", type=float, default=100.0,
                        help="background simulator records/s (default 100)")
    args = parser.parse_args(argv)
    return asyncio.run(main_async(args.probes, args.rate))


if __name__ == "__main__":
    sys.exit(main())

"""Delay from the event that crosses an alert threshold to the alert on ``cx.alerts.v1``.

``python -m benchmarks.alert_latency [--probes N] [--rate R]`` (defaults 20 and 100).

One worker runs with a probe rule (tenant ``probe``: chat-like CES net ease below 0 on 15m, no
minimum, no ``for``, no cooldown) while the simulator sends live traffic of R records/s for the
default tenant. Each probe is one difficult CES answer on a channel of its own, answered now: that
one event crosses the threshold. The delay is from the moment the broker acknowledged the probe
to the moment a consumer of the alert topic received its ``firing`` event. It prints every delay,
the median and the worst; it measures, it never fails on a figure.
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
                        arrivals.setdefault(event["key"], time.monotonic())
    finally:
        await consumer.stop()


async def probe(deployment: Deployment, count: int, arrivals: dict[str, float]) -> list[float]:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    delays = []
    try:
        for i in range(count):
            channel = f"probe-{i}"
            event = {"event_id": f"{deployment.tag}-{i}", "tenant": "probe", "channel": channel,
                     "answered_at": rfc3339(int(time.time() * 1000)),
                     "answers": [{"metric": "ces", "value": 1}]}
            await producer.send_and_wait(deployment.topics["surveys"], orjson.dumps(event),
                                         key=event["event_id"].encode())
            sent = time.monotonic()
            deadline = sent + 30
            while channel not in arrivals and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            delays.append(arrivals[channel] - sent if channel in arrivals else float("inf"))
            print(f"probe {i:2d}: {delays[-1] * 1000:8.1f} ms")
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
    ms = sorted(d * 1000 for d in delays)
    print(f"\nalert delay over {len(ms)} probes at {rate:g} records/s of background traffic: "
          f"median {statistics.median(ms):.1f} ms, worst {ms[-1]:.1f} ms")
    print(f"RESULT alert_delay_median_ms={statistics.median(ms):.1f} alert_delay_worst_ms={ms[-1]:.1f}")
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

"""The three-node cluster of deploy/local/cluster.sh as the fault tests drive it: who leads what, kill -9
of a node by its pid, a node started again, waiting until every replica is back in sync, and a sampler
that measures how long processing stalls around each fault."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient

from tests.faults.ledger import metric
from tests.harness import ROOT, Worker

SCRIPT = ROOT / "deploy/local/cluster.sh"
BOOTSTRAP = "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"


def cluster_sh(*args: str, timeout: float = 180) -> str:
    done = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"cluster.sh {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


class Cluster:
    """Three combined broker and controller nodes on 127.0.0.1:19092-19094."""

    bootstrap = BOOTSTRAP

    def pids(self) -> dict[int, int]:
        return {int(n): int(pid) for n, pid in (line.split() for line in cluster_sh("pids").splitlines())}

    def kill(self, node: int) -> None:
        cluster_sh("kill", str(node))

    def stop_node(self, node: int) -> None:
        cluster_sh("stop-node", str(node))

    def start_node(self, node: int) -> None:
        cluster_sh("start-node", str(node))

    async def describe(self, topics: list[str]) -> list[dict]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            return await admin.describe_topics(topics)
        finally:
            await admin.close()

    async def topics(self, tag: str) -> list[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            return sorted(t for t in await admin.list_topics() if tag in t)
        finally:
            await admin.close()

    async def leaders(self, topics: list[str]) -> Counter[int]:
        """How many partitions of ``topics`` each node leads."""
        found: Counter[int] = Counter()
        for topic in await self.describe(topics):
            for partition in topic["partitions"]:
                if partition["leader"] >= 0:
                    found[partition["leader"]] += 1
        return found

    async def brokers(self) -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            return len((await admin.describe_cluster())["brokers"])
        finally:
            await admin.close()

    async def wait_in_sync(self, topics: list[str], timeout: float = 120.0) -> float:
        """Wait until every partition of ``topics`` (and the group offsets) has all 3 replicas in sync and
        a leader; returns how long that took."""
        started = time.monotonic()
        names = [*topics, "__consumer_offsets"]
        while True:
            try:
                behind = [f"{t['topic']}-{p['partition']}" for t in await self.describe(names)
                          for p in t["partitions"] if len(p["isr"]) < 3 or p["leader"] < 0]
            except Exception as exc:  # a node just (re)started: metadata may fail for a moment
                behind = [repr(exc)]
            if not behind:
                return time.monotonic() - started
            assert time.monotonic() - started < timeout, f"not in sync after {timeout} s: {behind[:10]}"
            await asyncio.sleep(0.5)

    async def wait_brokers(self, count: int = 3, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if await self.brokers() == count:
                    return
            except Exception:  # not up yet
                pass
            assert time.monotonic() < deadline, f"the cluster has not {count} brokers after {timeout} s"
            await asyncio.sleep(0.5)


@dataclass
class Progress:
    """Samples a worker's processed-record counter every ``every`` seconds, from a thread so that a
    slow answer never holds up the test's event loop."""

    worker: Worker
    every: float = 0.2
    samples: list[tuple[float, float]] = field(default_factory=list)
    _task: asyncio.Task | None = None

    def start(self) -> Progress:
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            try:
                text = await asyncio.to_thread(self.worker.metrics)
                self.samples.append((time.monotonic(), metric(text, "cx_records_processed_total")))
            except OSError:
                pass
            await asyncio.sleep(self.every)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def stall_after(self, at: float, within: float = 120.0) -> float:
        """How long processing stalled at a fault that struck at ``at``: the longest time, after ``at``,
        between two processed batches (a gap that began before the fault counts from the fault on).
        The idle time after the last record never ends in a batch, so it does not count."""
        changes = [t for (t, count), (_, before) in zip(self.samples[1:], self.samples, strict=False)
                   if count > before]
        gaps = [b - max(a, at) for a, b in zip(changes, changes[1:], strict=False) if at < b <= at + within]
        return round(max(gaps, default=0.0), 1)

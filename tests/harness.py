"""Test harness: the real local broker, worker processes, and readers of the output topics.

Every test gets its own app id, topic names and data directory, so tests share one broker
without seeing each other's records. A deployment on another Kafka (the three-node cluster, the
secured broker) names its bootstrap servers and the test clients' security options; every reader and
writer here takes them as ``kafka`` (aiokafka's keyword arguments), the shared broker when left out.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import RecordMetadata

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = os.environ.get("CX_KAFKA_BOOTSTRAP", "127.0.0.1:9092")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DEPLOYMENT_TAGS: list[str] = []  # every deployment made in this process, in order: whose topics to delete


@dataclass
class Deployment:
    """One isolated deployment on the shared broker: its settings as CX_* variables."""

    tmp: Path
    partitions: int = 8
    extra: dict[str, str] = field(default_factory=dict)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    bootstrap: str = BOOTSTRAP
    client: dict[str, Any] = field(default_factory=dict)  # the test's own clients' security options

    def __post_init__(self) -> None:
        if self.bootstrap == BOOTSTRAP:  # the others' brokers live for their tests' session only
            DEPLOYMENT_TAGS.append(self.tag)

    @property
    def topics(self) -> dict[str, str]:
        return {
            "interactions": f"t{self.tag}.interaction-closed",
            "surveys": f"t{self.tag}.survey-answered",
            "scores": f"t{self.tag}.scores",
            "alerts": f"t{self.tag}.alerts",
            "dead_letter": f"t{self.tag}.dead-letter",
            "partials": f"t{self.tag}.partials",
        }

    def env(self, worker: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CX_")}
        env.update({
            "CX_APP_ID": f"cx-test-{self.tag}",
            "CX_KAFKA_BOOTSTRAP": self.bootstrap,
            # Not db 0, which `make demo` reads: test runs must not show up on a developer's wallboard.
            "CX_REDIS_URL": "redis://127.0.0.1:6379/15",
            "CX_PARTITIONS": str(self.partitions),
            "CX_DATA_DIR": str(self.tmp / f"data-{worker}"),
            "CX_IDLE_TIMEOUT": "3s",
            "CX_EMIT_INTERVAL": "0.2",
            "CX_SESSION_TIMEOUT_SECONDS": "6",
            "CX_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        })
        for name, topic in self.topics.items():
            env[f"CX_TOPIC_{name.upper()}"] = topic
        env.update(self.extra)
        return env

    @property
    def kafka(self) -> dict[str, Any]:
        """aiokafka's keyword arguments for the test's own clients of this deployment's Kafka."""
        return {"bootstrap_servers": self.bootstrap, **self.client}


class Worker:
    """A worker process: started, awaited until ready, stopped gently or killed with SIGKILL."""

    def __init__(self, deployment: Deployment, name: str = "w1") -> None:
        self.deployment = deployment
        self.name = name
        self.port = free_port()
        self.log_path = deployment.tmp / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> Worker:
        env = self.deployment.env(self.name)
        env["CX_WEB_PORT"] = str(self.port)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "stream_app", "worker"], cwd=ROOT, env=env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"worker {self.name} not ready after {timeout}s:\n{self.log()[-4000:]}")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            return r.read().decode()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not stopped in time."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def _client(kafka: dict[str, Any] | None) -> dict[str, Any]:
    return kafka or {"bootstrap_servers": BOOTSTRAP}


async def delete_topics(*tags: str) -> int:
    """Delete every topic whose name holds one of ``tags`` (a deployment's own and its worker's
    internal ones): the broker keeps open files per partition, and runs that leave their topics
    behind reach its open-file limit (20,000) after a few thousand topics."""
    admin = AIOKafkaAdminClient(**_client(None))
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if any(tag in t for tag in tags)]
        if names:
            await admin.delete_topics(names)
        return len(names)
    finally:
        await admin.close()


async def produce(records: Iterable[tuple[str, bytes | None, bytes | None]], *,
                  partition_of: Callable | None = None,
                  kafka: dict[str, Any] | None = None) -> list[RecordMetadata]:
    """Send (topic, key, value) records with the Java-compatible murmur2 partitioner; wait for acks.

    Returns each record's metadata (topic, partition, offset), in the order of ``records``.
    """
    producer = AIOKafkaProducer(**_client(kafka), linger_ms=5, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        futures = []
        for topic, key, value in records:
            partition = partition_of(topic, key) if partition_of else None
            futures.append(await producer.send(topic, value, key=key, partition=partition))
        return list(await asyncio.gather(*futures))
    finally:
        await producer.stop()


def dumps(event: dict) -> bytes:
    return orjson.dumps(event)


async def read_all(topic: str, *, idle_s: float = 1.0, kafka: dict[str, Any] | None = None) -> list[Any]:
    """Every record currently in a topic, from the beginning."""
    return [record async for batch in iter_all(topic, idle_s=idle_s, kafka=kafka) for record in batch]


async def iter_all(topic: str, *, idle_s: float = 1.0,
                   kafka: dict[str, Any] | None = None) -> AsyncIterator[list[Any]]:
    """The records currently in a topic, from the beginning, a fetched batch at a time (for a topic
    too large to hold whole)."""
    consumer = AIOKafkaConsumer(**_client(kafka), enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            batch = await consumer.getmany(timeout_ms=int(idle_s * 1000))
            for messages in batch.values():
                yield messages
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()


async def latest_snapshots(topic: str, kafka: dict[str, Any] | None = None) -> dict[str, dict]:
    """The score topic as a compacted reader sees it: the latest value per key."""
    latest: dict[str, dict] = {}
    for record in await read_all(topic, kafka=kafka):
        if record.value is not None:
            latest[record.key.decode()] = orjson.loads(record.value)
    return latest


async def wait_for(check: Callable[[], Any], *, timeout: float = 60.0, every: float = 0.5,
                   message: str = "condition") -> Any:
    """Poll an async check until it returns a truthy value; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last and (not isinstance(last, tuple) or last[0]):
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"timed out waiting for {message}; last seen: {last!r}"[:6000])

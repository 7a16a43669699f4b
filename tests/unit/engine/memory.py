"""The engine in memory for the tests: the backtest's ports (``stream_app.engine.memory``) with a crash
on demand, and a run of processes one after another over the same log.

A ``MemoryBroker`` can be told to crash after a number of written records: the flush that reaches it
writes only a prefix of its records and raises ``Crash``, as a kill -9 in mid-send would leave it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from stream_app.engine.commit import Pipeline, Topics
from stream_app.engine.intake import Intake, IntakeConfig
from stream_app.engine.memory import MemoryLog, MemoryPorts, step
from stream_app.engine.rollup import Rollup, RollupConfig
from stream_app.engine.store import MemoryStore
from stream_app.rules import Rule
from stream_app.simulate import generate
from stream_app.windows import bucket_widths, parse_windows

TOPICS = Topics("ix", "sv", "partials", "scores", "alerts", "dlq")
PARTITIONS = 2
START_MS = 1_790_000_000_000
SPECS = parse_windows("15m:15m:1m,1h:1h:5m,1d:1d:1d")
INTAKE = IntakeConfig(PARTITIONS, ("all", "channel", "queue", "agent", "touchpoint"), bucket_widths(SPECS),
                      3_600_000, 7_200_000, 20.0, 10_000, 65_536)
ROLLUP = RollupConfig(SPECS, 3_600_000, 60_000, 1.0, PARTITIONS)


class Crash(Exception):
    """The process died here."""


@dataclass
class MemoryBroker(MemoryLog):
    crash_after: int | None = None  # records written before the crash
    written: int = 0

    def append(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> int:
        if self.crash_after is not None and self.written >= self.crash_after:
            raise Crash(f"after {self.written} records")
        self.written += 1
        return super().append(topic, partition, key, value)


def load_inputs(broker: MemoryBroker, count: int, seed: int) -> list[Any]:
    """Simulator records onto the input topics, partitioned by key; returns them."""
    records = list(generate(seed=seed, count=count, start_ms=START_MS, rate_per_s=2.0))
    for record in records:
        send(broker, record.kind, record.key, orjson.dumps(record.value))
    broker.written = 0
    return records


def send(broker: MemoryBroker, kind: str, key: bytes, value: bytes) -> None:
    topic = TOPICS.interactions if kind == "interaction" else TOPICS.surveys
    broker.append(topic, zlib.crc32(key) % PARTITIONS, key, value)


@dataclass
class Run:
    """One process after another over the same broker; ``positions`` are the acknowledged offsets."""

    broker: MemoryBroker
    batch_records: int
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    ports: MemoryPorts | None = None
    pipeline: Pipeline | None = None
    rules: tuple[Rule, ...] = ()

    def start(self, keep_stores: bool) -> None:
        old = self.ports.stores if (keep_stores and self.ports is not None) else {}
        self.ports = MemoryPorts(self.broker, TOPICS.alerts, "t")
        for (table, partition), store in old.items():
            caught_up = _caught_up(self.broker, self.ports, table, partition, store)
            self.ports.stores[(table, partition)] = caught_up
        self.pipeline = Pipeline(self.ports, TOPICS, Intake(INTAKE), Rollup(ROLLUP, self.rules))

    async def step(self) -> bool:
        assert self.pipeline is not None
        return await step(self.pipeline, self.broker, TOPICS, PARTITIONS, self.positions, self.batch_records,
                          now=lambda: START_MS / 1000 + 86_400)

    async def to_the_end(self) -> None:
        while await self.step():
            pass

    async def through_crashes(self, points: list[int], keep_stores: bool, replay_batch: int) -> None:
        """To the end, crashing once ``points`` records have been written, each time restarting with
        the stores kept (and caught up) or rebuilt and cutting batches at ``replay_batch`` records."""
        for point in sorted(points):
            self.broker.crash_after = point
            try:
                await self.to_the_end()
            except Crash:
                self.start(keep_stores)
                self.batch_records = replay_batch
        self.broker.crash_after = None
        await self.to_the_end()

    def windows(self) -> dict:
        assert self.pipeline is not None
        rollup = self.pipeline.rollup
        for partition in range(PARTITIONS):  # one never fed since the crash is loaded as the timer would
            if not rollup.loaded(partition):
                assert self.ports is not None
                rollup.load(partition, self.ports.store("rollup", partition).items())
        # A bucket whose effects cancel out (a survey moved away from ``unknown``) may or may not exist,
        # depending on where batches were cut: all zeros is the same window as none.
        return {(scope, bucket): stats.tolist() for state in rollup.partitions.values()
                for scope in state.parts for bucket, stats in state.merged(scope).items() if stats.any()}


def _caught_up(broker: MemoryBroker, ports: MemoryPorts, table: str, partition: int,
               kept: MemoryStore) -> MemoryStore:
    """A kept store after Faust's recovery: the changelog after its checkpoint applied on top."""
    store = MemoryStore(kept.items())
    start = 0 if kept.checkpoint is None else kept.checkpoint
    for record in broker.read(ports.changelog_topic(table), partition, start):
        assert record.key is not None
        store.write([(record.key, record.value)], record.offset)
    return store

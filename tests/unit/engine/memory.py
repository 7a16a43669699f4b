"""The engine's ports in memory: a broker of lists, stores with checkpoints, and a crash on demand.

A ``MemoryBroker`` can be told to crash after a number of written records: the flush that reaches it
writes only a prefix of its records and raises ``Crash``, as a kill -9 in mid-send would leave it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from stream_app.engine.commit import INTAKE_TABLE, ROLLUP_TABLE, Headers, Pipeline, Topics
from stream_app.engine.intake import Intake, IntakeConfig
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


@dataclass(frozen=True, slots=True)
class Record:
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class MemoryBroker:
    logs: dict[tuple[str, int], list[Record]] = field(default_factory=dict)
    crash_after: int | None = None  # records written before the crash
    written: int = 0

    def append(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> int:
        if self.crash_after is not None and self.written >= self.crash_after:
            raise Crash(f"after {self.written} records")
        log = self.logs.setdefault((topic, partition), [])
        log.append(Record(len(log), key, value))
        self.written += 1
        return len(log) - 1

    def read(self, topic: str, partition: int, start: int, limit: int | None = None) -> list[Record]:
        log = self.logs.get((topic, partition), [])
        return log[start:] if limit is None else log[start:start + limit]

    def compacted(self, topic: str, partition: int) -> list[tuple[bytes, bytes]]:
        """What a new owner recovers from a changelog partition."""
        state: dict[bytes, bytes] = {}
        for record in self.logs.get((topic, partition), []):
            assert record.key is not None
            if record.value is None:
                state.pop(record.key, None)
            else:
                state[record.key] = record.value
        return list(state.items())


class MemoryOutbox:
    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker
        self.records: list[tuple[str, int, bytes | None, bytes | None]] = []

    def add(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None,
            headers: Headers | None = None) -> None:
        self.records.append((topic, 0 if partition is None else partition, key, value))

    async def flush(self) -> dict[tuple[str, int], int]:
        records, self.records = self.records, []
        last: dict[tuple[str, int], int] = {}
        for topic, partition, key, value in records:
            last[(topic, partition)] = self.broker.append(topic, partition, key, value)
        return last


class MemoryPorts:
    def __init__(self, broker: MemoryBroker, app_id: str = "t") -> None:
        self.broker = broker
        self.app_id = app_id
        self.stores: dict[tuple[str, int], MemoryStore] = {}

    def outbox(self) -> MemoryOutbox:
        return MemoryOutbox(self.broker)

    def store(self, table: str, partition: int) -> MemoryStore:
        found = self.stores.get((table, partition))
        if found is None:  # a process that never held it: recover from the changelog
            found = MemoryStore(self.broker.compacted(self.changelog_topic(table), partition))
            self.stores[(table, partition)] = found
        return found

    def changelog_topic(self, table: str) -> str:
        assert table in (INTAKE_TABLE, ROLLUP_TABLE)
        return f"{self.app_id}-{table}-changelog"

    async def alert_events_since(self, since_ms: int) -> list[bytes]:
        return [r.value for (topic, _), log in self.broker.logs.items() if topic == "alerts"
                for r in log if r.value is not None]


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
        self.ports = MemoryPorts(self.broker)
        for (table, partition), store in old.items():
            caught_up = _caught_up(self.broker, self.ports, table, partition, store)
            self.ports.stores[(table, partition)] = caught_up
        self.pipeline = Pipeline(self.ports, TOPICS, Intake(INTAKE), Rollup(ROLLUP, self.rules))

    async def step(self) -> bool:
        assert self.pipeline is not None
        batch = {}
        for topic in (TOPICS.interactions, TOPICS.surveys, TOPICS.partials):
            for partition in range(PARTITIONS):
                start = self.positions.get((topic, partition), 0)
                records = self.broker.read(topic, partition, start, self.batch_records)
                if records:
                    batch[(topic, partition)] = records
        if not batch:
            return False
        await self.pipeline.handle(batch, now=lambda: START_MS / 1000 + 86_400)
        for tp, records in batch.items():
            self.positions[tp] = records[-1].offset + 1
        return True

    async def to_the_end(self) -> None:
        while await self.step():
            pass

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

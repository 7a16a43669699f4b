"""The engine's ports in memory: topics as lists, stores as dicts. The backtest runs the worker's own
commit order on them, and the engine's tests drive it with crashes on demand.

Nothing here talks to Kafka: a topic-partition is a list of records whose offsets are their indices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from stream_app.engine.commit import INTAKE_TABLE, ROLLUP_TABLE, Headers, Pipeline, Topics
from stream_app.engine.intake import InputRecord
from stream_app.engine.store import MemoryStore


@dataclass(frozen=True, slots=True)
class Record:
    """What the engine reads of a Kafka record."""

    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class MemoryLog:
    """Topic-partitions as lists. Records of the ``dropped`` topics are counted, not kept: what nobody
    reads back (the backtest's snapshots and changelogs) costs no memory."""

    logs: dict[tuple[str, int], list[Record]] = field(default_factory=dict)
    dropped: frozenset[str] = frozenset()
    _ends: dict[tuple[str, int], int] = field(default_factory=dict)

    def append(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> int:
        if topic in self.dropped:
            offset = self._ends[(topic, partition)] = self._ends.get((topic, partition), -1) + 1
            return offset
        log = self.logs.setdefault((topic, partition), [])
        log.append(Record(len(log), key, value))
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
    def __init__(self, log: MemoryLog) -> None:
        self.log = log
        self.records: list[tuple[str, int, bytes | None, bytes | None]] = []

    def add(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None,
            headers: Headers | None = None) -> None:
        self.records.append((topic, 0 if partition is None else partition, key, value))

    async def flush(self) -> dict[tuple[str, int], int]:
        records, self.records = self.records, []
        last: dict[tuple[str, int], int] = {}
        for topic, partition, key, value in records:
            last[(topic, partition)] = self.log.append(topic, partition, key, value)
        return last


class MemoryPorts:
    """A store not held yet is recovered from its changelog, as Faust would."""

    def __init__(self, log: MemoryLog, alerts_topic: str, app_id: str = "memory") -> None:
        self.log = log
        self.alerts_topic = alerts_topic
        self.app_id = app_id
        self.stores: dict[tuple[str, int], MemoryStore] = {}

    def outbox(self) -> MemoryOutbox:
        return MemoryOutbox(self.log)

    def store(self, table: str, partition: int) -> MemoryStore:
        found = self.stores.get((table, partition))
        if found is None:
            found = MemoryStore(self.log.compacted(self.changelog_topic(table), partition))
            self.stores[(table, partition)] = found
        return found

    def changelog_topic(self, table: str) -> str:
        assert table in (INTAKE_TABLE, ROLLUP_TABLE)
        return f"{self.app_id}-{table}-changelog"

    async def alert_events_since(self, since_ms: int) -> list[bytes]:
        return [r.value for (topic, _), log in self.log.logs.items() if topic == self.alerts_topic
                for r in log if r.value is not None]


async def step(pipeline: Pipeline, log: MemoryLog, topics: Topics, partitions: int,
               positions: dict[tuple[str, int], int], batch_records: int,
               now: Callable[[], float]) -> bool:
    """Hand the pipeline the next batch of every input and partials partition, as a fetch would, and
    acknowledge it; False when there is nothing left to read."""
    batch: dict[tuple[str, int], Sequence[InputRecord]] = {}
    for topic in (topics.interactions, topics.surveys, topics.partials):
        for partition in range(partitions):
            records = log.read(topic, partition, positions.get((topic, partition), 0), batch_records)
            if records:
                batch[(topic, partition)] = records
    if not batch:
        return False
    await pipeline.handle(batch, now=now)
    for tp, fetched in batch.items():
        positions[tp] = fetched[-1].offset + 1
    return True

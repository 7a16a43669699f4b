"""The engine's ports in memory: a broker of lists, stores with checkpoints, and a crash on demand.

A ``MemoryBroker`` can be told to crash after a number of written records: the flush that reaches it
writes only a prefix of its records and raises ``Crash``, as a kill -9 in mid-send would leave it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from stream_app.engine.commit import INTAKE_TABLE, ROLLUP_TABLE, Headers
from stream_app.engine.store import Write


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


class MemoryStore:
    def __init__(self, items: Sequence[tuple[bytes, bytes]] = ()) -> None:
        self.data = dict(items)
        self.checkpoint: int | None = None

    def items(self) -> list[tuple[bytes, bytes]]:
        return list(self.data.items())

    def write(self, writes: Sequence[Write], changelog_offset: int | None) -> None:
        for key, value in writes:
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value
        self.checkpoint = changelog_offset


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


def as_records(items: Sequence[Any]) -> list[Record]:
    return [Record(i, key, value) for i, (key, value) in enumerate(items)]

"""A run cut by a crash at any record written, then replayed, gives the windows of an uninterrupted run.

The whole commit order runs in memory: both stages, the changelogs, the partials topic and the stores.
A crash leaves the changelog and the outputs holding a prefix of what was being written; the next
process recovers its stores (kept and caught up from their checkpoint, or rebuilt from the changelog)
and reads the input again from the last acknowledged offsets.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass, field

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_app.engine.commit import Pipeline, Topics
from stream_app.engine.intake import Intake, IntakeConfig
from stream_app.engine.rollup import Rollup, RollupConfig
from stream_app.simulate import generate
from stream_app.windows import bucket_widths, parse_windows
from tests.unit.engine.memory import Crash, MemoryBroker, MemoryPorts, MemoryStore

TOPICS = Topics("ix", "sv", "partials", "scores", "alerts", "dlq")
PARTITIONS = 2
START_MS = 1_790_000_000_000
SPECS = parse_windows("15m:15m:1m,1h:1h:5m,1d:1d:1d")
INTAKE = IntakeConfig(PARTITIONS, ("all", "channel", "queue", "agent", "touchpoint"), bucket_widths(SPECS),
                      3_600_000, 7_200_000, 20.0, 10_000, 65_536)
ROLLUP = RollupConfig(SPECS, 3_600_000, 60_000, 1.0)


def load_inputs(broker: MemoryBroker, count: int, seed: int) -> None:
    for record in generate(seed=seed, count=count, start_ms=START_MS, rate_per_s=2.0):
        topic = TOPICS.interactions if record.kind == "interaction" else TOPICS.surveys
        broker.append(topic, zlib.crc32(record.key) % PARTITIONS, record.key, orjson.dumps(record.value))
    broker.written = 0


@dataclass
class Run:
    """One process after another over the same broker; ``positions`` are the acknowledged offsets."""

    broker: MemoryBroker
    batch_records: int
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    ports: MemoryPorts | None = None
    pipeline: Pipeline | None = None

    def start(self, keep_stores: bool) -> None:
        old = self.ports.stores if (keep_stores and self.ports is not None) else {}
        self.ports = MemoryPorts(self.broker)
        for (table, partition), store in old.items():
            caught_up = _caught_up(self.broker, self.ports, table, partition, store)
            self.ports.stores[(table, partition)] = caught_up
        self.pipeline = Pipeline(self.ports, TOPICS, Intake(INTAKE), Rollup(ROLLUP))

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
        return {(scope, bucket): stats for state in rollup.partitions.values() for scope in state.parts
                for bucket, stats in state.merged(scope).items() if any(stats)}


def _caught_up(broker: MemoryBroker, ports: MemoryPorts, table: str, partition: int,
               kept: MemoryStore) -> MemoryStore:
    """A kept store after Faust's recovery: the changelog after its checkpoint applied on top."""
    store = MemoryStore(kept.items())
    start = 0 if kept.checkpoint is None else kept.checkpoint
    for record in broker.read(ports.changelog_topic(table), partition, start):
        assert record.key is not None
        store.write([(record.key, record.value)], record.offset)
    return store


def uninterrupted(count: int, seed: int, batch_records: int) -> tuple[dict, int]:
    broker = MemoryBroker()
    load_inputs(broker, count, seed)
    run = Run(broker, batch_records)
    run.start(keep_stores=False)
    asyncio.run(run.to_the_end())
    return run.windows(), broker.written


def with_crashes(count: int, seed: int, batch_records: int, crash_points: list[int], keep_stores: bool,
                 replay_batch: int) -> dict:
    broker = MemoryBroker()
    load_inputs(broker, count, seed)
    run = Run(broker, batch_records)
    run.start(keep_stores=False)
    for point in sorted(crash_points):
        broker.crash_after = point
        try:
            asyncio.run(run.to_the_end())
        except Crash:
            run.start(keep_stores)
            run.batch_records = replay_batch  # the next process cuts its batches elsewhere
    broker.crash_after = None
    asyncio.run(run.to_the_end())
    return run.windows()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 3), batch_records=st.sampled_from([7, 50, 400]),
       cuts=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=3), keep_stores=st.booleans(),
       replay_batch=st.sampled_from([5, 60, 1000]))
def test_a_crash_at_any_write_then_replay_gives_the_windows_of_an_uninterrupted_run(
        seed: int, batch_records: int, cuts: list[float], keep_stores: bool, replay_batch: int) -> None:
    expected, written = uninterrupted(250, seed, batch_records)
    points = [int(cut * written) for cut in cuts]
    got = with_crashes(250, seed, batch_records, points, keep_stores, replay_batch)
    assert got == expected


def test_an_uninterrupted_run_counts_every_interaction_once() -> None:
    broker = MemoryBroker()
    load_inputs(broker, 300, 7)
    interactions = sum(len(broker.read(TOPICS.interactions, p, 0)) for p in range(PARTITIONS))
    run = Run(broker, 50)
    run.start(keep_stores=False)
    asyncio.run(run.to_the_end())
    windows = run.windows()
    day = [stats for (scope, (width, _)), stats in windows.items()
           if scope[1] == "all" and width == 86_400_000]
    assert sum(stats[12] for stats in day) == interactions

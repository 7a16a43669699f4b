"""A run cut by a crash at any record written, then replayed, gives the windows of an uninterrupted run.

The whole commit order runs in memory: both stages, the changelogs, the partials topic and the stores.
A crash leaves the changelog and the outputs holding a prefix of what was being written; the next
process recovers its stores (kept and caught up from their checkpoint, or rebuilt from the changelog)
and reads the input again from the last acknowledged offsets.
"""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.engine.memory import PARTITIONS, TOPICS, MemoryBroker, Run, load_inputs


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
    asyncio.run(run.through_crashes(crash_points, keep_stores, replay_batch))  # batches cut elsewhere
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

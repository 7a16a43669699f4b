"""The engine in memory counts every window exactly as an independent count written from the contract.

Simulator traffic with duplicates and malformed records mixed in, in batches of several sizes; the
day buckets of the rollup are compared with ``tests/reference.py`` per dimension and key, the
survey-delay histogram bin by bin.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest

from stream_app import scoring
from tests.reference import DAY_MS, expected_counts
from tests.unit.engine.memory import TOPICS, MemoryBroker, Run, load_inputs, send

DIMENSIONS = ("all", "channel", "queue", "agent", "touchpoint")
FIELDS = {
    "interactions": scoring.IX_N, "abandoned": scoring.IX_ABANDONED, "surveys": scoring.SURVEYS,
    "ces_n": scoring.CES_N, "ces_easy": scoring.CES_EASY, "ces_difficult": scoring.CES_DIFFICULT,
    "csat_n": scoring.CSAT_N, "csat_satisfied": scoring.CSAT_SATISFIED,
    "nps_n": scoring.NPS_N, "nps_promoters": scoring.NPS_PROMOTERS, "nps_detractors": scoring.NPS_DETRACTORS,
}


def day_counts(run: Run, dimension: str) -> dict[tuple[str, int], dict[str, int]]:
    counts = {}
    for ((_, dim, key), (width, start)), stats in run.windows().items():
        if dim == dimension and width == DAY_MS:
            counts[(key, start)] = {name: int(stats[i]) for name, i in FIELDS.items() if stats[i]}
            delays = {i: int(stats[i]) for i in range(scoring.DELAY_FIRST, scoring.STATS_LEN) if stats[i]}
            if delays:
                counts[(key, start)]["delay_bins"] = delays
    return counts


def with_delay_bins(counts: dict) -> dict:
    """The reference's delays as the histogram's bins, the way the engine must count them."""
    out = {k: v for k, v in counts.items() if v and k != "delays"}
    bins: dict[int, int] = {}
    for delay_ms in counts.get("delays", []):
        index = scoring.delay_index(delay_ms)
        bins[index] = bins.get(index, 0) + 1
    if bins:
        out["delay_bins"] = bins
    return out


@pytest.mark.parametrize("batch_records", [1, 13, 500])
def test_day_windows_equal_an_independent_count_with_duplicates_and_bad_records(batch_records: int) -> None:
    broker = MemoryBroker()
    records = load_inputs(broker, 600, seed=5)
    for record in records[::20]:  # the same events again: counted once
        send(broker, record.kind, record.key, orjson.dumps(record.value))
    for bad in (b"{", b"[]", orjson.dumps({"event_id": "x", "channel": "chat"})):
        send(broker, "interaction", b"bad", bad)
        send(broker, "survey", b"bad", bad)
    run = Run(broker, batch_records)
    run.start(keep_stores=False)
    asyncio.run(run.to_the_end())
    interactions = [r.value for r in records if r.kind == "interaction"]
    surveys = [r.value for r in records if r.kind == "survey"]
    for dimension in DIMENSIONS:
        want = expected_counts(interactions, surveys, dimension, DAY_MS)
        want = {key: with_delay_bins(c) for key, c in want.items()}
        assert day_counts(run, dimension) == want, dimension
    dead = broker.read(TOPICS.dead_letter, 0, 0)
    assert len(dead) == 6

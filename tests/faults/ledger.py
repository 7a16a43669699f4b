"""What a fault scenario fed and what came out of it.

Windows are compared with the independent count of ``tests/reference.py``; dead letters are matched
one by one to the input records that caused them, by their ``source_topic``, ``source_partition`` and
``source_offset`` headers.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka.partitioner import murmur2
from aiokafka.structs import RecordMetadata

from stream_app.sinks.redis import score_key
from tests.harness import Deployment, Worker, latest_snapshots, produce, read_all, wait_for
from tests.integration.traffic import Traffic
from tests.reference import expected_counts, to_ms

Source = tuple[str, int, int]  # topic, partition, offset of an input record
Record = tuple[str, bytes | None, bytes | None]  # topic, key, value as produced


@dataclass(frozen=True)
class Bad:
    """An input record that must reach the dead letter, unchanged, with this reason."""

    key: bytes | None
    value: bytes | None
    reason: str


Entry = tuple[Record, Bad | None]  # a record to produce and, for a bad one, its dead letter


def spoil(traffic: Traffic, every: int) -> list[Entry]:
    """The traffic with a cut-off copy (invalid JSON, same key) after every ``every``-th record."""
    entries: list[Entry] = []
    for number, record in enumerate(traffic.records, 1):
        entries.append((record, None))
        if number % every == 0:
            topic, key, value = record
            cut = value[:len(value) // 2]
            entries.append(((topic, key, cut), Bad(key, cut, "invalid_json")))
    return entries


def records_of(entries: Sequence[Entry]) -> list[Record]:
    return [record for record, _ in entries]


def dead_expected(entries: Sequence[Entry], sent: Sequence[RecordMetadata]) -> dict[Source, Bad]:
    """Where each bad record landed (from the producer's acks) and what its dead letter must be."""
    return {source(meta): bad for (_, bad), meta in zip(entries, sent, strict=True) if bad is not None}


def partition_for(key: bytes, partitions: int) -> int:
    """The Java client's default partitioner (murmur2), which the test producer uses for keyed records."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def source(meta: RecordMetadata) -> Source:
    return meta.topic, meta.partition, meta.offset


async def produce_paced(records: Sequence[Record], pieces: int, pause: float,
                        kafka: dict[str, Any] | None = None) -> list[RecordMetadata]:
    """The records in ``pieces`` sends ``pause`` seconds apart: a stream still arriving as a fault strikes."""
    size = -(-len(records) // pieces)
    sent: list[RecordMetadata] = []
    for start in range(0, len(records), size):
        if start:
            await asyncio.sleep(pause)
        sent += await produce(records[start:start + size], kafka=kafka)
    return sent


def samples(text: str, name: str, **labels: str) -> list[float]:
    """The samples of a Prometheus exposition whose series carry these labels."""
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    found = []
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        if (series == name or series.startswith(name + "{")) and all(w in series for w in wanted):
            found.append(float(value))
    return found


def metric(text: str, name: str, **labels: str) -> float:
    """The sum over the series that carry these labels (0 when there is none)."""
    return sum(samples(text, name, **labels))


async def until_processing(worker: Worker) -> None:
    """Wait until the worker has handled records: a kill after this hits a worker at work."""
    async def busy():
        return metric(worker.metrics(), "cx_records_processed_total") > 0
    await wait_for(busy, timeout=60, every=0.1, message=f"{worker.name} processing")


def tally(latest: dict[str, dict], traffic: Traffic) -> tuple[int, int]:
    """Events lost and events counted twice: the `all` figure of every 1d window (rolling view and
    finals) against the independent count, for interactions and for surveys."""
    expected = {start: counts for (_, start), counts in
                expected_counts(traffic.interactions, traffic.surveys, "all").items()}
    got: dict[int, dict] = {}
    for key, doc in latest.items():
        if key == "default/all/all/1d" or key.startswith("default/all/all/1d/"):
            start = to_ms(doc["window_start"])
            if doc["final"] or start not in got:
                got[start] = doc
    lost = duplicated = 0
    for start in expected.keys() | got.keys():
        want = expected.get(start, {})
        figures = got[start]["interactions"] if start in got else {"n": 0, "response_pct": None}
        n, pct = figures["n"], figures["response_pct"]
        surveys = 0 if pct is None else round(pct * n / 100)
        for have, should in ((n, want.get("interactions", 0)), (surveys, want.get("surveys", 0))):
            lost += max(0, should - have)
            duplicated += max(0, have - should)
    return lost, duplicated


async def dead_letters(deployment: Deployment) -> dict[Source, list]:
    """The dead-letter topic, grouped by the input record each one stands for."""
    found: dict[Source, list] = defaultdict(list)
    for record in await read_all(deployment.topics["dead_letter"], kafka=deployment.kafka):
        headers = dict(record.headers)
        found[(headers["source_topic"].decode(), int(headers["source_partition"]),
               int(headers["source_offset"]))].append(record)
    return found


def unaccounted(found: dict[Source, list], expected: dict[Source, Bad], *,
                repeats: bool = False) -> list[str]:
    """Every way the dead letters differ from the expectation, one line per input record.

    ``repeats``: a dead letter may appear more than once (after a crash; README, Exactness).
    """
    problems = []
    for where, bad in expected.items():
        records = found.get(where, [])
        shown = f"{where} {(bad.value or b'')[:100]!r}"
        if not records:
            problems.append(f"{shown}: not dead-lettered (want {bad.reason})")
        elif len(records) > 1 and not repeats:
            problems.append(f"{shown}: dead-lettered {len(records)} times")
        for record in records:
            reason = dict(record.headers)["reason"].decode()
            if reason != bad.reason:
                problems.append(f"{shown}: reason {reason}, want {bad.reason}")
            if record.key != bad.key or record.value != bad.value:
                problems.append(f"{shown}: key or bytes changed")
    for where in found.keys() - expected.keys():
        record = found[where][0]
        problems.append(f"{where} {(record.value or b'')[:100]!r}: dead-lettered "
                        f"({dict(record.headers)['reason'].decode()}) but good by the test")
    return problems


async def settle_dead_letters(deployment: Deployment, expected: dict[Source, Bad], *, repeats: bool = False,
                              timeout: float = 60.0,
                              hold: float = 1.5) -> tuple[dict[Source, list], list[str]]:
    """Wait until every expected dead letter is there, then ``hold`` seconds more for any extra one."""
    deadline = time.monotonic() + timeout
    while True:
        found = await dead_letters(deployment)
        if expected.keys() <= found.keys():
            await asyncio.sleep(hold)
            found = await dead_letters(deployment)
            break
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    return found, unaccounted(found, expected, repeats=repeats)


def event_ms(event: dict) -> int:
    return to_ms(event["closed_at"] if "closed_at" in event else event["answered_at"])


def behind(arrivals: Iterable[tuple[str, int, int]], lateness_ms: int) -> list[int]:
    """For each (topic, partition, event time), in the order produced: how far it is behind the highest
    event time its topic-partition had seen before it (0 when it is ahead). The contract makes a record
    more than ``lateness_ms`` behind too late (README, Bad input); a too-late record is behind anyway,
    so the watermark is the running maximum whatever the verdicts.

    A record on a topic-partition without a watermark yet is judged by the other topic of its
    partition in a way that depends on batch boundaries; the scenarios avoid it, and this model refuses it.
    """
    watermarks: dict[tuple[str, int], int] = {}
    lags = []
    for topic, partition, at in arrivals:
        own = watermarks.get((topic, partition))
        if own is None:
            others = [wm for (t, p), wm in watermarks.items() if p == partition and t != topic]
            assert all(at >= wm - lateness_ms for wm in others), "a verdict the model cannot make"
        lags.append(0 if own is None or at >= own else own - at)
        if own is None or at > own:
            watermarks[(topic, partition)] = at
    return lags


async def read_model_differences(deployment: Deployment, redis: Any) -> tuple[bool, list[str], int]:
    """The Redis read model against Kafka: each rolling snapshot of the score topic, the same document
    under its key, and no score key besides (``redis`` is a client of the test's Redis)."""
    latest = await latest_snapshots(deployment.topics["scores"], deployment.kafka)
    rolling = {score_key(d["tenant"], d["dimension"], d["key"], d["window"]): d
               for d in latest.values() if not d["final"]}
    served = redis.mget(list(rolling)) if rolling else []
    diffs = [key for key, value in zip(rolling, served, strict=True)
             if value is None or orjson.loads(value) != rolling[key]]
    diffs += sorted({key.decode() for key in redis.scan_iter("cx:score:*")} - rolling.keys())
    return not diffs, diffs[:20], len(rolling)

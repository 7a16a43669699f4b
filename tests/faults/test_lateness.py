"""Out-of-order and late events, and producers whose clocks are off, against the per-partition watermark.

What the product promises (README, Bad input): the watermark is the highest event time counted on
each input topic-partition; a record more than CX_ALLOWED_LATENESS (1 h) behind its own
topic-partition's watermark is too late and goes to the dead letter, one by one; everything else
counts, in the windows of its own event time. The test works out each verdict itself
(``ledger.behind``) from the order in which it produced the records and the partition of each key.
"""

from __future__ import annotations

import random
import time

import orjson
import pytest

from stream_app.simulate import format_time
from tests.faults.ledger import (
    Bad,
    Entry,
    behind,
    dead_expected,
    event_ms,
    partition_for,
    records_of,
    settle_dead_letters,
    tally,
)
from tests.harness import Deployment, dumps, produce
from tests.integration.traffic import Traffic, settle, simulated
from tests.reference import to_ms

pytestmark = [pytest.mark.faults, pytest.mark.integration]

LATENESS_MS = 3_600_000  # CX_ALLOWED_LATENESS, default
SKEW_MS = 600_000  # CX_MAX_CLOCK_SKEW, default
MINUTE_MS = 60_000


def events_of(traffic: Traffic) -> list[tuple[str, dict]]:
    """The simulator's records as (topic, event), in the order it made them."""
    return [(topic, orjson.loads(value)) for topic, _, value in traffic.records]


def shifted(event: dict, ms: int) -> dict:
    """The event as a producer whose clock is ``ms`` off stamps it."""
    times = {f: format_time(to_ms(event[f]) + ms)
             for f in ("started_at", "closed_at", "answered_at") if f in event}
    return {**event, **times}


async def feed_and_judge(deployment: Deployment, start_worker, stream: list[tuple[str, dict]], figures,
                         future_after_ms: int | None = None,
                         **notes: object) -> tuple[list[int | None], dict]:
    """Produce the stream to one worker; every record the model finds too late must be in the dead
    letter with ``too_late``, every record stamped after ``future_after_ms`` with ``in_future`` (it
    never moves a watermark), every other one counted. Returns each record's lag (None for a record
    in the future) and the snapshots."""
    records = [(topic, event["interaction_id"].encode(), dumps(event)) for topic, event in stream]
    future = [future_after_ms is not None and event_ms(event) > future_after_ms for _, event in stream]
    known = iter(behind([(topic, partition_for(key, deployment.partitions), event_ms(event))
                         for (topic, key, _), (_, event), ahead in zip(records, stream, future, strict=True)
                         if not ahead], LATENESS_MS))
    lags = [None if ahead else next(known) for ahead in future]
    reasons = ["in_future" if lag is None else "too_late" if lag > LATENESS_MS else None for lag in lags]
    entries: list[Entry] = [(record, Bad(record[1], record[2], reason) if reason else None)
                            for record, reason in zip(records, reasons, strict=True)]
    counted = [event for (topic, event), reason in zip(stream, reasons, strict=True) if not reason]
    accepted = Traffic([], [e for e in counted if "closed_at" in e],
                       [e for e in counted if "answered_at" in e])
    worker = start_worker()
    sent = await produce(records_of(entries))
    assert [m.partition for m in sent] == [partition_for(key, deployment.partitions) for _, key, _ in records]
    settled = await settle(deployment, accepted, dimensions=("all", "channel", "queue"))
    found, problems = await settle_dead_letters(deployment, dead_expected(entries, sent))
    lost, duplicated = tally(settled.latest, accepted)
    figures(fed=len(records), lost=lost, duplicated=duplicated, dead_lettered=len(found),
            out_of_order_counted=sum(lag is not None and 0 < lag <= LATENESS_MS for lag in lags), **notes)
    assert settled.exact, settled.diffs
    assert not problems, problems
    assert worker.proc.poll() is None
    return lags, settled.latest


async def test_out_of_order_within_lateness_counts_and_beyond_it_is_dead_lettered_one_by_one(
        deployment, start_worker, figures):
    """Two hours of traffic shuffled in 25-minute blocks; 60 records of the first 25 minutes held back
    to the very end; and on one partition, one record exactly at the lateness limit and one 1 ms past it."""
    traffic = simulated(deployment, 3_000, seed=31, rate=0.3)
    events = events_of(traffic)
    rng = random.Random(31)
    held = set(rng.sample(range(len(events) // 5), 60))
    rest = [e for i, e in enumerate(events) if i not in held]
    stream = []
    for start in range(0, len(rest), 600):
        block = rest[start:start + 600]
        rng.shuffle(block)
        stream += block
    stream += [events[i] for i in sorted(held)]

    interactions = deployment.topics["interactions"]
    def on_zero(key: str) -> bool:
        return partition_for(key.encode(), deployment.partitions) == 0

    edges = (f"edge-{n}" for n in range(10_000) if on_zero(f"edge-{n}"))
    watermark = max(event_ms(e) for topic, e in stream
                    if topic == interactions and on_zero(e["interaction_id"]))
    template = traffic.interactions[0]
    for at in (watermark - LATENESS_MS, watermark - LATENESS_MS - 1):
        edge = next(edges)
        stream.append((interactions, {**template, "event_id": f"{edge}-e", "interaction_id": edge,
                                      "closed_at": format_time(at)}))

    lags, _ = await feed_and_judge(deployment, start_worker, stream, figures, held_back=len(held))
    assert lags[-2] == LATENESS_MS and lags[-1] == LATENESS_MS + 1, "the edge pair sits on the limit"
    assert all(lag > LATENESS_MS for lag in lags[-62:-2]), "every held-back record is beyond the lateness"
    assert sum(0 < lag <= LATENESS_MS for lag in lags) > 500, "plenty of out-of-order records that count"


def skewed(traffic: Traffic, skew_ms: dict[str, int],
           after_ms: int) -> tuple[list[tuple[str, dict]], list[str]]:
    """The events as the producers stamp them: those of the channels in ``skew_ms`` shifted, from
    ``after_ms`` of true time on (by then every input topic-partition has seen records). Also, per
    event, the channel whose clock shifted it, or "" when it is right."""
    channel_of = {ix["interaction_id"]: ix["channel"] for ix in traffic.interactions}
    stream, shifted_by = [], []
    for topic, event in events_of(traffic):
        channel = channel_of[event["interaction_id"]]
        off = channel in skew_ms and event_ms(event) >= after_ms
        stream.append((topic, shifted(event, skew_ms[channel]) if off else event))
        shifted_by.append(channel if off else "")
    return stream, shifted_by


async def test_clock_skewed_producers_ahead_within_lateness_count_and_behind_beyond_it_are_too_late(
        deployment, start_worker, figures):
    """sms stamps 20 minutes ahead, social 90 minutes behind, the other channels are right."""
    traffic = simulated(deployment, 3_000, seed=32)
    start = to_ms(traffic.interactions[0]["closed_at"])
    skews = {"sms": 20 * MINUTE_MS, "social": -90 * MINUTE_MS}
    stream, shifted_by = skewed(traffic, skews, start + 3 * MINUTE_MS)
    lags, latest = await feed_and_judge(deployment, start_worker, stream, figures, **skews)
    ahead = [lag for lag, by in zip(lags, shifted_by, strict=True) if by == "sms"]
    behind_ = [lag for lag, by in zip(lags, shifted_by, strict=True) if by == "social"]
    assert ahead and all(lag <= LATENESS_MS for lag in ahead), "20 minutes ahead: every sms event counts"
    assert behind_ and all(lag > LATENESS_MS for lag in behind_), \
        "90 minutes behind: every social one too late"
    # The rolling view follows the fastest clock: the watermark is the highest event time counted.
    newest = max(event_ms(e) for (_, e), lag in zip(stream, lags, strict=True) if lag <= LATENESS_MS)
    assert to_ms(latest["default/all/all/15m"]["window_end"]) == (newest // MINUTE_MS + 1) * MINUTE_MS
    assert newest > max(event_ms(e) for _, e in events_of(traffic)), "the newest event time is a skewed one"


async def test_producer_clock_far_ahead_makes_the_others_too_late_on_every_partition_it_writes_to(
        deployment, start_worker, figures):
    """email stamps 3 hours ahead: the watermark of each topic-partition it writes to jumps with it,
    and every right-clocked event that comes after it there is more than the lateness behind."""
    traffic = simulated(deployment, 1_500, seed=33)
    start = to_ms(traffic.interactions[0]["closed_at"])
    stream, shifted_by = skewed(traffic, {"email": 180 * MINUTE_MS}, start + 3 * MINUTE_MS)
    lags, _ = await feed_and_judge(deployment, start_worker, stream, figures, email=180 * MINUTE_MS)
    jumped: set[tuple[str, int]] = set()
    after_jump = []
    for (topic, event), lag, by in zip(stream, lags, shifted_by, strict=True):
        where = (topic, partition_for(event["interaction_id"].encode(), deployment.partitions))
        if by:
            jumped.add(where)
        elif where in jumped:
            after_jump.append(lag)
    assert len(after_jump) > 100 and all(lag > LATENESS_MS for lag in after_jump)


async def test_producer_clock_far_ahead_of_the_wall_clock_is_dead_lettered_in_future_and_harms_nobody(
        deployment, start_worker, figures):
    """The same email producer 3 hours ahead, on traffic of the last 20 minutes of true time: beyond
    CX_MAX_CLOCK_SKEW (10 min) ahead of the worker's clock its events are dead-lettered ``in_future``,
    move no watermark, and not one right-clocked event is too late."""
    now_ms = int(time.time() * 1000)
    traffic = simulated(deployment, 1_500, seed=33, start=format_time(now_ms - 20 * MINUTE_MS))
    start = to_ms(traffic.interactions[0]["closed_at"])
    stream, shifted_by = skewed(traffic, {"email": 180 * MINUTE_MS}, start + 3 * MINUTE_MS)
    lags, _ = await feed_and_judge(deployment, start_worker, stream, figures,
                                   future_after_ms=now_ms + SKEW_MS, email=180 * MINUTE_MS)
    ahead = [lag for lag, by in zip(lags, shifted_by, strict=True) if by]
    right = [lag for lag, by in zip(lags, shifted_by, strict=True) if not by]
    assert len(ahead) > 50 and all(lag is None for lag in ahead), "every shifted email event is in the future"
    assert right and all(lag is not None and lag <= LATENESS_MS for lag in right), "no one else is too late"

"""Rules judged in event time at every step boundary: the records alone decide the alert events.

The example rules over simulator traffic with a chat incident, run through the whole commit order in
memory: cut into batches of any size, or cut by crashes at any record written and replayed, the alerts
topic holds the same events (every field but ``at``, the wall clock), each exactly once.
"""

from __future__ import annotations

import asyncio
import itertools

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_app.rules import load_rules
from stream_app.simulate import generate
from tests.harness import ROOT
from tests.reference import to_ms
from tests.unit.engine.memory import START_MS, TOPICS, MemoryBroker, Run, send

RULES = load_rules(ROOT / "deploy/rules.example.yaml")
MINUTE_MS = 60_000


def incident_traffic() -> list[tuple[str, bytes, bytes]]:
    """25 minutes of a chat incident, then 20 healthy ones, in event-time order."""
    switch, end = START_MS + 25 * MINUTE_MS, START_MS + 45 * MINUTE_MS
    records = [*itertools.takewhile(lambda r: r.event_ms < switch, generate(5, None, START_MS, 2.5, "chat")),
               *itertools.takewhile(lambda r: r.event_ms < end, generate(6, None, switch, 2.5))]
    return [(r.kind, r.key, orjson.dumps(r.value)) for r in sorted(records, key=lambda r: r.event_ms)]


TRAFFIC = incident_traffic()


def alert_events(broker: MemoryBroker) -> list[dict]:
    """The alerts topic without ``at``, in a fixed order (partitions interleave as batches fall)."""
    events = [orjson.loads(r.value) for r in broker.read(TOPICS.alerts, 0, 0)]
    for event in events:
        del event["at"]
    return sorted(events, key=lambda e: (e["since"], e["rule"], e["key"], e["status"]))


def run_all(batch_records: int, crash_points: tuple[int, ...] = (), replay_batch: int = 0,
            keep_stores: bool = True) -> tuple[list[dict], int]:
    broker = MemoryBroker()
    for kind, key, value in TRAFFIC:
        send(broker, kind, key, value)
    broker.written = 0
    run = Run(broker, batch_records, rules=RULES)
    run.start(keep_stores=False)
    asyncio.run(run.through_crashes(list(crash_points), keep_stores, replay_batch or batch_records))
    return alert_events(broker), broker.written


EXPECTED, WRITTEN = run_all(400)


def test_the_incident_fires_every_chat_rule_once_and_healthy_channels_none() -> None:
    firing = [e for e in EXPECTED if e["status"] == "firing"]
    assert {e["key"] for e in firing} == {"chat"}
    assert len(firing) == len({(e["rule"], e["key"]) for e in firing}) >= 3
    effort = [e for e in EXPECTED if e["rule"] == "channel-effort"]
    assert [e["status"] for e in effort] == ["firing", "resolved"]
    assert effort[0]["alert_id"] == effort[1]["alert_id"]


def test_alerts_are_judged_on_step_boundaries_in_event_time() -> None:
    for event in EXPECTED:
        assert to_ms(event["since"]) % MINUTE_MS == 0, event["since"]  # the example windows step a minute


def test_the_same_alert_events_whatever_the_batch_size() -> None:
    for batch_records in (9, 5000):
        assert run_all(batch_records)[0] == EXPECTED, batch_records


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=3), keep_stores=st.booleans(),
       replay_batch=st.sampled_from([20, 400, 3000]))
def test_a_crash_at_any_write_then_replay_sends_the_same_alert_events_once(
        cuts: list[float], keep_stores: bool, replay_batch: int) -> None:
    points = tuple(int(cut * WRITTEN) for cut in cuts)
    assert run_all(400, points, replay_batch, keep_stores)[0] == EXPECTED

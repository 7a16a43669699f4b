"""The read model's buffer (stream_app/sinks/redis.py) without a Redis: what waits for the next write."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from stream_app.settings import Settings
from stream_app.sinks import redis as sink
from tests.samples import alert, score

NOWHERE = "redis://127.0.0.1:1/0"  # nothing listens on port 1: every write fails at once


def counter(name: str) -> float:
    return REGISTRY.get_sample_value(name, {"sink": "redis"}) or 0.0


@pytest.fixture
def model() -> sink.ReadModel:
    return sink.ReadModel(Settings(redis_url=NOWHERE))


def test_latest_rolling_snapshot_per_key_wins_and_finals_are_not_buffered(model):
    model.publish([score(n=1), score(n=2), score(key="voice", n=3), score(n=9, final=True)], [])
    assert {k: d["interactions"]["n"] for k, d in model.pending.scores.items()} == {
        "cx:score:acme:channel:chat:15m": 2, "cx:score:acme:channel:voice:15m": 3}


def test_history_points_only_for_all_and_channel_one_per_window_end(model):
    model.publish([score(dimension="all", key="all", n=1), score(dimension="agent", key="agent-1"),
                   score(end="2026-11-20T10:16:00Z", n=4), score(end="2026-11-20T10:16:00Z", n=5)], [])
    assert set(model.pending.points) == {"cx:history:acme:all:all:15m", "cx:history:acme:channel:chat:15m"}
    (point,) = model.pending.points["cx:history:acme:channel:chat:15m"].values()
    assert point == {"window_end": "2026-11-20T10:16:00Z", "ces_mean": 5.5, "ces_net_ease": None,
                     "csat_pct": None, "nps_score": None, "interactions_n": 5}


def test_history_buffer_keeps_two_hours_of_event_time(model):
    model.publish([score(end=f"2026-11-20T{h:02d}:00:00Z") for h in (8, 9, 10, 11)], [])
    ends = sorted(model.pending.points["cx:history:acme:channel:chat:15m"])
    assert [e - ends[-1] for e in ends] == [-2 * 3600_000, -3600_000, 0]


def test_alert_buffer_drops_the_oldest_events_beyond_its_bound_and_counts_them(model, monkeypatch):
    monkeypatch.setattr(sink, "ALERT_BUFFER", 3)
    before = counter("cx_sink_dropped_total")
    model.publish([], [alert(f"a{i}") for i in range(5)])
    assert [e["alert_id"] for e in model.pending.events] == ["a2", "a3", "a4"]
    assert counter("cx_sink_dropped_total") - before == 2
    assert set(model.pending.active) == {f"a{i}" for i in range(5)}, "the active set is never dropped"


async def test_failed_write_keeps_everything_and_newer_documents_win(model):
    before = counter("cx_sink_errors_total")
    model.publish([score(n=1)], [alert("a1")])
    assert await model.flush() is False
    model.publish([score(n=2)], [alert("a1", status="resolved")])
    assert await model.flush() is False
    assert counter("cx_sink_errors_total") - before == 2
    assert model.down
    assert model.pending.scores["cx:score:acme:channel:chat:15m"]["interactions"]["n"] == 2
    assert [e["status"] for e in model.pending.events] == ["firing", "resolved"]
    assert model.pending.active["a1"]["status"] == "resolved"
    await model.client.aclose()

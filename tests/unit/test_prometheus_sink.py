"""Score gauges and alert episodes from snapshots and alert events (stream_app/sinks/prometheus.py).

Metrics are process-wide, so every test uses a tenant or rule name of its own.
"""

from __future__ import annotations

import uuid

import orjson
from prometheus_client import REGISTRY

from stream_app import scoring, snapshot
from stream_app.engine.codec import scope_partition
from stream_app.sinks import prometheus

PARTITIONS = 8


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def doc(tenant: str, dimension: str = "channel", key: str = "chat", window: str = "15m", final: bool = False,
        stats: list[float] | None = None) -> dict:
    return snapshot.build(tenant, dimension, key, window, 0, 900_000, final,
                          stats if stats is not None else scoring.empty(), 1_000)


def filled() -> list[float]:
    """Two CES answers (one easy, one difficult), one CSAT, one NPS promoter, four interactions."""
    stats = scoring.empty()
    stats[scoring.CES_N], stats[scoring.CES_SUM] = 2, (7 + 1) * scoring.UNIT
    stats[scoring.CES_EASY], stats[scoring.CES_DIFFICULT] = 1, 1
    stats[scoring.CSAT_N], stats[scoring.CSAT_SATISFIED], stats[scoring.CSAT_SUM] = 1, 1, 5 * scoring.UNIT
    stats[scoring.NPS_N], stats[scoring.NPS_PROMOTERS] = 1, 1
    stats[scoring.IX_N], stats[scoring.IX_ABANDONED] = 4, 1
    stats[scoring.IX_HANDLE_N], stats[scoring.IX_HANDLE_MS] = 3, 900_000
    stats[scoring.IX_WAIT_N], stats[scoring.IX_WAIT_MS] = 3, 30_000
    stats[scoring.IX_FCR_N], stats[scoring.IX_FCR_RESOLVED] = 2, 1
    stats[scoring.IX_SL_N], stats[scoring.IX_SL_MET] = 4, 3
    stats[scoring.SURVEYS] = 3
    return stats


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_rolling_channel_snapshot_sets_every_score_gauge():
    tenant = unique("t")
    prometheus.observe([doc(tenant, stats=filled())], [])
    labels = {"tenant": tenant, "channel": "chat", "window": "15m"}
    assert value("cx_ces_mean", **labels) == 4.0
    assert value("cx_ces_net_ease", **labels) == 0.0
    assert value("cx_csat_satisfied_ratio", **labels) == 1.0
    assert value("cx_nps_score", **labels) == 100.0
    assert value("cx_survey_responses", **labels) == 3.0
    assert value("cx_interactions", **labels) == 4.0
    assert value("cx_abandoned_ratio", **labels) == 0.25
    assert value("cx_handle_seconds_mean", **labels) == 300.0
    assert value("cx_wait_seconds_mean", **labels) == 10.0
    assert value("cx_fcr_ratio", **labels) == 0.5
    assert value("cx_service_level_ratio", **labels) == 0.75


def test_dimension_all_is_channel_all_and_other_dimensions_and_finals_are_not_exported():
    tenant = unique("t")
    prometheus.observe([doc(tenant, "all", "all", stats=filled()),
                        doc(tenant, "queue", "chat-support", stats=filled()),
                        doc(tenant, "agent", "agent-1", stats=filled()),
                        doc(tenant, "channel", "voice", final=True, stats=filled())], [])
    assert value("cx_interactions", tenant=tenant, channel="all", window="15m") == 4.0
    exported = {s.labels.get("channel") for m in REGISTRY.collect() if m.name == "cx_interactions"
                for s in m.samples if s.labels.get("tenant") == tenant}
    assert exported == {"all"}


def test_null_figure_removes_its_series_so_dashboards_show_a_gap():
    tenant = unique("t")
    labels = {"tenant": tenant, "channel": "chat", "window": "1h"}
    prometheus.observe([doc(tenant, window="1h", stats=filled())], [])
    assert value("cx_ces_mean", **labels) == 4.0
    prometheus.observe([doc(tenant, window="1h")], [])  # the window moved on: no data in it
    assert value("cx_ces_mean", **labels) is None
    assert value("cx_survey_responses", **labels) is None  # no interactions: unknown
    assert value("cx_interactions", **labels) == 0.0  # a count of nothing is zero, not unknown


def alert(rule: str, alert_id: str, status: str, key: str = "chat") -> dict:
    return {"alert_id": alert_id, "rule": rule, "status": status, "severity": "critical",
            "tenant": "default", "dimension": "channel", "key": key}


def test_alert_episodes_count_once_per_alert_id_and_go_when_resolved():
    rule = unique("rule")
    firing = lambda: value("cx_alerts_firing", rule=rule, severity="critical")  # noqa: E731
    prometheus.declare_rules([(rule, "critical")])
    assert firing() == 0.0
    repeated = [alert(rule, "a1", "firing"), alert(rule, "a1", "firing"), alert(rule, "a2", "firing")]
    prometheus.observe([], repeated)
    assert firing() == 2.0
    prometheus.observe([], [alert(rule, "a1", "resolved"), alert(rule, "a1", "resolved")])
    assert firing() == 1.0
    prometheus.observe([], [alert(rule, "unknown", "resolved")])  # fired on another worker
    assert firing() == 1.0


def owner(tenant: str, dimension: str, key: str) -> int:
    return scope_partition(orjson.dumps([tenant, dimension, key]), PARTITIONS)


def test_scopes_of_partitions_no_longer_owned_are_forgotten():
    tenant, rule = unique("t"), unique("rule")
    keys = [f"ch{i}" for i in range(40)]
    prometheus.observe([doc(tenant, key=k, stats=filled()) for k in keys],
                       [alert(rule, f"id-{k}", "firing", key=k) for k in keys])
    owned = {0, 1, 2, 3}
    prometheus.forget_unowned(owned, PARTITIONS)
    kept = [k for k in keys if owner(tenant, "channel", k) in owned]
    assert 0 < len(kept) < len(keys)
    for k in keys:
        exported = value("cx_interactions", tenant=tenant, channel=k, window="15m")
        assert exported == (4.0 if k in kept else None), k
    assert value("cx_alerts_firing", rule=rule, severity="critical") == len(kept)

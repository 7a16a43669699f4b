"""Prometheus metrics: rolling scores, alerts firing, and the pipeline's own health (README, Metrics).

Scores are exported for the dimensions ``all`` and ``channel`` only (label ``channel``, ``all`` for
the whole): queue, agent and touchpoint would multiply series without bound; the JSON API and Redis
serve those. A figure that is null (no data in the window) removes its series, so Grafana draws a
gap, not a zero. A worker exports only the scopes whose rollup partition it owns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from typing import Any

import faust
from faust.types import TP
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from stream_app.engine.codec import scope_key, scope_partition
from stream_app.faust_bridge import BatchApp, consumer_lag

Scope = tuple[str, str, str]  # tenant, dimension, key

EVENTS = Counter("cx_events",
                 "Input records by topic and outcome (ok, invalid, duplicate, too_late, in_future).",
                 ["topic", "outcome"])
BATCH_SECONDS = Histogram("cx_batch_processing_seconds",
                          "Time to process one fetched batch, writes included.",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
RECORDS = Counter("cx_records_processed", "Records handed to the batch path (inputs and partials).")
SINK_ERRORS = Counter("cx_sink_errors", "Failed writes to a serving copy (Redis), by sink.", ["sink"])
SINK_DROPPED = Counter("cx_sink_dropped",
                       "Events a serving copy dropped: its buffer overflowed while it was down.", ["sink"])
# At zero from the start, so that rate() in dashboards and alert rules finds the series.
SINK_ERRORS.labels(sink="redis")
SINK_DROPPED.labels(sink="redis")
RECOVERY_SECONDS = Gauge("cx_table_recovery_seconds",
                         "Duration of the last table recovery: partition assignment to tables recovered.")
ALERTS_FIRING = Gauge("cx_alerts_firing", "Alert episodes firing (firing event seen, resolved not yet).",
                      ["rule", "severity"])
WORKER = Info("cx_worker", "The worker's build and consumer group.")

SCORE_DIMENSIONS = frozenset({"all", "channel"})
SCORE_LABELS = ("tenant", "channel", "window")


def _ratio(pct: float | None) -> float | None:
    return None if pct is None else pct / 100.0


def _survey_responses(doc: dict) -> float | None:
    """Survey-answered events in the window: response_pct × interactions / 100.

    The snapshot carries the count only through response_pct (4 decimals), which makes this exact
    below a million interactions per window; null where the scope has no interactions.
    """
    pct, n = doc["interactions"]["response_pct"], doc["interactions"]["n"]
    return None if pct is None else float(round(pct * n / 100.0))


def _score(name: str, documentation: str) -> Gauge:
    return Gauge(name, f"{documentation}, rolling window.", SCORE_LABELS)


SCORES: tuple[tuple[Gauge, Callable[[dict], float | None]], ...] = (
    (_score("cx_ces_mean", "CES mean on the 1-7 ease scale (7 = easiest)"), lambda d: d["ces"]["mean"]),
    (_score("cx_ces_net_ease", "CES net ease: % easy minus % difficult (-100..100)"),
     lambda d: d["ces"]["net_ease"]),
    (_score("cx_csat_satisfied_ratio", "Share of CSAT answers in the top two boxes (0-1)"),
     lambda d: _ratio(d["csat"]["pct"])),
    (_score("cx_nps_score", "NPS: % promoters minus % detractors (-100..100)"), lambda d: d["nps"]["score"]),
    (_score("cx_survey_responses", "Survey-answered events (absent where the scope has no interactions)"),
     _survey_responses),
    (_score("cx_interactions", "Closed interactions"), lambda d: float(d["interactions"]["n"])),
    (_score("cx_abandoned_ratio", "Share of interactions abandoned (0-1)"),
     lambda d: _ratio(d["interactions"]["abandoned_pct"])),
    (_score("cx_handle_seconds_mean", "Mean handle time (AHT) of answered interactions"),
     lambda d: d["interactions"]["aht_seconds"]),
    (_score("cx_wait_seconds_mean", "Mean wait (ASA) of answered interactions"),
     lambda d: d["interactions"]["asa_seconds"]),
    (_score("cx_fcr_ratio", "Resolved on first contact among answered interactions that say (0-1)"),
     lambda d: _ratio(d["interactions"]["fcr_pct"])),
    (_score("cx_service_level_ratio",
            "Answered within CX_SERVICE_LEVEL_SECONDS among interactions with a wait (0-1)"),
     lambda d: _ratio(d["interactions"]["service_level_pct"])),
    (_score("cx_survey_delay_p90_seconds",
            "90th percentile of answered_at - closed_at over surveys joined to their interaction"),
     lambda d: d["surveys"]["delay_p90_seconds"]),
)

# What is exported, with the scope it came from, so that scopes moving to another worker can be dropped.
_score_series: dict[tuple[str, str, str], Scope] = {}
_firing: dict[str, tuple[str, str, Scope]] = {}  # alert_id -> rule, severity, scope


def _discard(gauge: Gauge, labels: tuple[str, ...]) -> None:
    try:
        gauge.remove(*labels)
    except KeyError:
        pass


def observe(snapshots: list[dict], alerts: list[dict]) -> None:
    """Pipeline listener: rolling snapshots of ``all`` and ``channel`` to gauges, alert episodes counted."""
    for doc in snapshots:
        if doc["final"] or doc["dimension"] not in SCORE_DIMENSIONS:
            continue
        labels = (doc["tenant"], doc["key"], doc["window"])  # the key of dimension `all` is `all`
        _score_series[labels] = (doc["tenant"], doc["dimension"], doc["key"])
        for gauge, value_of in SCORES:
            value = value_of(doc)
            if value is None:
                _discard(gauge, labels)
            else:
                gauge.labels(*labels).set(value)
    for event in alerts:
        alert_id = event["alert_id"]
        if event["status"] == "firing" and alert_id not in _firing:
            _firing[alert_id] = (event["rule"], event["severity"],
                                 (event["tenant"], event["dimension"], event["key"]))
            ALERTS_FIRING.labels(event["rule"], event["severity"]).inc()
        elif event["status"] == "resolved" and alert_id in _firing:
            rule, severity, _ = _firing.pop(alert_id)
            ALERTS_FIRING.labels(rule, severity).dec()


def declare_rules(rules: Iterable[tuple[str, str]]) -> None:
    """Start ``cx_alerts_firing`` at zero for each (rule, severity), so a quiet rule reads 0, not no data."""
    for rule, severity in rules:
        ALERTS_FIRING.labels(rule, severity)


def forget_unowned(owned: set[int], partitions: int) -> None:
    """Drop scores and alert episodes of scopes whose rollup partition this worker no longer owns.

    Their new owner exports them; a stale copy here would show twice in every sum over workers.
    """
    def unowned(scope: Scope) -> bool:
        return scope_partition(scope_key(scope), partitions) not in owned

    for labels, scope in list(_score_series.items()):
        if unowned(scope):
            del _score_series[labels]
            for gauge, _ in SCORES:
                _discard(gauge, labels)
    for alert_id, (rule, severity, scope) in list(_firing.items()):
        if unowned(scope):
            del _firing[alert_id]
            ALERTS_FIRING.labels(rule, severity).dec()


class PipelineHealth(Collector):
    """Consumer lag and recovery state, read from the live app at scrape time: nothing runs in between."""

    def __init__(self, app: BatchApp, ready: Callable[[], bool], partials_topic: str,
                 partitions: int) -> None:
        self.app = app
        self.ready = ready
        self.partials_topic = partials_topic
        self.partitions = partitions
        self.assigned_at: float | None = None

    def on_assigned(self, _sender: Any, /, *args: Any, **_: Any) -> None:
        """Faust signal: a new assignment starts table recovery and may move scopes away.

        Faust sends the assignment (a set of TP) as the one argument after the sender; the
        signature is the one mode's signal handlers have, so the assignment is unpacked here."""
        assigned: set[TP] = args[0]
        self.assigned_at = time.monotonic()
        forget_unowned({tp.partition for tp in assigned if tp.topic == self.partials_topic}, self.partitions)

    def on_recovered(self, *_: Any, **__: Any) -> None:
        """Faust signal: tables hold the assignment's state."""
        if self.assigned_at is not None:
            RECOVERY_SECONDS.set(time.monotonic() - self.assigned_at)
            self.assigned_at = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily("cx_consumer_lag_records",
                                "Records not yet processed: log end minus read offset, by partition.",
                                labels=["topic", "partition"])
        for tp, records in sorted(consumer_lag(self.app).items()):
            lag.add_metric([tp.topic, str(tp.partition)], records)
        yield lag
        yield GaugeMetricFamily("cx_table_recovered",
                                "1 when the tables hold the current assignment's state (as /readyz), else 0.",
                                value=1.0 if self.ready() else 0.0)


def register_health(health: PipelineHealth, app_id: str) -> None:
    """Register the scrape-time collector and the worker's info (once per process, like all metrics)."""
    REGISTRY.register(health)
    WORKER.info({"version": metadata.version("cx-engine"), "faust_version": faust.__version__,
                 "app_id": app_id})


def record_batch(outcomes: dict[tuple[str, str], int], records: int, seconds: float) -> None:
    for (topic, outcome), count in outcomes.items():
        EVENTS.labels(topic=topic, outcome=outcome).inc(count)
    RECORDS.inc(records)
    BATCH_SECONDS.observe(seconds)


def record_sink_error(sink: str) -> None:
    SINK_ERRORS.labels(sink=sink).inc()


def record_sink_dropped(sink: str, count: int) -> None:
    SINK_DROPPED.labels(sink=sink).inc(count)


# aiohttp takes the charset separately, so the text format's type is given without it.
CONTENT_TYPE = "text/plain; version=0.0.4"


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE

"""Contract documents for read-model tests: score snapshots and alert events, built like the worker's."""

from __future__ import annotations

from stream_app import scoring, snapshot
from tests.reference import to_ms

MINUTE_MS = 60_000


def score(tenant: str = "acme", dimension: str = "channel", key: str = "chat", window: str = "15m",
          end: str = "2026-11-20T10:15:00Z", n: int = 10, ces_mean: float | None = 5.5,
          final: bool = False) -> dict:
    end_ms = to_ms(end)
    doc = snapshot.build(tenant, dimension, key, window, end_ms - 15 * MINUTE_MS, end_ms, final,
                         scoring.empty(), end_ms)
    doc["interactions"]["n"] = n
    doc["ces"].update({"n": n // 2, "mean": ces_mean})
    return doc


def alert(alert_id: str = "a1", status: str = "firing", tenant: str = "acme", key: str = "chat",
          rule: str = "chat-effort", severity: str = "critical") -> dict:
    return {"alert_id": alert_id, "rule": rule, "status": status, "severity": severity, "tenant": tenant,
            "dimension": "channel", "key": key, "window": "15m", "metric": "ces.net_ease", "value": 12.0,
            "threshold": 20.0, "n": 34, "ci95": [1.0, 23.0], "since": "2026-11-20T10:05:00Z",
            "at": "2026-11-20T10:05:00Z", "message": f"{key}: net ease 12.0 below 20.0"}

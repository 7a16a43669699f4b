"""The score snapshot document of the contract, from a window's merged statistics."""

from __future__ import annotations

from datetime import UTC, datetime

from stream_app import scoring
from stream_app.keys import kafka_key


def rfc3339(ms: int) -> str:
    """UTC with a ``Z``; milliseconds only when there are any, so window edges read cleanly."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if ms % 1000:
        text += f".{ms % 1000:03d}"
    return text + "Z"


def rolling_key(tenant: str, dimension: str, key: str, window: str) -> str:
    """The Kafka key of a scope's rolling snapshot."""
    return kafka_key(tenant, dimension, key, window)



def build(tenant: str, dimension: str, key: str, window: str, start_ms: int, end_ms: int,
          final: bool, stats: list[float], now_ms: int) -> dict:
    document = {
        "tenant": tenant, "dimension": dimension, "key": key, "window": window,
        "window_start": rfc3339(start_ms), "window_end": rfc3339(end_ms),
        "final": final, "updated_at": rfc3339(now_ms),
    }
    document.update(scoring.score_groups(stats))
    return document

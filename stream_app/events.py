"""The input contract as typed values: what validation hands to the rest of the worker.

Validation (``stream_app.contract``) turns raw Kafka bytes into these, once, at the edge;
everything downstream trusts them. Times are integer milliseconds since the epoch (UTC) so
that window edges are exact. Named tuples, not frozen dataclasses: as immutable and typed, and
built five times faster, which counts at one per record.
"""

from __future__ import annotations

from typing import NamedTuple

METRICS = ("ces", "csat", "nps")


class Answer(NamedTuple):
    """One validated survey answer; scale defaults are already filled in."""

    metric: str  # "ces" | "csat" | "nps"
    value: float
    scale_min: int
    scale_max: int
    higher_is_easier: bool = True  # ces only


class Interaction(NamedTuple):
    """A validated interaction-closed event (customer_id is dropped at the edge)."""

    event_id: str
    interaction_id: str
    tenant: str
    channel: str
    queue: str | None
    agent_id: str | None
    touchpoint: str | None
    closed_at_ms: int
    wait_seconds: float | None
    handle_seconds: float | None
    transfers: int
    abandoned: bool
    resolved: bool | None


class Survey(NamedTuple):
    """A validated survey-answered event (comment and customer data are dropped at the edge)."""

    event_id: str
    interaction_id: str | None
    tenant: str
    channel: str | None
    queue: str | None
    agent_id: str | None
    touchpoint: str | None
    answered_at_ms: int
    answers: tuple[Answer, ...]

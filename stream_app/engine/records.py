"""The engine's typed state and wire records, shared by the intake and rollup stages.

All are msgspec Structs encoded as arrays (``array_like``), so a stored record carries no field
names and decodes straight back into the type. Times are integer milliseconds since the epoch;
offsets are Kafka offsets of the input record that caused a change.

A *trigger* names one input record as a single integer, ``offset * 2 + kind`` (kind 0 for an
interaction, 1 for a survey): every effect on the windows is attributed to exactly one trigger.
"""

from __future__ import annotations

import msgspec

INTERACTION, SURVEY = 0, 1  # input kinds, in trigger order
STATS_DTYPE = "<f8"  # a bucket's statistics as stored and sent

Scope = tuple[str, str, str]  # (tenant, dimension, key)
Dims = tuple[str | None, str | None, str | None, str | None]  # channel, queue, agent, touchpoint
FullDims = tuple[str, str, str, str]
Sparse = tuple[tuple[int, float], ...]  # (index, value) pairs of a stats vector (stream_app.scoring)


def trigger_of(offset: int, kind: int) -> int:
    return offset * 2 + kind


class InteractionRef(msgspec.Struct, array_like=True, gc=False):
    """The first interaction of a join entry: what a survey takes its attributes and delay from."""

    trigger: int
    dims: Dims
    closed_ms: int | None = None  # None in entries stored before survey delay was counted


class SurveyRef(msgspec.Struct, array_like=True, gc=False):
    """A survey kept in its interaction's entry, so that its effects can be derived again.

    ``joined`` is the trigger that decided its attributes: its own when it arrived complete or
    after its interaction, the interaction's when that came later and moved it, None while it
    waits (it then counts under ``unknown`` for what it lacks). ``met`` is the trigger that brought
    it together with its interaction, which counts its delay: its own, or the interaction's.
    """

    trigger: int
    joined: int | None
    tenant: str
    dims: Dims
    event_ms: int
    contribution: Sparse
    met: int | None = None


class JoinEntry(msgspec.Struct, array_like=True, gc=False):
    """Everything known under one join key (an interaction id): deduplication and the join."""

    last_ms: int  # the latest event time seen under this key: it expires a retention after
    seen: dict[str, int]  # event_id -> the trigger that first brought it
    interaction: InteractionRef | None = None
    surveys: list[SurveyRef] = msgspec.field(default_factory=list)


class Bucket(msgspec.Struct, array_like=True, gc=False):
    """One scope's statistics over one time bucket, from one input partition.

    ``versions`` holds, per input kind, the highest offset whose effects are in ``stats``: a
    replayed record at or below it changes nothing. ``stats`` is the vector of
    ``stream_app.scoring`` as little-endian doubles (``STATS_DTYPE``): read without a copy into
    numpy, and a fifth of the memory of a list of floats.
    """

    versions: list[int]
    stats: bytes


class IntakeMeta(msgspec.Struct, array_like=True, gc=False):
    """An intake partition's event-time position."""

    watermarks: dict[int, int]  # kind -> highest event time counted
    sealed_ms: int | None  # buckets ending at or before this can no longer change
    # Buckets ending at or before this are gone (expiry lags sealing by one batch, so that a batch's
    # own buckets reach the rollup, also when it is replayed); None in metas of earlier builds.
    expired_ms: int | None = None


class BucketUpdate(msgspec.Struct, array_like=True, gc=False):
    width_ms: int
    start_ms: int
    bucket: Bucket


class Partial(msgspec.Struct, array_like=True, gc=False):
    """The whole state of a scope's changed buckets, from one input partition: latest wins."""

    source: int
    updates: list[BucketUpdate]


class Watermark(msgspec.Struct, array_like=True, gc=False):
    """An intake partition's position, broadcast to every rollup partition."""

    source: int
    closing_ms: int  # the lagging kind's watermark: what may close windows
    high_ms: int  # the highest event time: what the rolling view follows
    wall_ms: int  # when it was sent: an input partition silent for the idle timeout stops holding windows


class SourcePosition(msgspec.Struct, array_like=True, gc=False):
    closing_ms: int
    wall_ms: int
    high_ms: int


class RollupMeta(msgspec.Struct, array_like=True, gc=False):
    positions: dict[int, SourcePosition] = msgspec.field(default_factory=dict)
    frontier: dict[str, int] = msgspec.field(default_factory=dict)  # window -> end of the last final
    judged: dict[str, int] = msgspec.field(default_factory=dict)  # window -> the last step its rules judged


class BucketParts(msgspec.Struct, array_like=True, gc=False):
    """A rollup bucket: the latest state of it from each input partition."""

    parts: dict[int, Bucket]

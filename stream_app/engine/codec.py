"""Stored and wire forms of the engine's records, and the keys they live under.

One place for every byte layout: a stage never builds a key or encodes a value by hand. Values
are MessagePack arrays of the Structs in ``records``; keys start with one byte naming the kind.
"""

from __future__ import annotations

import zlib
from typing import Any

import msgspec
import numpy as np

from stream_app import scoring
from stream_app.engine.records import (
    STATS_DTYPE,
    Bucket,
    BucketParts,
    IntakeMeta,
    JoinEntry,
    Partial,
    RollupMeta,
    Scope,
    Watermark,
)

META = b"m"
ADMITTED = b"k"  # intake: the keys of one (tenant, attribute) admitted on this partition
JOIN = b"j"
BUCKET = b"b"
ALERT = b"a"  # rollup: an alert state machine, per rule and scope
UNSENT = b"u"  # rollup: an alert event decided and recorded, its sending not yet confirmed
WATERMARK_KEY = b"~wm"  # partials topic: the key of a Watermark record

_msgpack = msgspec.msgpack.Encoder()
encode = _msgpack.encode
_json = msgspec.json.Encoder()


def stats_array(packed: bytes) -> np.ndarray:
    """A bucket's packed statistics as a read-only vector of ``scoring.STATS_LEN``. A shorter vector
    was stored by a build with fewer statistics (new ones are appended): the rest are zeros."""
    stats = np.frombuffer(packed, dtype=STATS_DTYPE)
    if len(stats) < scoring.STATS_LEN:
        stats = np.concatenate((stats, np.zeros(scoring.STATS_LEN - len(stats))))
    return stats


decode_join = msgspec.msgpack.Decoder(JoinEntry).decode
decode_bucket = msgspec.msgpack.Decoder(Bucket).decode
decode_intake_meta = msgspec.msgpack.Decoder(IntakeMeta).decode
decode_rollup_meta = msgspec.msgpack.Decoder(RollupMeta).decode
decode_parts = msgspec.msgpack.Decoder(BucketParts).decode
decode_partial = msgspec.msgpack.Decoder(Partial).decode
decode_watermark = msgspec.msgpack.Decoder(Watermark).decode
decode_admitted = msgspec.msgpack.Decoder(list[str]).decode
_decode_bucket_id = msgspec.msgpack.Decoder(tuple[str, str, str, int, int]).decode
_decode_pair = msgspec.msgpack.Decoder(tuple[str, int]).decode
decode_document = msgspec.json.Decoder(dict[str, Any]).decode


def encode_document(document: dict[str, Any]) -> bytes:
    """A JSON document as published (snapshots, alert events) or kept (alert states)."""
    return _json.encode(document)


def join_key(key: str) -> bytes:
    return JOIN + key.encode()


def bucket_key(scope: Scope, width_ms: int, start_ms: int) -> bytes:
    return BUCKET + encode((*scope, width_ms, start_ms))


def parse_bucket_key(key: bytes) -> tuple[Scope, int, int]:
    tenant, dimension, value, width, start = _decode_bucket_id(key[1:])
    return (tenant, dimension, value), width, start


def admitted_key(tenant: str, attribute: int) -> bytes:
    return ADMITTED + encode((tenant, attribute))


def parse_admitted_key(key: bytes) -> tuple[str, int]:
    return _decode_pair(key[1:])


def alert_state_key(state_key: str) -> bytes:
    return ALERT + state_key.encode()


def unsent_key(event: dict[str, Any]) -> bytes:
    """Where an alert event waits in the rollup table until it is confirmed sent."""
    return UNSENT + f"{event['alert_id']}/{event['status']}".encode()


def scope_key(scope: Scope) -> bytes:
    """A scope's key on the partials topic (JSON, so that it reads in any Kafka tool)."""
    return _json.encode(scope)


def parse_scope_key(key: bytes) -> Scope:
    tenant, dimension, value = msgspec.json.decode(key, type=tuple[str, str, str])
    return tenant, dimension, value


def scope_partition(key: bytes, partitions: int) -> int:
    """Which rollup partition owns a scope: stable across processes and restarts."""
    return zlib.crc32(key) % partitions

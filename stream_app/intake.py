"""Stage one, per input partition: validate, deduplicate, join, judge lateness, fill time buckets.

Runs on the partitions of the two co-partitioned input topics. Its state (join entries, time
buckets, the watermark) lives in one table partition; after each batch it sends, per touched
bucket, the bucket's whole state to the rollup stage, which merges the input partitions.

Exactness: each bucket remembers, per input topic, the highest offset it has applied; a replayed
record changes only buckets that have not seen it (README, Exactness).
"""

from __future__ import annotations

import heapq
import math
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from stream_app import join, scoring
from stream_app.contract import decode_interaction, decode_survey
from stream_app.errors import InvalidEvent
from stream_app.events import Survey
from stream_app.settings import Settings
from stream_app.sinks.kafka import Outbox
from stream_app.state import PartitionState, iter_partition
from stream_app.windows import bucket_widths

META = b"m"
JOIN = b"j"
BUCKET = b"b"
KEYS = b"k"
OTHER = "other"
WATERMARK_KEY = b"~wm"
ATTR_INDEX = {attr: i for i, attr in enumerate(join.ATTRS)}


def _sparse(vector: list[float]) -> list[list[float]]:
    return [[i, v] for i, v in enumerate(vector) if v]


def survey_contribution(survey: Survey) -> list[list[float]]:
    vector = scoring.empty()
    scoring.add_survey(vector, survey.answers)
    return _sparse(vector)


def scope_partition(scope_key: bytes, partitions: int) -> int:
    """Which rollup partition owns a scope: stable across processes and restarts."""
    return zlib.crc32(scope_key) % partitions


@dataclass(slots=True)
class Outcomes:
    """What happened to each input record, for the ``cx_events_total`` counter."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, topic: str, outcome: str) -> None:
        self.counts[(topic, outcome)] = self.counts.get((topic, outcome), 0) + 1


@dataclass(slots=True)
class PartitionMemory:
    """What a partition keeps in memory between batches; rebuilt from the table after a rebalance."""

    watermarks: dict[str, int]  # per input topic of this partition ("i", "s"): highest event time counted
    sealed_ms: int | None  # buckets ending at or before this can no longer change
    join_expiry: list[tuple[int, bytes]]
    join_keys: set[bytes]  # join entries in the table: a key not here needs no lookup
    bucket_expiry: list[tuple[int, bytes]]
    bucket_keys: set[bytes]  # likewise for buckets
    replay_upto: list[int]  # per kind: offsets at or below may already be in some bucket
    keys: dict[tuple[str, int], set[str]]  # (tenant, attribute index) -> keys admitted on this partition


class Intake:
    def __init__(self, settings: Settings, table: Any, topics: dict[str, str]) -> None:
        self.settings = settings
        self.table = table
        self.topic_kind = topics  # topic name -> "i" | "s"
        self.widths = bucket_widths(settings.window_specs)
        self.grid_ms = math.gcd(*self.widths)  # bucket starts depend only on the time on this grid
        self.dimensions = settings.dimension_names
        self.memory: dict[int, PartitionMemory] = {}
        self.join_retention_ms = settings.join_retention_ms
        self.max_keys = settings.max_keys_per_dimension

    def forget(self) -> None:
        """Drop in-memory state (after a rebalance); the table is the truth."""
        self.memory.clear()

    def _load(self, partition: int) -> PartitionMemory:
        meta = None
        join_expiry: list[tuple[int, bytes]] = []
        join_keys: set[bytes] = set()
        keys: dict[tuple[str, int], set[str]] = {}
        bucket_keys: set[bytes] = set()
        bucket_expiry: list[tuple[int, bytes]] = []
        replay_upto = [-1, -1]
        retention = self.settings.join_retention_ms
        for key, value in iter_partition(self.table, partition):
            prefix = key[:1]
            if prefix == JOIN:
                join_expiry.append((value["last"] + retention, key))
                join_keys.add(key)
            elif prefix == BUCKET:
                ident = value["id"]
                bucket_expiry.append((ident[4] + ident[3], key))
                bucket_keys.add(key)
                replay_upto[0] = max(replay_upto[0], value["v"][0])
                replay_upto[1] = max(replay_upto[1], value["v"][1])
            elif key == META:
                meta = value
            elif prefix == KEYS:
                tenant, attr = orjson.loads(key[1:])
                keys[(tenant, attr)] = set(value)
        heapq.heapify(join_expiry)
        heapq.heapify(bucket_expiry)
        memory = PartitionMemory(
            dict(meta["wm"]) if meta else {}, meta["sealed"] if meta else None,
            join_expiry, join_keys, bucket_expiry, bucket_keys, replay_upto, keys,
        )
        self.memory[partition] = memory
        return memory

    def process(self, partition: int, records: list[tuple[str, Any]], changelog: Outbox,
                out: Outbox, outcomes: Outcomes) -> None:
        """Apply one batch of one partition: ``records`` are (topic, message) in processing order.

        Changelog records go to ``changelog`` (meta, then join entries, then buckets: that order
        is what keeps a crash-recovered prefix consistent); partials, watermarks and dead letters
        go to ``out``, which the caller sends only once ``changelog`` is on the broker.
        """
        memory = self.memory.get(partition) or self._load(partition)
        state = PartitionState(self.table, partition, changelog)
        settings = self.settings
        lateness = settings.allowed_lateness_ms
        watermarks = memory.watermarks
        sealed = memory.sealed_ms
        entries: dict[bytes, dict] = {}
        changed: set[bytes] = set()  # join entries a new record altered (replays and duplicates do not)
        groups: dict[tuple, list] = {}
        widths = self.widths
        sl_seconds = settings.service_level_seconds

        grown: set[tuple[str, int]] = set()  # (tenant, attribute) whose admitted keys grew
        scopes_of: dict[tuple, list[tuple[str, str, str]]] = {}  # (tenant, dims, only) -> scopes
        starts_of: dict[int, tuple[int, ...]] = {}  # event time on the finest grid -> bucket starts
        grid = self.grid_ms
        known = memory.join_keys
        replay_upto = memory.replay_upto
        for topic, message in records:
            kind = self.topic_kind[topic]
            offset = message.offset
            try:
                event = (decode_interaction if kind == "i" else decode_survey)(
                    message.value, max_bytes=settings.max_record_bytes)
            except InvalidEvent as exc:
                self._dead_letter(out, message, exc.reason, exc.detail)
                outcomes.add(topic, "invalid")
                continue
            if kind == "i":
                join_key, event_ms = event.interaction_id, event.closed_at_ms
            else:
                join_key = event.interaction_id or "\x00" + event.event_id
                event_ms = event.answered_at_ms
            key = JOIN + join_key.encode()
            entry = entries.get(key)
            if entry is None:
                entry = (state.get(key) if key in known else None) or join.new_entry()
                entries[key] = entry
            trigger = f"{kind}:{offset}"
            seen = entry["ids"].get(event.event_id)
            if seen is not None and seen != trigger:
                outcomes.add(topic, "duplicate")
                continue
            raw_dims = (event.channel, event.queue, event.agent_id, event.touchpoint)
            if seen is None:
                # Each topic-partition has its own watermark: a backlog of one topic read ahead
                # of the other must not make the other's records late.
                own = watermarks.get(kind)
                floor = max(sealed if sealed is not None else event_ms,
                            (own - lateness) if own is not None else event_ms)
                if event_ms < floor:
                    self._dead_letter(out, message, "too_late",
                                      f"event time is {floor - event_ms} ms before watermark - allowed lateness")
                    outcomes.add(topic, "too_late")
                    continue
                if own is None or event_ms > own:
                    watermarks[kind] = event_ms
                changed.add(key)
                dims = self._bounded(memory, event.tenant, raw_dims, grown)
                if kind == "i":
                    effects = join.add_interaction(entry, event.event_id, trigger, event.tenant, dims,
                                                   event_ms, scoring.interaction_stats(event, sl_seconds))
                else:
                    effects = join.add_survey(entry, event.event_id, trigger, event.tenant, dims,
                                              event_ms, survey_contribution(event))
            elif kind == "i":
                dims = self._bounded(memory, event.tenant, raw_dims, grown)
                own_count = join.own_effect(event.tenant, dims, event_ms,
                                            scoring.interaction_stats(event, sl_seconds))
                effects = join.effects_of(entry, trigger, own_count)
            else:
                effects = join.effects_of(entry, trigger)
            outcomes.add(topic, "ok")
            # A record seen before (a replay) is checked bucket by bucket; a new one beyond every
            # bucket's versions takes the fast path, summed with its neighbours first.
            fresh = seen is None and offset > replay_upto[0 if kind == "i" else 1]
            replayed = None if fresh else (kind, offset)
            slot = 1 if kind == "i" else 2
            for sign, tenant, effect_dims, effect_ms, contribution, only in effects:
                on_grid = effect_ms - effect_ms % grid
                starts = starts_of.get(on_grid)
                if starts is None:
                    starts = starts_of[on_grid] = tuple(on_grid - on_grid % w for w in widths)
                scopes = scopes_of.get((tenant, effect_dims, only))
                if scopes is None:
                    scopes = scopes_of[(tenant, effect_dims, only)] = self._scopes(tenant, effect_dims, only)
                for scope in scopes:
                    group_key = (scope, starts, replayed)
                    group = groups.get(group_key)
                    if group is None:
                        group = groups[group_key] = [scoring.empty(), -1, -1]
                    vector = group[0]
                    if sign == 1:
                        for index, value in contribution:
                            vector[index] += value
                    else:
                        for index, value in contribution:
                            vector[index] -= value
                    if offset > group[slot]:
                        group[slot] = offset

        # The lagging topic holds buckets open; a topic that never had a record holds nothing.
        lagging = min(watermarks.values()) if watermarks else None
        if lagging is not None:
            sealed = lagging - lateness if sealed is None else max(sealed, lagging - lateness)
            memory.sealed_ms = sealed
            state.put(META, {"wm": watermarks, "sealed": sealed})
        for tenant_attr in grown:  # before the join entries whose attributes they decided
            state.put(KEYS + orjson.dumps(tenant_attr), sorted(memory.keys[tenant_attr]))
        for key in changed:
            entry = entries[key]
            state.put(key, entry)
            known.add(key)
            heapq.heappush(memory.join_expiry, (entry["last"] + self.join_retention_ms, key))
        touched = self._fill_buckets(state, memory, groups, sealed)
        self._expire(state, memory, lagging, sealed)
        state.commit()
        self._send_partials(out, partition, touched)
        if lagging is not None and records:
            wm = orjson.dumps({"p": partition, "wm": lagging, "hi": max(watermarks.values()),
                               "at": int(time.time() * 1000)})
            for q in range(settings.partitions):
                out.add(settings.topic_partials, WATERMARK_KEY, wm, q)

    def _bounded(self, memory: PartitionMemory, tenant: str, dims: join.Dims,
                 grown: set[tuple[str, int]]) -> join.Dims:
        """Fold a channel, queue, agent or touchpoint beyond the first ``max_keys_per_dimension``
        distinct ones of this partition and tenant into ``other``: a bound on scopes and series.

        Admitted keys are kept for good, so a replayed record is folded exactly as the first time.
        """
        limit = self.max_keys
        out = list(dims)
        for attr, value in enumerate(dims):
            if value is None:
                continue
            admitted = memory.keys.get((tenant, attr))
            if admitted is None:
                admitted = memory.keys[(tenant, attr)] = set()
            if value in admitted:
                continue
            if len(admitted) < limit:
                admitted.add(value)
                grown.add((tenant, attr))
            else:
                out[attr] = OTHER
        return (out[0], out[1], out[2], out[3])

    def _scopes(self, tenant: str, dims: tuple[str, str, str, str],
                only: frozenset[str] | None) -> list[tuple[str, str, str]]:
        """The (tenant, dimension, key) scopes an effect counts in; a moved survey skips unchanged ones."""
        scopes = []
        for dimension in self.dimensions:
            if dimension == "all":
                if only is None:
                    scopes.append((tenant, "all", "all"))
            elif only is None or dimension in only:
                scopes.append((tenant, dimension, dims[ATTR_INDEX[dimension]]))
        return scopes

    def _fill_buckets(self, state: PartitionState, memory: PartitionMemory,
                      groups: dict[tuple, list], sealed: int | None) -> dict[bytes, list]:
        """Add each scope's batch sums into its time buckets; returns touched buckets by scope."""
        buckets: dict[bytes, dict] = {}
        by_scope: dict[bytes, list] = {}
        known = memory.bucket_keys
        for (scope, starts, replayed), (vector, max_i, max_s) in groups.items():
            nonzero = [(index, value) for index, value in enumerate(vector) if value]
            for width, start in zip(self.widths, starts):
                if sealed is not None and start + width <= sealed:
                    continue
                key = BUCKET + orjson.dumps([*scope, width, start])
                bucket = buckets.get(key)
                if bucket is None:
                    bucket = state.get(key) if key in known else None
                    if bucket is None:
                        bucket = {"v": [-1, -1], "s": scoring.empty(), "id": [*scope, width, start]}
                        heapq.heappush(memory.bucket_expiry, (start + width, key))
                        known.add(key)
                    buckets[key] = bucket
                    by_scope.setdefault(orjson.dumps(scope), []).append(bucket)
                versions = bucket["v"]
                if replayed is not None:
                    if replayed[1] <= versions[0 if replayed[0] == "i" else 1]:
                        continue
                stats = bucket["s"]
                for index, value in nonzero:
                    stats[index] += value
                if max_i > versions[0]:
                    versions[0] = max_i
                if max_s > versions[1]:
                    versions[1] = max_s
        for key, bucket in buckets.items():
            state.put(key, bucket)
        return by_scope

    def _expire(self, state: PartitionState, memory: PartitionMemory, watermark: int | None,
                sealed: int | None) -> None:
        """Drop join entries past their retention and buckets no record can reach any more."""
        if watermark is None:
            return
        retention = self.settings.join_retention_ms
        heap = memory.join_expiry
        while heap and heap[0][0] <= watermark:
            _, key = heapq.heappop(heap)
            entry = state.get(key)
            if entry is not None and entry["last"] + retention <= watermark:
                state.delete(key)
                memory.join_keys.discard(key)
        heap = memory.bucket_expiry
        while heap and sealed is not None and heap[0][0] <= sealed:
            _, key = heapq.heappop(heap)
            state.delete(key)
            memory.bucket_keys.discard(key)

    def _send_partials(self, out: Outbox, partition: int, touched: dict[bytes, list]) -> None:
        partitions = self.settings.partitions
        topic = self.settings.topic_partials
        for scope_key, buckets in touched.items():
            updates = [[b["id"][3], b["id"][4], b["v"][0], b["v"][1], b["s"]] for b in buckets]
            value = orjson.dumps({"p": partition, "u": updates})
            out.add(topic, scope_key, value, scope_partition(scope_key, partitions))

    def _dead_letter(self, out: Outbox, message: Any, reason: str, detail: str) -> None:
        headers = [
            ("reason", reason.encode()),
            ("detail", detail[:500].encode()),
            ("source_topic", message.topic.encode()),
            ("source_partition", str(message.partition).encode()),
            ("source_offset", str(message.offset).encode()),
        ]
        out.add(self.settings.topic_dead_letter, message.key, message.value, None, headers)

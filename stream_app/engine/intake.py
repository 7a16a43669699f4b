"""Stage one, per input partition: validate, deduplicate, join, judge lateness, fill time buckets.

``Intake.process`` takes one partition's batch (interactions, then surveys, each in offset order)
and returns an ``IntakeResult``: the state writes of the batch (each changed key once), the
partials and watermarks for the rollup stage, dead letters and outcome counts. It sends nothing;
``stream_app.engine.commit`` says in which order the runtime writes and sends them.

Effects are summed per (tenant, attributes, minute) first, then fanned out to scopes and bucket
widths once per batch. Exactness: each bucket remembers, per input kind, the highest offset it has
applied, so a replayed record changes only buckets that have not seen it (README, Exactness).
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from stream_app import scoring
from stream_app.engine import codec
from stream_app.engine.buckets import BucketId, BucketTable, Fan, Groups, ScopeIndex
from stream_app.engine.decode import decode_batch
from stream_app.engine.join import (
    Effect,
    add_interaction,
    add_survey,
    effects_of,
    new_entry,
    own_effect,
    resolve,
)
from stream_app.engine.records import (
    INTERACTION,
    SURVEY,
    Bucket,
    BucketUpdate,
    Dims,
    IntakeMeta,
    InteractionRef,
    JoinEntry,
    Partial,
    Scope,
    Sparse,
    Watermark,
)
from stream_app.engine.store import Write
from stream_app.errors import InvalidEvent
from stream_app.events import Answer, Interaction, Survey
from stream_app.windows import bucket_widths

if TYPE_CHECKING:
    from stream_app.settings import Settings

OTHER = "other"
KIND_NAMES: tuple[Literal["interaction"], Literal["survey"]] = ("interaction", "survey")


class InputRecord(Protocol):
    """What the intake reads of a Kafka record (aiokafka's ConsumerRecord has these)."""

    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class IntakeConfig:
    """The settings the intake needs, in its own units."""

    partitions: int  # rollup partitions (the partials topic's)
    dimensions: tuple[str, ...]
    widths_ms: tuple[int, ...]
    allowed_lateness_ms: int
    join_retention_ms: int
    service_level_seconds: float
    max_keys_per_dimension: int
    max_record_bytes: int
    max_clock_skew_ms: int = 600_000

    @classmethod
    def from_settings(cls, settings: Settings) -> IntakeConfig:
        return cls(settings.partitions, settings.dimension_names, bucket_widths(settings.window_specs),
                   settings.allowed_lateness_ms, settings.join_retention_ms, settings.service_level_seconds,
                   settings.max_keys_per_dimension, settings.max_record_bytes, settings.max_clock_skew_ms)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    kind: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    detail: str


@dataclass(slots=True)
class IntakeResult:
    changelog: list[Write] = field(default_factory=list)
    partials: list[tuple[int, bytes, bytes]] = field(default_factory=list)  # (partition, key, value)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    outcomes: dict[tuple[int, str], int] = field(default_factory=dict)  # (kind, outcome) -> records

    def count(self, kind: int, outcome: str) -> None:
        self.outcomes[(kind, outcome)] = self.outcomes.get((kind, outcome), 0) + 1




class ExpiryIndex:
    """Keys by the minute in which they may expire: one list slot per key, where a heap of tuples
    would cost a tuple and an integer more. A key filed twice (its entry was extended) is checked
    against its entry when due."""

    __slots__ = ("_by_minute", "_minutes")

    def __init__(self) -> None:
        self._by_minute: dict[int, list[str]] = {}
        self._minutes: list[int] = []  # a heap of the keys of _by_minute

    def add(self, expires_ms: int, key: str) -> None:
        minute = expires_ms // 60_000
        keys = self._by_minute.get(minute)
        if keys is None:
            keys = self._by_minute[minute] = []
            heapq.heappush(self._minutes, minute)
        keys.append(key)

    def due(self, now_ms: int) -> list[str]:
        """The keys filed for minutes that have wholly passed ``now_ms``."""
        due: list[str] = []
        while self._minutes and (self._minutes[0] + 1) * 60_000 - 1 <= now_ms:
            due.extend(self._by_minute.pop(heapq.heappop(self._minutes)))
        return due


class IntakePartition:
    """One input partition's live state, in memory; ``load`` rebuilds it from a store's items."""

    def __init__(self, partition: int, dimensions: tuple[str, ...]) -> None:
        self.partition = partition
        self.scope_index = ScopeIndex(dimensions)
        self.meta = IntakeMeta({}, None)
        # Join entries, kept encoded: most are a lone interaction that no later record reads, and
        # the encoded form (written to the changelog anyway) takes half the memory of the object.
        self.entries: dict[str, bytes] = {}
        self.buckets = BucketTable()
        self.admitted: dict[tuple[str, int], set[str]] = {}
        self.replay_upto = [-1, -1]  # per kind: offsets at or below may be in some bucket already
        self._entry_expiry = ExpiryIndex()
        self._bounded: dict[tuple[str, Dims], Dims] = {}

    def load(self, items: Sequence[tuple[bytes, bytes]], retention_ms: int) -> None:
        for key, value in items:
            prefix = key[:1]
            if prefix == codec.JOIN:
                self.entries[key[1:].decode()] = value
                self._entry_expiry.add(codec.decode_join(value).last_ms + retention_ms, key[1:].decode())
            elif prefix == codec.BUCKET:
                scope, width, start = codec.parse_bucket_key(key)
                bucket = codec.decode_bucket(value)
                self.buckets.put((scope, width, start), bucket)
                self.replay_upto = [max(a, b) for a, b in zip(self.replay_upto, bucket.versions, strict=True)]
            elif prefix == codec.ADMITTED:
                self.admitted[codec.parse_admitted_key(key)] = set(codec.decode_admitted(value))
            elif key == codec.META:
                self.meta = codec.decode_intake_meta(value)


class Intake:
    """The intake stage over all the input partitions this process owns."""

    def __init__(self, config: IntakeConfig) -> None:
        self.config = config
        self.grid_ms = math.gcd(*config.widths_ms)  # bucket starts depend only on the time on this grid
        self.partitions: dict[int, IntakePartition] = {}

    def forget(self) -> None:
        """Drop in-memory state (after a rebalance): the store is the truth."""
        self.partitions.clear()

    def loaded(self, partition: int) -> bool:
        return partition in self.partitions

    def load(self, partition: int, items: Sequence[tuple[bytes, bytes]]) -> None:
        state = IntakePartition(partition, self.config.dimensions)
        state.load(items, self.config.join_retention_ms)
        self.partitions[partition] = state

    def process(self, partition: int, interactions: Sequence[InputRecord], surveys: Sequence[InputRecord],
                now_ms: int | None = None) -> IntakeResult:
        """Apply one batch of one partition; the partition must be loaded."""
        state = self.partitions[partition]
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        batch = _Batch(self, state, now_ms + self.config.max_clock_skew_ms)
        for kind, records in ((INTERACTION, interactions), (SURVEY, surveys)):
            if records:
                values = [r.value for r in records]
                events = decode_batch(values, KIND_NAMES[kind], self.config.max_record_bytes)
                for record, event in zip(records, events, strict=True):
                    batch.apply(kind, record, event)
                batch.batch_max[kind] = records[-1].offset
        return batch.finish(bool(interactions or surveys), now_ms)


class _Batch:
    """One partition's batch in progress: what changed, and the effects summed so far."""

    def __init__(self, intake: Intake, state: IntakePartition, future_ms: int) -> None:
        self.intake = intake
        self.future_ms = future_ms  # event times beyond this are in the future: the wall clock + skew
        self.config = intake.config
        self.state = state
        self.result = IntakeResult()
        self.groups = Groups(state.scope_index, intake.grid_ms)
        self.batch_max = [-1, -1]  # per kind, the highest offset in the batch
        self.ok = [0, 0]  # per kind, records counted
        # Insertion-ordered (dicts, not sets): a crash keeps a prefix of the writes, the same one each time.
        self.open_entries: dict[str, JoinEntry | None] = {}  # entries this batch has read, decoded
        self.changed_entries: dict[str, None] = {}
        self.grown: dict[tuple[str, int], None] = {}

    def apply(self, kind: int, record: InputRecord, event: Interaction | Survey | InvalidEvent) -> None:
        """One record: dead letter, duplicate, or its effects added to the batch's groups."""
        if isinstance(event, InvalidEvent):
            self._dead_letter(kind, record, event.reason, event.detail)
            return
        offset = record.offset
        trigger = offset * 2 + kind
        if isinstance(event, Interaction):
            join_key, event_ms = event.interaction_id, event.closed_at_ms
        else:
            join_key = event.interaction_id or "\x00" + event.event_id
            event_ms = event.answered_at_ms
        entry = self._entry(join_key)
        seen = None if entry is None else entry.seen.get(event.event_id)
        if seen is not None and seen != trigger:
            self.result.count(kind, "duplicate")
            return
        if seen is None:
            if event_ms > self.future_ms:
                self._dead_letter(kind, record, "in_future", f"event time is {event_ms - self.future_ms} ms "
                                                             "ahead of the worker's clock + max clock skew")
                return
            late = self._too_late(kind, event_ms)
            if late is not None:
                self._dead_letter(kind, record, "too_late", late)
                return
            self.changed_entries[join_key] = None
        else:
            self._advance(kind, event_ms)  # in time when first read; the crash may have lost the watermark
        self.ok[kind] += 1
        # A record seen before (a replay) is checked bucket by bucket; a new one beyond every
        # bucket's versions is summed with its neighbours.
        replayed = None if seen is None and offset > self.state.replay_upto[kind] else trigger
        if entry is None and isinstance(event, Interaction):  # the common case, straight through
            dims = self._bound(event.tenant, (event.channel, event.queue, event.agent_id, event.touchpoint))
            self.open_entries[join_key] = JoinEntry(event_ms, {event.event_id: trigger},
                                                    InteractionRef(trigger, dims, event_ms))
            if replayed is None:
                cols, vals = scoring.interaction_columns(event, self.config.service_level_seconds)
                self.groups.add_new(event.tenant, resolve(dims, None), event_ms, cols, vals)
            else:
                self.groups.add((own_effect(event.tenant, dims, event_ms, self._stats(event)),), replayed)
            return
        if entry is None:
            entry = self.open_entries[join_key] = new_entry()
        self.groups.add(self._effects(kind, trigger, entry, event, event_ms, seen is None), replayed)

    def _stats(self, interaction: Interaction) -> Sparse:
        return tuple(scoring.interaction_stats(interaction, self.config.service_level_seconds))

    def _entry(self, join_key: str) -> JoinEntry | None:
        if join_key in self.open_entries:
            return self.open_entries[join_key]
        encoded = self.state.entries.get(join_key)
        entry = self.open_entries[join_key] = None if encoded is None else codec.decode_join(encoded)
        return entry

    def _too_late(self, kind: int, event_ms: int) -> str | None:
        """Each kind has its own watermark: a backlog of one topic read ahead of the other must not
        make the other's records late. Advances the watermark when the record is in time."""
        meta = self.state.meta
        own = meta.watermarks.get(kind)
        lateness = self.config.allowed_lateness_ms
        sealed = meta.sealed_ms
        floor = max(sealed if sealed is not None else event_ms,
                    (own - lateness) if own is not None else event_ms)
        if event_ms < floor:
            return f"event time is {floor - event_ms} ms before watermark - allowed lateness"
        self._advance(kind, event_ms)
        return None

    def _advance(self, kind: int, event_ms: int) -> None:
        own = self.state.meta.watermarks.get(kind)
        if own is None or event_ms > own:
            self.state.meta.watermarks[kind] = event_ms

    def _effects(self, kind: int, trigger: int, entry: JoinEntry, event: Interaction | Survey,
                 event_ms: int, new: bool) -> list[Effect]:
        dims = self._bound(event.tenant, (event.channel, event.queue, event.agent_id, event.touchpoint))
        if isinstance(event, Interaction):
            own = own_effect(event.tenant, dims, event_ms, self._stats(event))
            return add_interaction(entry, event.event_id, trigger, own, dims) if new else \
                effects_of(entry, trigger, own)
        if new:
            return add_survey(entry, event.event_id, trigger, event.tenant, dims, event_ms,
                              survey_contribution(event))
        return effects_of(entry, trigger)

    def _bound(self, tenant: str, dims: Dims) -> Dims:
        """Fold a value beyond the first ``max_keys_per_dimension`` distinct ones of this partition and
        tenant into ``other``: a bound on scopes and series. Admitted keys are kept for good, so a
        replayed record is folded exactly as the first time, and the answer can be cached."""
        cache = self.state._bounded
        found = cache.get((tenant, dims))
        if found is not None:
            return found
        limit = self.config.max_keys_per_dimension
        out = list(dims)
        for attribute, value in enumerate(dims):
            if value is None:
                continue
            admitted = self.state.admitted.setdefault((tenant, attribute), set())
            if value in admitted:
                continue
            if len(admitted) < limit:
                admitted.add(value)
                self.grown[(tenant, attribute)] = None
            else:
                out[attribute] = OTHER
        bounded: Dims = (out[0], out[1], out[2], out[3])
        if len(cache) > 100_000:
            cache.clear()
        cache[(tenant, dims)] = bounded
        return bounded

    def _dead_letter(self, kind: int, record: InputRecord, reason: str, detail: str) -> None:
        dead = DeadLetter(kind, record.offset, record.key, record.value, reason, detail)
        self.result.dead_letters.append(dead)
        self.result.count(kind, reason if reason in ("too_late", "in_future") else "invalid")

    def finish(self, had_records: bool, now_ms: int) -> IntakeResult:
        """Seal, fan the groups out to buckets, expire, and lay out the writes and partials."""
        state, result = self.state, self.result
        for kind, count in enumerate(self.ok):
            if count:
                result.outcomes[(kind, "ok")] = count
        lagging = min(state.meta.watermarks.values()) if state.meta.watermarks else None
        # The batch's records were judged against the seal as the batch began: a batch that spans more
        # than the allowed lateness still fills its early buckets. Those gone are gone for replays too.
        sealed_before = state.meta.sealed_ms
        expired = state.meta.expired_ms if state.meta.expired_ms is not None else sealed_before
        if lagging is not None:
            floor = lagging - self.config.allowed_lateness_ms
            state.meta.sealed_ms = floor if sealed_before is None else max(sealed_before, floor)
        fan = Fan(state.scope_index, self.config.widths_ms, state.buckets, expired)
        # A replay after a crash re-sends its buckets a batch at a time: the partition's watermark, which
        # the crashed process had reached, waits until the replay has too (rules judge by it).
        replaying = any(0 <= last < upto for last, upto in zip(self.batch_max, state.replay_upto,
                                                                strict=True))
        touched = fan.run(self.groups, (self.batch_max[0], self.batch_max[1]))
        if touched:
            state.replay_upto = [max(a, b) for a, b in zip(state.replay_upto, self.batch_max, strict=True)]
        # Order matters for a crash that keeps only a prefix of these writes: the keys a join entry's
        # attributes were folded with, then join entries, then buckets, then deletions, meta last.
        changelog = result.changelog
        for tenant, attribute in self.grown:
            changelog.append((codec.admitted_key(tenant, attribute),
                              codec.encode(sorted(state.admitted[(tenant, attribute)]))))
        retention = self.config.join_retention_ms
        for join_key in self.changed_entries:
            entry = self.open_entries[join_key]
            assert entry is not None
            encoded = state.entries[join_key] = codec.encode(entry)
            changelog.append((codec.join_key(join_key), encoded))
            state._entry_expiry.add(entry.last_ms + retention, join_key)
        # Built once for the changelog and the partials; a touched bucket is never one expired now.
        buckets = {bucket_id: state.buckets.get(bucket_id) for bucket_id in touched}
        for bucket_id, bucket in buckets.items():
            changelog.append((codec.bucket_key(*bucket_id), codec.encode(bucket)))
        _expire(state, lagging, retention, sealed_before, changelog)
        if lagging is not None and had_records:
            changelog.append((codec.META, codec.encode(state.meta)))
        announce = had_records and not replaying
        _partials(self.config, state, buckets, lagging if announce else None, now_ms, result)
        return result


def survey_contribution(survey: Survey) -> Sparse:
    """A survey's statistics; the same few answer sets recur, so they are worked out once each."""
    found = _CONTRIBUTIONS.get(survey.answers)
    if found is None:
        vector = scoring.empty()
        scoring.add_survey(vector, survey.answers)
        found = tuple((i, v) for i, v in enumerate(vector) if v)
        if len(_CONTRIBUTIONS) >= 4096:
            _CONTRIBUTIONS.clear()
        _CONTRIBUTIONS[survey.answers] = found
    return found


_CONTRIBUTIONS: dict[tuple[Answer, ...], Sparse] = {}


def _expire(state: IntakePartition, watermark: int | None, retention_ms: int, sealed_before: int | None,
            changelog: list[Write]) -> None:
    """Drop join entries past their retention and buckets no record can reach any more, with tombstones:
    those sealed before this batch, whose states the rollup has had since."""
    if watermark is None:
        return
    for join_key in state._entry_expiry.due(watermark):
        encoded = state.entries.get(join_key)
        if encoded is not None and codec.decode_join(encoded).last_ms + retention_ms <= watermark:
            del state.entries[join_key]
            changelog.append((codec.join_key(join_key), None))
    if sealed_before is not None:
        for bucket_id in state.buckets.expire(sealed_before):
            changelog.append((codec.bucket_key(*bucket_id), None))
        state.meta.expired_ms = sealed_before


def _partials(config: IntakeConfig, state: IntakePartition, touched: dict[BucketId, Bucket],
              lagging: int | None, now_ms: int, result: IntakeResult) -> None:
    """Each touched scope's buckets, whole, to the rollup partition that owns the scope; then the
    partition's watermark to every rollup partition."""
    by_scope: dict[Scope, list[BucketUpdate]] = {}
    for (scope, width, start), bucket in touched.items():
        by_scope.setdefault(scope, []).append(BucketUpdate(width, start, bucket))
    for scope, updates in by_scope.items():
        key = codec.scope_key(scope)
        result.partials.append((codec.scope_partition(key, config.partitions), key,
                                codec.encode(Partial(state.partition, updates))))
    if lagging is not None:
        highest = max(state.meta.watermarks.values())
        watermark = codec.encode(Watermark(state.partition, lagging, highest, now_ms))
        for partition in range(config.partitions):
            result.partials.append((partition, codec.WATERMARK_KEY, watermark))

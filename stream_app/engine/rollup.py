"""Stage two, per scope: merge the input partitions' buckets, build rolling and final snapshots, judge rules.

Rules are judged in event time (CONTRACT, Alerts): once every input partition's data have reached a
step boundary t of a rule's window, the rule steps once on the window that ends at t, for every step
boundary in turn. Decisions then depend on the records alone, not on how they were cut into batches,
when snapshots were emitted, or how many workers share the work.

A scope (tenant, dimension, key) lives on one partition of the partials topic. For each time bucket
it keeps the latest state sent by each input partition — a newer state replaces an older one, so a
partial sent twice changes nothing — and the sum of those states is the bucket's value. Hopping
windows are sums of buckets, built only when a snapshot is. Every method returns the state writes
it made (each changed key once) and sends nothing: ``stream_app.engine.commit`` orders the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from stream_app import alerts, scoring, snapshot
from stream_app.engine import codec
from stream_app.engine.records import BucketParts, RollupMeta, Scope, SourcePosition
from stream_app.engine.store import Write
from stream_app.rules import Rule
from stream_app.windows import WindowSpec

if TYPE_CHECKING:
    from stream_app.settings import Settings

BucketId = tuple[int, int]  # width, start
Document = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RollupConfig:
    specs: tuple[WindowSpec, ...]
    allowed_lateness_ms: int
    idle_timeout_ms: int
    emit_interval_seconds: float
    sources: int  # input partitions: each sends its watermark to every rollup partition
    at_event_time: bool = False  # alert events' ``at``: the step judged (the backtest), not the wall clock

    @classmethod
    def from_settings(cls, settings: Settings) -> RollupConfig:
        return cls(settings.window_specs, settings.allowed_lateness_ms,
                   round(settings.idle_timeout_seconds * 1000), settings.emit_interval_seconds,
                   settings.partitions)


@dataclass(slots=True)
class AlertDecision:
    """What one round of judging decided: rule states changed (None: back to ok), the events raised,
    and per window the last step boundary judged. Recorded as one changelog record, so that a crash
    keeps all of it or none (``Rollup.record``)."""

    changes: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    events: list[Document] = field(default_factory=list)
    judged: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.changes or self.events or self.judged)

    def document(self) -> Document:
        return {"changes": self.changes, "events": self.events, "judged": self.judged}


@dataclass(slots=True)
class RollupPartition:
    """One rollup partition in memory; rebuilt from its store after a rebalance."""

    partition: int
    meta: RollupMeta = field(default_factory=RollupMeta)
    parts: dict[Scope, dict[BucketId, BucketParts]] = field(default_factory=dict)
    sums: dict[Scope, dict[BucketId, np.ndarray]] = field(default_factory=dict)
    stale: dict[Scope, set[BucketId]] = field(default_factory=dict)  # sums to recompute
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)  # rule state key -> state (absent: ok)
    pending: AlertDecision | None = None  # recorded, its events not confirmed sent
    pending_keys: list[bytes] = field(default_factory=list)  # where it is stored
    loaded_ms: int | None = None  # when this process first judged here (wall clock)
    dirty: set[Scope] = field(default_factory=set)  # scopes whose rolling snapshot may have changed
    last_emit: dict[Scope, float] = field(default_factory=dict)
    rolling_ends: tuple[int, ...] = ()

    def load(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        for key, value in items:
            prefix = key[:1]
            if key == codec.META:
                self.meta = codec.decode_rollup_meta(value)
            elif prefix == codec.BUCKET:
                scope, width, start = codec.parse_bucket_key(key)
                self.parts.setdefault(scope, {})[(width, start)] = codec.decode_parts(value)
                self.stale.setdefault(scope, set()).add((width, start))
            elif prefix == codec.ALERT:
                self.alerts[key[1:].decode()] = codec.decode_document(value)
            elif prefix == codec.UNSENT:
                self._hold(key, codec.decode_document(value))
        # Whoever held this partition may have died between recording a decision and confirming it:
        # the decision is the newest truth (``Rollup.record``), and whoever dies between applying and
        # emitting leaves snapshots to emit.
        if self.pending is not None:
            self._apply(self.pending)
        self.dirty = set(self.parts)

    def _hold(self, key: bytes, value: Document) -> None:
        """A recorded decision; a key longer than the prefix is one alert event as an earlier build
        recorded it (an event alone)."""
        pending = self.pending if self.pending is not None else AlertDecision()
        if key == codec.UNSENT:
            pending.changes.update(value["changes"])
            pending.events[:0] = value["events"]
            pending.judged.update(value["judged"])
        else:
            pending.events.append(value)
        self.pending = pending
        self.pending_keys.append(key)

    def _apply(self, decision: AlertDecision) -> None:
        for key, value in decision.changes.items():
            if value is None:
                self.alerts.pop(key, None)
            else:
                self.alerts[key] = value
        self.meta.judged.update(decision.judged)

    def latest_ms(self) -> int:
        return max(p.high_ms for p in self.meta.positions.values())

    def merged(self, scope: Scope) -> dict[BucketId, np.ndarray]:
        """The scope's merged buckets, summed again where partials arrived since the last call."""
        sums = self.sums.setdefault(scope, {})
        stale = self.stale.pop(scope, None)
        if stale:
            parts = self.parts[scope]
            for bucket in stale:
                sums[bucket] = _merge(parts[bucket])
        return sums


class Rollup:
    """The rollup stage over all the partials partitions this process owns."""

    def __init__(self, config: RollupConfig, rules: tuple[Rule, ...] = ()) -> None:
        self.config = config
        self.rules = rules
        self.specs_by_width: dict[int, list[WindowSpec]] = {}
        for spec in config.specs:
            self.specs_by_width.setdefault(spec.bucket_ms, []).append(spec)
        # The windows some rule watches, each with its rules, in the configured order.
        self.judged_specs = [(spec, tuple(r for r in rules if r.window == spec.name)) for spec in config.specs
                             if any(r.window == spec.name for r in rules)]
        self.partitions: dict[int, RollupPartition] = {}

    def forget(self) -> None:
        self.partitions.clear()

    def loaded(self, partition: int) -> bool:
        return partition in self.partitions

    def load(self, partition: int, items: Sequence[tuple[bytes, bytes]]) -> None:
        state = RollupPartition(partition)
        state.load(items)
        self.partitions[partition] = state

    def _closed(self, state: RollupPartition, width: int, start: int) -> bool:
        """True when every window that holds this bucket has had its final snapshot."""
        frontier = state.meta.frontier
        return all(s.name in frontier and start + s.size_ms <= frontier[s.name]
                   for s in self.specs_by_width[width])

    def process(self, partition: int,
                messages: Sequence[tuple[bytes | None, bytes | None]]) -> tuple[list[Write], int]:
        """Apply partials and watermarks; returns the writes and how many bucket states came after
        their windows' finals (and were dropped)."""
        state = self.partitions[partition]
        touched: dict[tuple[Scope, int, int], BucketParts] = {}
        meta_changed, late = False, 0
        for key, value in messages:
            if key is None or value is None:
                continue
            if key == codec.WATERMARK_KEY:
                _advance_position(state.meta, codec.decode_watermark(value))
                meta_changed = True
                continue
            scope = codec.parse_scope_key(key)
            partial = codec.decode_partial(value)
            for update in partial.updates:
                if self._closed(state, update.width_ms, update.start_ms):
                    late += 1
                    continue
                bucket_id = (update.width_ms, update.start_ms)
                entry = state.parts.setdefault(scope, {}).setdefault(bucket_id, BucketParts({}))
                known = entry.parts.get(partial.source)
                versions = update.bucket.versions
                if known is not None and _older(versions, known.versions):
                    continue  # an older state than the one we hold: replayed
                entry.parts[partial.source] = update.bucket
                touched[(scope, *bucket_id)] = entry
                state.stale.setdefault(scope, set()).add(bucket_id)
                state.dirty.add(scope)
        writes: list[Write] = [(codec.bucket_key(*bucket_id), codec.encode(entry))
                               for bucket_id, entry in touched.items()]
        if meta_changed:
            writes.append((codec.META, codec.encode(state.meta)))
        if state.meta.positions:
            ends = tuple(s.rolling(state.latest_ms())[1] for s in self.config.specs)
            if ends != state.rolling_ends:
                state.rolling_ends = ends
                state.dirty.update(state.parts)
        return writes, late

    def closing_watermark(self, state: RollupPartition, now_ms: int) -> int | None:
        """How far every input partition that still holds windows open has come."""
        positions = state.meta.positions.values()
        if not positions:
            return None
        active = [p.closing_ms for p in positions if now_ms - p.wall_ms < self.config.idle_timeout_ms]
        return min(active) if active else max(p.closing_ms for p in positions)

    def rolling(self, partition: int, now: float, now_ms: int) -> list[Document]:
        """Rolling snapshots of changed scopes, at most one per scope per emit interval."""
        state = self.partitions[partition]
        if not state.dirty or not state.meta.positions:
            return []
        latest = state.latest_ms()
        documents = []
        for scope in list(state.dirty):
            if now - state.last_emit.get(scope, -1e18) < self.config.emit_interval_seconds:
                continue
            state.dirty.discard(scope)
            state.last_emit[scope] = now
            buckets = state.merged(scope)
            for spec in self.config.specs:
                start, end = spec.rolling(latest)
                stats = _window(buckets, spec, start, end)
                values = scoring.empty() if stats is None else stats.tolist()
                documents.append(snapshot.build(*scope, spec.name, start, end, False, values, now_ms))
        return documents

    def judging_watermark(self, state: RollupPartition, now_ms: int) -> int | None:
        """How far the data of every input partition have come: rules judge windows ending at or
        before it. A partition quiet for the idle timeout stops holding it back (as it stops holding
        windows open); one never heard from holds it back for the idle timeout after this process
        first judged here."""
        if len(state.meta.positions) < self.config.sources:
            if state.loaded_ms is None:
                state.loaded_ms = now_ms
            if now_ms - state.loaded_ms < self.config.idle_timeout_ms:
                return None
        return self.closing_watermark(state, now_ms)

    def judge(self, partition: int, now_ms: int) -> AlertDecision:
        """Step every rule at each step boundary of its window that the data have reached since the
        last round, on the window that ends there."""
        state = self.partitions[partition]
        decision = AlertDecision()
        if not self.judged_specs or not state.meta.positions:
            return decision
        reached = self.judging_watermark(state, now_ms)
        if reached is None:
            return decision
        for spec, rules in self.judged_specs:
            last = reached - reached % spec.step_ms
            done = state.meta.judged.get(spec.name)
            first = self._first_end(state, spec) if done is None else done + spec.step_ms
            if first is None or first > last:
                continue
            watched = [(scope, watching) for scope in state.parts
                       if (watching := tuple(r for r in rules if alerts.watches(r, *scope)))]
            for end in range(first, last + 1, spec.step_ms):
                for scope, watching in watched:
                    self._judge_window(state, scope, spec, watching, end, now_ms, decision)
            decision.judged[spec.name] = last
        return decision

    @staticmethod
    def _first_end(state: RollupPartition, spec: WindowSpec) -> int | None:
        """The first step boundary whose window holds any data of this partition."""
        starts = [start for buckets in state.parts.values() for (width, start) in buckets
                  if width == spec.bucket_ms]
        return None if not starts else (min(starts) // spec.step_ms + 1) * spec.step_ms

    def _judge_window(self, state: RollupPartition, scope: Scope, spec: WindowSpec, rules: tuple[Rule, ...],
                      end: int, now_ms: int, decision: AlertDecision) -> None:
        """Step the rules of ``spec`` that watch ``scope`` on its window ending at ``end``."""
        keys = [alerts.scope_state_key(rule, *scope) for rule in rules]
        stats = _window(state.merged(scope), spec, end - spec.size_ms, end)
        befores = [decision.changes[k] if k in decision.changes else state.alerts.get(k) for k in keys]
        if stats is None and all(before is None for before in befores):
            return  # no data and nothing going on: ok stays ok
        values = scoring.empty() if stats is None else stats.tolist()
        at_ms = end if self.config.at_event_time else now_ms
        document = snapshot.build(*scope, spec.name, end - spec.size_ms, end, False, values, at_ms)
        for rule, key, before in zip(rules, keys, befores, strict=True):
            after, events = alerts.step(rule, before, document, end, at_ms)
            if after != before:
                decision.changes[key] = after
            decision.events.extend(events)

    def record(self, partition: int, decision: AlertDecision) -> list[Write]:
        """The decision as one record, before any of its events is sent: a crash keeps all of it or
        none. ``confirm`` writes the states it changed in their own keys once the events are sent."""
        state = self.partitions[partition]
        if not decision:
            return []
        state._apply(decision)
        state.pending, state.pending_keys = decision, [codec.UNSENT]
        return [(codec.UNSENT, codec.encode_document(decision.document()))]

    def unsent(self) -> dict[int, list[Document]]:
        """Alert events of decisions recorded but not confirmed, per partition (a partition with a
        pending decision is there even when it raised no event: its states still need confirming)."""
        return {p: list(s.pending.events) for p, s in self.partitions.items() if s.pending is not None}

    def confirm(self, partition: int) -> list[Write]:
        """The pending decision's events are on the alerts topic: its states go to their own keys and
        the decision record is deleted."""
        state = self.partitions[partition]
        pending = state.pending
        if pending is None:
            return []
        writes: list[Write] = [(codec.alert_state_key(key), None if value is None else
                                codec.encode_document(value)) for key, value in pending.changes.items()]
        if pending.judged:
            writes.append((codec.META, codec.encode(state.meta)))
        writes.extend((key, None) for key in state.pending_keys)
        state.pending, state.pending_keys = None, []
        return writes

    def finals(self, partition: int, now_ms: int) -> tuple[list[Document], dict[str, int]]:
        """Final snapshots of windows the closing watermark has passed, and the new frontier.

        The runtime sends them first and only then calls ``advance`` with the frontier, so a crash in
        between emits the same finals again rather than losing them.
        """
        state = self.partitions[partition]
        closing = self.closing_watermark(state, now_ms)
        if closing is None:
            return [], {}
        limit = closing - self.config.allowed_lateness_ms
        documents: list[Document] = []
        frontier: dict[str, int] = {}
        for spec in self.config.specs:
            done = state.meta.frontier.get(spec.name)
            reached = limit - limit % spec.step_ms  # the last window end the closing watermark has passed
            if done is not None and reached <= done:
                continue
            for scope in list(state.parts):
                documents.extend(_closed_windows(state, scope, spec, done, limit, now_ms))
            frontier[spec.name] = reached
        return documents, frontier

    def advance(self, partition: int, frontier: dict[str, int]) -> list[Write]:
        """Record the finals as done and drop buckets no open window needs."""
        state = self.partitions[partition]
        if not frontier:
            return []
        state.meta.frontier.update(frontier)
        writes: list[Write] = [(codec.META, codec.encode(state.meta))]
        for scope in list(state.parts):
            buckets = state.parts[scope]
            for width, start in list(buckets):
                if self._closed(state, width, start):
                    del buckets[(width, start)]
                    state.sums.get(scope, {}).pop((width, start), None)
                    state.stale.get(scope, set()).discard((width, start))
                    writes.append((codec.bucket_key(scope, width, start), None))
            if not buckets:
                del state.parts[scope]
                state.sums.pop(scope, None)
                state.stale.pop(scope, None)
                state.last_emit.pop(scope, None)
                state.dirty.discard(scope)
        return writes


def _advance_position(meta: RollupMeta, watermark: Any) -> None:
    known = meta.positions.get(watermark.source)
    if known is None:
        meta.positions[watermark.source] = SourcePosition(watermark.closing_ms, watermark.wall_ms,
                                                          watermark.high_ms)
    else:
        known.closing_ms = max(known.closing_ms, watermark.closing_ms)
        known.wall_ms = max(known.wall_ms, watermark.wall_ms)
        known.high_ms = max(known.high_ms, watermark.high_ms)


def _older(versions: list[int], known: list[int]) -> bool:
    """A state no newer than the one held, in every kind, and not the same one."""
    return all(v <= k for v, k in zip(versions, known, strict=True)) and versions != known


def _merge(entry: BucketParts) -> np.ndarray:
    """The bucket's value: the sum over input partitions, in a fixed order."""
    parts = entry.parts
    return np.sum([codec.stats_array(parts[source].stats) for source in sorted(parts)], axis=0)


def _window(buckets: dict[BucketId, np.ndarray], spec: WindowSpec, start: int, end: int) -> np.ndarray | None:
    """The window's statistics: the sum of the buckets it covers; None when it has none."""
    width = spec.bucket_ms
    found = [stats for bucket_start in range(start, end, width)
             if (stats := buckets.get((width, bucket_start))) is not None]
    return np.sum(found, axis=0) if found else None


def _closed_windows(state: RollupPartition, scope: Scope, spec: WindowSpec, done: int | None, limit: int,
                    now_ms: int) -> list[Document]:
    buckets = state.merged(scope)
    starts = [b for (w, b) in buckets if w == spec.bucket_ms]
    if not starts:
        return []
    lo, hi = min(starts), max(starts) + spec.bucket_ms
    after = done if done is not None else lo - 1
    documents = []
    for end in spec.ends_between(after, limit, lo, hi):
        stats = _window(buckets, spec, end - spec.size_ms, end)
        if stats is not None:
            documents.append(snapshot.build(*scope, spec.name, end - spec.size_ms, end, True, stats.tolist(),
                                            now_ms))
    return documents

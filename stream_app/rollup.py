"""Stage two, per scope: merge every input partition's buckets, emit rolling and final snapshots.

A scope (tenant, dimension, key) lives on one partition of the partials topic. For each time
bucket it keeps the latest state sent by each input partition — a newer state replaces an older
one, so a partial sent twice changes nothing — and the sum of those states is the bucket's value.
Hopping windows are sums of buckets, built only when a snapshot is. The alert rules run here too,
on each rolling snapshot, with their state per rule and scope kept in the same table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from stream_app import alerts, scoring, snapshot
from stream_app.intake import BUCKET, META, WATERMARK_KEY, Outcomes
from stream_app.rules import Rule
from stream_app.settings import Settings
from stream_app.sinks.kafka import Outbox
from stream_app.state import PartitionState, iter_partition
from stream_app.windows import WindowSpec

Scope = tuple[str, str, str]
ALERT = b"a"
UNSENT = b"u"  # an alert event decided and recorded, its sending not yet confirmed


@dataclass(slots=True)
class RollupMemory:
    """One rollup partition in memory; rebuilt from the table after a rebalance."""

    # input partition -> [closing watermark (its lagging topic), last seen (wall ms), highest event time]
    watermarks: dict[str, list[int]]
    frontier: dict[str, int]  # window name -> end of the last window emitted as final
    # scope -> (width, start) -> {input partition: [version i, version s, stats]}, as in the table
    parts: dict[Scope, dict[tuple[int, int], dict[str, list]]]
    sums: dict[Scope, dict[tuple[int, int], list[float]]]  # scope -> (width, start) -> merged stats
    stale: dict[Scope, set[tuple[int, int]]] = field(default_factory=dict)  # sums to recompute
    alerts: dict[str, dict] = field(default_factory=dict)  # alert state key -> state (absent: ok)
    unsent: dict[bytes, dict] = field(default_factory=dict)  # table key -> alert event not confirmed sent
    dirty: set[Scope] = field(default_factory=set)
    last_emit: dict[Scope, float] = field(default_factory=dict)
    rolling_ends: tuple[int, ...] = ()


def _bucket_key(scope: Scope, width: int, start: int) -> bytes:
    return BUCKET + orjson.dumps([*scope, width, start])


class Rollup:
    def __init__(self, settings: Settings, table: Any, rules: tuple[Rule, ...] = ()) -> None:
        self.settings = settings
        self.table = table
        self.rules = rules
        self.specs: tuple[WindowSpec, ...] = settings.window_specs
        self.specs_by_width: dict[int, list[WindowSpec]] = {}
        for spec in self.specs:
            self.specs_by_width.setdefault(spec.bucket_ms, []).append(spec)
        self.memory: dict[int, RollupMemory] = {}

    def forget(self) -> None:
        self.memory.clear()

    def loaded(self) -> list[int]:
        return list(self.memory)

    def load(self, partition: int) -> RollupMemory:
        memory = self.memory.get(partition)
        if memory is not None:
            return memory
        meta: dict = {"wm": {}, "final": {}}
        parts: dict[Scope, dict[tuple[int, int], dict[str, list]]] = {}
        alert_states: dict[str, dict] = {}
        unsent: dict[bytes, dict] = {}
        for key, value in iter_partition(self.table, partition):
            if key == META:
                meta = value
            elif key[:1] == ALERT:
                alert_states[key[1:].decode()] = value
            elif key[:1] == UNSENT:
                unsent[key] = value
            elif key[:1] == BUCKET:
                tenant, dimension, scope_key, width, start = orjson.loads(key[1:])
                parts.setdefault((tenant, dimension, scope_key), {})[(width, start)] = value
        sums = {scope: {bucket: _merge(entry) for bucket, entry in buckets.items()}
                for scope, buckets in parts.items()}
        # Whoever held this partition before may have died between applying and emitting.
        memory = RollupMemory(meta["wm"], meta["final"], parts, sums, dirty=set(sums), alerts=alert_states,
                              unsent=unsent)
        self.memory[partition] = memory
        return memory

    def _closed_for_width(self, memory: RollupMemory, width: int, start: int) -> bool:
        """True when every window that holds this bucket has had its final snapshot."""
        return all(s.name in memory.frontier and start + s.size_ms <= memory.frontier[s.name]
                   for s in self.specs_by_width[width])

    def process(self, partition: int, messages: list[Any], changelog: Outbox,
                outcomes: Outcomes) -> None:
        """Apply partial states and watermarks from the intake stage."""
        memory = self.load(partition)
        state = PartitionState(self.table, partition, changelog)
        touched: dict[bytes, dict] = {}
        meta_changed = False
        for message in messages:
            value = orjson.loads(message.value)
            if message.key == WATERMARK_KEY:
                source = str(value["p"])
                known = memory.watermarks.get(source)
                if known is None:
                    memory.watermarks[source] = [value["wm"], value["at"], value["hi"]]
                else:
                    known[0], known[1] = max(known[0], value["wm"]), max(known[1], value["at"])
                    known[2] = max(known[2], value["hi"])
                meta_changed = True
                continue
            scope: Scope = tuple(orjson.loads(message.key))  # type: ignore[assignment]
            source = str(value["p"])
            for width, start, v_i, v_s, stats in value["u"]:
                if self._closed_for_width(memory, width, start):
                    outcomes.add(self.settings.topic_partials, "after_final")
                    continue
                entry = memory.parts.setdefault(scope, {}).setdefault((width, start), {})
                known = entry.get(source)
                if known is not None and v_i <= known[0] and v_s <= known[1] \
                        and (v_i, v_s) != (known[0], known[1]):
                    continue  # an older state than the one we hold: replayed, ignore
                entry[source] = [v_i, v_s, stats]
                touched[_bucket_key(scope, width, start)] = entry
                # Summed when a snapshot needs it: every input partition may update it in one batch.
                memory.stale.setdefault(scope, set()).add((width, start))
                memory.dirty.add(scope)
        for key, entry in touched.items():
            state.put(key, entry)
        if meta_changed:
            self._put_meta(state, memory)
        state.commit()
        ends = tuple(s.rolling(self._latest(memory))[1] for s in self.specs) if memory.watermarks else ()
        if ends != memory.rolling_ends:
            memory.rolling_ends = ends
            memory.dirty.update(memory.parts)

    def _put_meta(self, state: PartitionState, memory: RollupMemory) -> None:
        state.put(META, {"wm": memory.watermarks, "final": memory.frontier})

    @staticmethod
    def _latest(memory: RollupMemory) -> int:
        return max(hi for _, _, hi in memory.watermarks.values())

    def closing_watermark(self, memory: RollupMemory, now_ms: int) -> int | None:
        """The watermark up to which every input partition that still holds windows open has come."""
        if not memory.watermarks:
            return None
        idle_ms = self.settings.idle_timeout_seconds * 1000
        active = [wm for wm, seen, _ in memory.watermarks.values() if now_ms - seen < idle_ms]
        return min(active) if active else max(wm for wm, _, _ in memory.watermarks.values())

    @staticmethod
    def _sums(memory: RollupMemory, scope: Scope) -> dict[tuple[int, int], list[float]]:
        """The scope's merged buckets, re-summed where partials arrived since the last call."""
        sums = memory.sums.setdefault(scope, {})
        stale = memory.stale.pop(scope, None)
        if stale:
            parts = memory.parts[scope]
            for bucket in stale:
                sums[bucket] = _merge(parts[bucket])
        return sums

    def _window_stats(self, buckets: dict[tuple[int, int], list[float]], spec: WindowSpec,
                      start: int, end: int) -> list[float] | None:
        width = spec.bucket_ms
        total = None
        for bucket_start in range(start, end, width):
            stats = buckets.get((width, bucket_start))
            if stats is not None:
                if total is None:
                    total = scoring.empty()
                scoring.merge_into(total, stats)
        return total

    def due_snapshots(self, partition: int, out: Outbox, emitted: list[dict],
                      now: float | None = None) -> int:
        """Rolling snapshots of changed scopes, at most one per scope per emit interval.

        Each document sent is also appended to ``emitted`` for the alerts and the read model.
        """
        memory = self.memory.get(partition)
        if memory is None or not memory.dirty or not memory.watermarks:
            return 0
        now = time.monotonic() if now is None else now
        interval = self.settings.emit_interval_seconds
        latest = self._latest(memory)
        now_ms = int(time.time() * 1000)
        sent = 0
        for scope in list(memory.dirty):
            if now - memory.last_emit.get(scope, -1e18) < interval:
                continue
            memory.dirty.discard(scope)
            memory.last_emit[scope] = now
            buckets = self._sums(memory, scope)
            for spec in self.specs:
                start, end = spec.rolling(latest)
                stats = self._window_stats(buckets, spec, start, end) or scoring.empty()
                document = snapshot.build(*scope, spec.name, start, end, False, stats, now_ms)
                emitted.append(document)
                out.add(self.settings.topic_scores,
                        snapshot.rolling_key(*scope, spec.name).encode(), orjson.dumps(document))
                sent += 1
        return sent

    def alert(self, partition: int, snapshots: list[dict]) -> tuple[dict[str, dict | None], list[dict]]:
        """Step every rule that watches one of the partition's new rolling snapshots.

        Returns the changed states and the events raised, for ``record_alerts``; nothing is
        written or sent here.
        """
        memory = self.memory.get(partition)
        if memory is None or not self.rules or not memory.watermarks:
            return {}, []
        as_of = self._latest(memory)
        now_ms = int(time.time() * 1000)
        changes: dict[str, dict | None] = {}
        raised: list[dict] = []
        for document in snapshots:
            for rule in self.rules:
                if not alerts.matches(rule, document):
                    continue
                key = alerts.state_key(rule, document)
                before = changes[key] if key in changes else memory.alerts.get(key)
                after, events = alerts.step(rule, before, document, as_of, now_ms)
                if after != before:
                    changes[key] = after
                raised.extend(events)
        return changes, raised

    def record_alerts(self, partition: int, changes: dict[str, dict | None], events: list[dict],
                      changelog: Outbox) -> None:
        """Write the new states together with each event as unsent, before any event is sent.

        A worker that dies before the events are confirmed leaves them unsent in the table; its
        successor sends only those the alerts topic does not have (``unsent``), so a crash at
        any point neither loses an event nor sends it twice.
        """
        memory = self.memory.get(partition)
        if memory is None or not (changes or events):
            return
        state = PartitionState(self.table, partition, changelog)
        for key, value in changes.items():
            if value is None:
                memory.alerts.pop(key, None)
                state.delete(ALERT + key.encode())
            else:
                memory.alerts[key] = value
                state.put(ALERT + key.encode(), value)
        for event in events:
            key = unsent_key(event)
            memory.unsent[key] = event
            state.put(key, event)
        state.commit()

    def unsent(self) -> dict[int, list[dict]]:
        """Alert events recorded but not confirmed sent, per partition."""
        return {partition: list(memory.unsent.values())
                for partition, memory in self.memory.items() if memory.unsent}

    def confirm_sent(self, partition: int, events: list[dict], changelog: Outbox) -> None:
        """The events are on the alerts topic: no successor needs to look for them."""
        memory = self.memory.get(partition)
        if memory is None or not events:
            return
        state = PartitionState(self.table, partition, changelog)
        for event in events:
            key = unsent_key(event)
            memory.unsent.pop(key, None)
            state.delete(key)
        state.commit()

    def finals(self, partition: int, out: Outbox, emitted: list[dict]) -> dict[str, int]:
        """Final snapshots of windows the closing watermark has passed; returns the new frontier.

        The caller sends ``out`` first and only then calls ``advance`` with the frontier, so a
        crash in between re-emits the same finals rather than losing them.
        """
        memory = self.memory.get(partition)
        now_ms = int(time.time() * 1000)
        closing = self.closing_watermark(memory, now_ms) if memory else None
        if closing is None:
            return {}
        limit = closing - self.settings.allowed_lateness_ms
        frontier: dict[str, int] = {}
        for spec in self.specs:
            done = memory.frontier.get(spec.name)
            if done is not None and limit <= done:
                continue
            for scope in list(memory.parts):
                buckets = self._sums(memory, scope)
                starts = [b for (w, b) in buckets if w == spec.bucket_ms]
                if not starts:
                    continue
                lo, hi = min(starts), max(starts) + spec.bucket_ms
                after = done if done is not None else lo - 1
                for end in spec.ends_between(after, limit, lo, hi):
                    stats = self._window_stats(buckets, spec, end - spec.size_ms, end)
                    if stats is None:
                        continue
                    start = end - spec.size_ms
                    document = snapshot.build(*scope, spec.name, start, end, True, stats, now_ms)
                    emitted.append(document)
                    out.add(self.settings.topic_scores,
                            snapshot.final_key(*scope, spec.name, start).encode(), orjson.dumps(document))
            frontier[spec.name] = limit - limit % spec.step_ms
        return frontier

    def advance(self, partition: int, frontier: dict[str, int], changelog: Outbox) -> None:
        """Record the finals as done and drop buckets no open window needs."""
        memory = self.memory.get(partition)
        if memory is None or not frontier:
            return
        memory.frontier.update(frontier)
        state = PartitionState(self.table, partition, changelog)
        self._put_meta(state, memory)
        for scope in list(memory.parts):
            buckets = memory.parts[scope]
            sums = memory.sums.get(scope, {})
            stale = memory.stale.get(scope, set())
            for width, start in list(buckets):
                if self._closed_for_width(memory, width, start):
                    del buckets[(width, start)]
                    sums.pop((width, start), None)
                    stale.discard((width, start))
                    state.delete(_bucket_key(scope, width, start))
            if not buckets:
                del memory.parts[scope]
                memory.sums.pop(scope, None)
                memory.stale.pop(scope, None)
                memory.dirty.discard(scope)
                memory.last_emit.pop(scope, None)
        state.commit()


def unsent_key(event: dict) -> bytes:
    """Where an alert event waits in the table until it is confirmed sent."""
    return UNSENT + f"{event['alert_id']}/{event['status']}".encode()


def _merge(entry: dict) -> list[float]:
    """The bucket's value: the sum over input partitions, in a fixed order."""
    total = scoring.empty()
    for source in sorted(entry, key=int):
        scoring.merge_into(total, entry[source][2])
    return total

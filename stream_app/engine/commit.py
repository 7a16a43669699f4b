"""The order of writes, sends and acknowledgements: the one place exactness rests on.

For every batch:

1. both stages compute their results in memory (nothing leaves the process);
2. the state writes go to the changelog topics, and are awaited;
3. only then to the local stores, with the changelog offset they reach (a store is never ahead of
   its changelog, so a restarted worker keeps its store and reads only the changelog after it);
4. then partials and dead letters, awaited;
5. then snapshots and alerts (``emit``), each step awaited before the state that records it;
6. and the caller acknowledges the input only when ``handle`` returns.

A crash anywhere leaves the changelog holding a prefix of the writes; replaying the input from the
committed offsets then changes only what that prefix lacks (versions by source offset).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from stream_app.alerts import alert_key
from stream_app.contract import parse_timestamp_ms
from stream_app.engine import codec
from stream_app.engine.intake import InputRecord, Intake, IntakeResult
from stream_app.engine.records import INTERACTION, SURVEY
from stream_app.engine.rollup import Document, Rollup
from stream_app.engine.store import Store, Write
from stream_app.keys import kafka_key

log = logging.getLogger(__name__)

# An alert event's ``at`` is when it was decided, before it was sent; the margin covers a broker clock
# (LogAppendTime) behind ours.
READ_BACK_MARGIN_MS = 5 * 60_000
INTAKE_TABLE, ROLLUP_TABLE = "intake", "rollup"

Headers = Sequence[tuple[str, bytes]]
Listener = Callable[[list[Document], list[Document]], None]


class Outbox(Protocol):
    """Records to send as one group; ``flush`` returns once the broker has all of them."""

    def add(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None,
            headers: Headers | None = None) -> None: ...

    async def flush(self) -> dict[tuple[str, int], int]:
        """Send and wait; returns the last offset written per (topic, partition)."""
        ...


class Ports(Protocol):
    """What the commit order needs from Kafka and the local stores."""

    def outbox(self) -> Outbox: ...

    def store(self, table: str, partition: int) -> Store: ...

    def changelog_topic(self, table: str) -> str: ...

    async def alert_events_since(self, since_ms: int) -> list[bytes]:
        """Values on the alerts topic stamped at or after ``since_ms`` (after a crash only)."""
        ...


@dataclass(frozen=True, slots=True)
class Topics:
    interactions: str
    surveys: str
    partials: str
    scores: str
    alerts: str
    dead_letter: str


class Pipeline:
    """Runs both stages over each batch, under one lock shared with the snapshot timer."""

    def __init__(self, ports: Ports, topics: Topics, intake: Intake, rollup: Rollup) -> None:
        self.ports = ports
        self.topics = topics
        self.intake = intake
        self.rollup = rollup
        self.lock = asyncio.Lock()
        self.stale = False
        self.listeners: list[Listener] = []  # called once snapshots and alerts are on Kafka: serving copies

    def on_rebalance(self) -> None:
        self.stale = True

    def _refresh(self) -> None:
        if self.stale:
            self.intake.forget()
            self.rollup.forget()
            self.stale = False

    async def handle(self, batch: dict[tuple[str, int], Sequence[InputRecord]],
                     now: Callable[[], float] = time.time) -> dict[tuple[str, str], int]:
        """One fetched batch, all its writes and sends awaited; returns (topic, outcome) counts."""
        topics = self.topics
        outcomes: dict[tuple[str, str], int] = {}
        async with self.lock:
            self._refresh()
            changelog: dict[tuple[str, int], list[Write]] = {}
            out = self.ports.outbox()
            partitions = sorted({p for (t, p) in batch if t in (topics.interactions, topics.surveys)})
            for partition in partitions:
                result = self._intake(partition, batch.get((topics.interactions, partition), ()),
                                      batch.get((topics.surveys, partition), ()), int(now() * 1000))
                changelog[(INTAKE_TABLE, partition)] = result.changelog
                self._outputs(partition, result, out, outcomes)
            for (topic, partition), records in sorted(batch.items()):
                if topic == topics.partials:
                    writes, late = self._rollup(partition, [(r.key, r.value) for r in records])
                    changelog[(ROLLUP_TABLE, partition)] = writes
                    if late:
                        outcomes[(topic, "after_final")] = outcomes.get((topic, "after_final"), 0) + late
            await self._persist(changelog)
            await out.flush()
            await self._emit(now)
        return outcomes

    async def tick(self, assigned_rollup: Sequence[int], now: Callable[[], float] = time.time) -> None:
        """Throttled rolling snapshots and finals, also when no records arrive (idle partitions)."""
        async with self.lock:
            self._refresh()
            for partition in assigned_rollup:
                self._load(self.rollup, ROLLUP_TABLE, partition)
            await self._emit(now)

    def _intake(self, partition: int, interactions: Sequence[InputRecord], surveys: Sequence[InputRecord],
                now_ms: int) -> IntakeResult:
        self._load(self.intake, INTAKE_TABLE, partition)
        return self.intake.process(partition, interactions, surveys, now_ms)

    def _rollup(self, partition: int,
                messages: list[tuple[bytes | None, bytes | None]]) -> tuple[list[Write], int]:
        self._load(self.rollup, ROLLUP_TABLE, partition)
        return self.rollup.process(partition, messages)

    def _load(self, stage: Intake | Rollup, table: str, partition: int) -> None:
        """A stage takes a partition on from its store the first time it meets it (after a rebalance)."""
        if not stage.loaded(partition):
            stage.load(partition, self.ports.store(table, partition).items())

    def _outputs(self, partition: int, result: IntakeResult, out: Outbox,
                 outcomes: dict[tuple[str, str], int]) -> None:
        topics = self.topics
        source = {INTERACTION: topics.interactions, SURVEY: topics.surveys}
        for rollup_partition, key, value in result.partials:
            out.add(topics.partials, key, value, rollup_partition)
        for dead in result.dead_letters:
            headers = [
                ("reason", dead.reason.encode()),
                ("detail", dead.detail[:500].encode()),
                ("source_topic", source[dead.kind].encode()),
                ("source_partition", str(partition).encode()),
                ("source_offset", str(dead.offset).encode()),
            ]
            out.add(topics.dead_letter, dead.key, dead.value, None, headers)
        for (kind, outcome), count in result.outcomes.items():
            counted = (source[kind], outcome)
            outcomes[counted] = outcomes.get(counted, 0) + count

    async def _persist(self, changelog: dict[tuple[str, int], list[Write]]) -> None:
        """Changelog first and awaited, then the local stores with the offset the changelog reached."""
        pending = {k: w for k, w in changelog.items() if w}
        if not pending:
            return
        box = self.ports.outbox()
        for (table, partition), writes in pending.items():
            topic = self.ports.changelog_topic(table)
            for key, value in writes:
                box.add(topic, key, value, partition)
        offsets = await box.flush()
        for (table, partition), writes in pending.items():
            offset = offsets.get((self.ports.changelog_topic(table), partition))
            self.ports.store(table, partition).write(writes, offset)

    async def _emit(self, now: Callable[[], float]) -> None:
        """Snapshots, then rule states with their events as unsent, then the events, then the
        frontier and the confirmations: each step on the broker before the next is recorded."""
        alerts = await self._send_unconfirmed_alerts()
        out = self.ports.outbox()
        now_ms = int(now() * 1000)
        clock = time.monotonic()
        snapshots: list[Document] = []
        decisions, frontiers = {}, {}
        for partition in list(self.rollup.partitions):
            rolling = self.rollup.rolling(partition, clock, now_ms)
            decisions[partition] = self.rollup.judge(partition, now_ms)
            finals, frontiers[partition] = self.rollup.finals(partition, now_ms)
            snapshots.extend(rolling)
            snapshots.extend(finals)
        for document in snapshots:
            out.add(self.topics.scores, _score_key(document), codec.encode_document(document))
        await out.flush()
        await self._persist({(ROLLUP_TABLE, p): self.rollup.record(p, d) for p, d in decisions.items()})
        sent = self.ports.outbox()
        for decision in decisions.values():
            for event in decision.events:
                self._add_alert(sent, event)
                alerts.append(event)
        await sent.flush()
        self._notify(snapshots, alerts)
        await self._persist({
            (ROLLUP_TABLE, p): [*self.rollup.confirm(p), *self.rollup.advance(p, frontiers[p])]
            for p in decisions
        })

    def _notify(self, snapshots: list[Document], alerts: list[Document]) -> None:
        for listener in self.listeners:
            try:
                listener(snapshots, alerts)
            except Exception:  # noqa: BLE001 - a serving copy must never stop the pipeline
                log.exception("snapshot listener %r failed; Kafka has the data", listener)

    def _add_alert(self, out: Outbox, event: Document) -> None:
        out.add(self.topics.alerts, alert_key(event).encode(), codec.encode_document(event))

    async def _send_unconfirmed_alerts(self) -> list[Document]:
        """Decisions a crashed worker recorded but did not confirm: send the events the topic lacks,
        then confirm them (which writes their rule states).

        Returns their events for the read model, which the crashed worker may not have reached.
        """
        unsent = self.rollup.unsent()
        if not unsent:
            return []
        unconfirmed = [event for events in unsent.values() for event in events]
        if unconfirmed:
            published = await self._published_since(min(parse_timestamp_ms(e["at"]) for e in unconfirmed))
            sent = self.ports.outbox()
            missing = [e for e in unconfirmed if (e["alert_id"], e["status"]) not in published]
            for event in missing:
                self._add_alert(sent, event)
            await sent.flush()
            log.warning("alert events left unconfirmed by a previous worker: %d already on %s, %d sent now",
                        len(unconfirmed) - len(missing), self.topics.alerts, len(missing))
        await self._persist({(ROLLUP_TABLE, p): self.rollup.confirm(p) for p in unsent})
        return unconfirmed

    async def _published_since(self, since_ms: int) -> set[tuple[str, str]]:
        """(alert_id, status) of the events on the alerts topic since about ``since_ms``."""
        published = set()
        for value in await self.ports.alert_events_since(since_ms - READ_BACK_MARGIN_MS):
            try:
                event = codec.decode_document(value)
                published.add((event["alert_id"], event["status"]))
            except (ValueError, KeyError, TypeError):
                continue
        return published


def _score_key(document: Document) -> bytes:
    """``{tenant}/{dimension}/{key}/{window}``, and ``/{window_start}`` for a closed window."""
    scope = (document["tenant"], document["dimension"], document["key"], document["window"])
    return kafka_key(*scope, *((document["window_start"],) if document["final"] else ())).encode()

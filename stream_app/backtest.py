"""``python -m stream_app backtest``: the alert events a rules file would have raised over history.

It runs the worker's own engine (validation, join, windows, rules judged in event time) in memory
(``stream_app.engine.memory``): nothing is written to Kafka or Redis. The history is the input topics
from their first offset, or a JSON Lines file in stream order, laid out on the same partitions as the
worker's producers would (murmur2 on the key), so the same records give the same decisions. Alert
events come out exactly as on ``cx.alerts.v1``, with ``at`` the event time of the decision.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import murmur2

from stream_app.contract import parse_timestamp_ms
from stream_app.engine import codec
from stream_app.engine.commit import INTAKE_TABLE, ROLLUP_TABLE, Pipeline, Topics
from stream_app.engine.intake import Intake, IntakeConfig
from stream_app.engine.memory import MemoryLog, MemoryPorts, step
from stream_app.engine.rollup import Rollup, RollupConfig
from stream_app.errors import ConfigError, InvalidEvent
from stream_app.rules import Rule, load_rules
from stream_app.settings import Settings
from stream_app.snapshot import rfc3339
from stream_app.topics import partition_count

Input = tuple[str, int, bytes | None, bytes]  # topic, partition, key, value
TOPICS = Topics("interactions", "surveys", "partials", "scores", "alerts", "dead-letter")


@dataclass(frozen=True, slots=True)
class Bounds:
    """``--from`` / ``--to``: event times of the events read, inclusive; None is open."""

    from_ms: int | None = None
    to_ms: int | None = None

    def admit(self, value: bytes) -> bool:
        """A record whose time cannot be read is kept: the engine dead-letters it as the worker would."""
        if self.from_ms is None and self.to_ms is None:
            return True
        event_ms = _event_ms(value)
        return event_ms is None or ((self.from_ms is None or event_ms >= self.from_ms)
                                    and (self.to_ms is None or event_ms <= self.to_ms))


def _event_ms(value: bytes) -> int | None:
    """An event's own time (answered_at or closed_at), None when it cannot be read."""
    try:
        event = orjson.loads(value)
        return parse_timestamp_ms(event.get("answered_at") or event.get("closed_at"), "time")
    except (orjson.JSONDecodeError, AttributeError, TypeError, InvalidEvent):
        return None


def partition_of(key: bytes, partitions: int) -> int:
    """The Java client's default partitioner, which the worker's producers use for keyed records."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def events_file(path: Path, partitions: int, bounds: Bounds) -> Iterator[Input]:
    """One event a line; a line with ``answers`` is a survey. Keyed as the simulator keys them."""
    with path.open("rb") as lines:
        for line in lines:
            value = line.strip()
            if not value:
                continue
            try:
                event = orjson.loads(value)
            except orjson.JSONDecodeError:
                event = None
            if not isinstance(event, dict):
                event = {}
            key_text = event.get("interaction_id") or event.get("event_id")
            key = str(key_text).encode() if key_text else b""
            topic = TOPICS.surveys if "answers" in event else TOPICS.interactions
            if bounds.admit(value):
                yield topic, partition_of(key, partitions), key or None, value


async def input_topics(settings: Settings, bounds: Bounds) -> list[Input]:
    """Both input topics from their first offset to the end they have now, partition by partition."""
    names = {settings.topic_interactions: TOPICS.interactions, settings.topic_surveys: TOPICS.surveys}
    tps = [TopicPartition(topic, p) for topic in names for p in range(await partition_count(settings, topic))]
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                enable_auto_commit=False, client_id=f"{settings.app_id}-backtest",
                                **settings.kafka_client_options())
    found: list[Input] = []
    try:
        await consumer.start()
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for tp, messages in batch.items():
                found.extend((names[tp.topic], tp.partition, m.key, m.value) for m in messages
                             if m.offset < ends[tp] and m.value is not None and bounds.admit(m.value))
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return found


async def run(settings: Settings, rules: tuple[Rule, ...],
              inputs: Iterable[Input]) -> tuple[list[dict], int | None]:
    """The alert events of the rules over the inputs, in the order the engine decided them, and the
    last step boundary judged (where a still-firing episode's duration ends)."""
    ports = MemoryPorts(MemoryLog(), TOPICS.alerts)
    log = ports.log
    log.dropped = frozenset({TOPICS.scores, TOPICS.dead_letter, *(ports.changelog_topic(table)
                                                                  for table in (INTAKE_TABLE, ROLLUP_TABLE))})
    for topic, partition, key, value in inputs:
        log.append(topic, partition, key, value)
    intake = Intake(IntakeConfig.from_settings(settings))
    rollup = Rollup(dataclasses.replace(RollupConfig.from_settings(settings), at_event_time=True), rules)
    pipeline = Pipeline(ports, TOPICS, intake, rollup)
    positions: dict[tuple[str, int], int] = {}
    while await step(pipeline, log, TOPICS, settings.partitions, positions, settings.batch_max_records,
                     now=time.time):
        pass
    events = [codec.decode_document(r.value) for r in log.read(TOPICS.alerts, 0, 0) if r.value is not None]
    judged = [t for state in rollup.partitions.values() for t in state.meta.judged.values()]
    return events, max(judged, default=None)


@dataclass(frozen=True, slots=True)
class Episode:
    rule: str
    scope: str  # tenant/dimension/key
    since_ms: int
    resolved_ms: int | None  # the step that resolved it; None: still firing at the end of the history


def episodes(events: list[dict]) -> list[Episode]:
    """One per firing event, closed by the resolved event with its alert_id."""
    resolved = {e["alert_id"]: parse_timestamp_ms(e["at"], "at") for e in events if e["status"] == "resolved"}
    return [Episode(e["rule"], f"{e['tenant']}/{e['dimension']}/{e['key']}",
                    parse_timestamp_ms(e["since"], "since"), resolved.get(e["alert_id"]))
            for e in events if e["status"] == "firing"]


def report(events: list[dict], rules: tuple[Rule, ...], end_ms: int | None) -> str:
    """Per rule its episodes (scope, since, resolved or still firing, duration), then a summary."""
    found = episodes(events)
    lines: list[str] = []
    hours = 0.0
    for rule in rules:
        mine = [e for e in found if e.rule == rule.name]
        lines.append(f"{rule.name} ({rule.metric} {rule.comparison} {rule.threshold:g} over {rule.window}): "
                     f"{len(mine)} episode{'' if len(mine) == 1 else 's'}")
        for e in mine:
            until = e.resolved_ms if e.resolved_ms is not None else end_ms
            duration = "" if until is None else f", {(until - e.since_ms) / 60_000:.0f} min"
            state = f"resolved {rfc3339(e.resolved_ms)}" if e.resolved_ms is not None else "still firing"
            lines.append(f"  {e.scope}: since {rfc3339(e.since_ms)}, {state}{duration}")
            hours += 0.0 if until is None else (until - e.since_ms) / 3_600_000
    scopes = len({(e.rule, e.scope) for e in found})
    lines.append(f"summary: {len(found)} episodes, {scopes} rule-scopes, {hours:.1f} hours firing")
    return "\n".join(lines)


def _time(text: str) -> int:
    try:
        return parse_timestamp_ms(text, "time")
    except InvalidEvent as exc:
        raise argparse.ArgumentTypeError(exc.detail) from None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stream_app backtest",
        description="The alert events a rules file would have raised over history. Writes nothing to Kafka "
                    "or Redis; the other settings come from the CX_* variables, as for the worker.")
    parser.add_argument("--rules", required=True, type=Path, help="the rules file (YAML), as CX_RULES_FILE")
    parser.add_argument("--events", type=Path, help="JSON Lines, one event a line, in stream order "
                                                    "(default: the input topics from their first offset)")
    parser.add_argument("--from", dest="from_ms", type=_time, help="only events at or after this (RFC 3339)")
    parser.add_argument("--to", dest="to_ms", type=_time, help="only events at or before this (RFC 3339)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    settings = Settings()
    try:
        rules = load_rules(args.rules, windows=[s.name for s in settings.window_specs],
                           dimensions=settings.dimension_names)
    except ConfigError as exc:
        print(f"cx backtest: {exc}", file=sys.stderr)
        return 2
    bounds = Bounds(args.from_ms, args.to_ms)
    if args.events is not None:
        inputs: list[Input] = list(events_file(args.events, settings.partitions, bounds))
    else:
        inputs = asyncio.run(input_topics(settings, bounds))
    events, end_ms = asyncio.run(run(settings, rules, inputs))
    if args.format == "json":
        for event in events:
            sys.stdout.write(orjson.dumps(event).decode() + "\n")
    else:
        print(report(events, rules, end_ms))
    return 0


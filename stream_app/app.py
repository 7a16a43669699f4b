"""The one place where the worker is wired: Faust app, topics, tables, the batch path, the timer.

Records of the two input topics go, a fetched batch at a time, to the intake stage; the partial
states it produces go through the partials topic to the rollup stage, which emits snapshots.
Each batch is acknowledged to Faust only after all its writes are on the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable
from typing import Any

import faust
import orjson
from aiokafka.errors import KafkaError
from faust.types import TP

from stream_app.alerts import alert_key
from stream_app.contract import parse_timestamp_ms
from stream_app.faust_bridge import BatchApp, check_pinned_faust
from stream_app.intake import Intake, Outcomes
from stream_app.rollup import Rollup
from stream_app.rules import Rule
from stream_app.settings import Settings
from stream_app.sinks import prometheus
from stream_app.sinks.kafka import Outbox, read_since
from stream_app.sinks.redis import ReadModel, Reader
from stream_app.topics import INTAKE_TABLE, ROLLUP_TABLE
from stream_app.web import register as register_api

log = logging.getLogger(__name__)

# An event's ``at`` is when it was decided, before it was sent; the margin covers a broker clock
# (LogAppendTime) behind ours.
READ_BACK_MARGIN_MS = 5 * 60_000


class Pipeline:
    """Runs both stages over each batch, under one lock shared with the snapshot timer."""

    def __init__(self, app: BatchApp, settings: Settings, intake: Intake, rollup: Rollup) -> None:
        self.app = app
        self.settings = settings
        self.intake = intake
        self.rollup = rollup
        self.lock = asyncio.Lock()
        self.stale = False
        self.recovered = False  # tables hold the current assignment's state (set after each rebalance)
        self.input_topics = {settings.topic_interactions, settings.topic_surveys}
        # Called with (snapshots, alert events) once they are on Kafka: serving copies, never the truth.
        self.listeners: list[Callable[[list[dict], list[dict]], None]] = []

    def on_rebalance(self, *_: Any, **__: Any) -> None:
        self.stale = True
        self.recovered = False

    async def on_recovered(self, *_: Any, **__: Any) -> None:
        self.recovered = True

    @property
    def ready(self) -> bool:
        """Tables hold the current assignment's state: what /readyz and cx_table_recovered say."""
        return self.recovered and not self.app.rebalancing

    def _refresh(self) -> None:
        if self.stale:
            self.intake.forget()
            self.rollup.forget()
            self.stale = False

    async def handle(self, batch: dict[TP, list[Any]]) -> None:
        started = time.perf_counter()
        outcomes = Outcomes()
        async with self.lock:
            self._refresh()
            changelog, out = Outbox(self.app.producer), Outbox(self.app.producer)
            inputs: dict[int, list[tuple[str, Any]]] = {}
            # Interactions before surveys, so a survey in the same batch as its interaction joins at once.
            for tp in sorted(batch, key=lambda t: (t.topic != self.settings.topic_interactions, t.partition)):
                if tp.topic in self.input_topics:
                    inputs.setdefault(tp.partition, []).extend((tp.topic, m) for m in batch[tp])
            for partition, records in inputs.items():
                self.intake.process(partition, records, changelog, out, outcomes)
            for tp, messages in batch.items():
                if tp.topic == self.settings.topic_partials:
                    self.rollup.process(tp.partition, messages, changelog, outcomes)
            await changelog.flush()
            await out.flush()
            await self._emit()
        prometheus.record_batch(outcomes.counts, sum(len(m) for m in batch.values()),
                                time.perf_counter() - started)

    async def tick(self) -> None:
        """Throttled rolling snapshots and finals, also when no records arrive (idle partitions)."""
        if not self.recovered or self.app.rebalancing:
            return  # a partition loaded mid-recovery would be missing state
        async with self.lock:
            self._refresh()
            for tp in self.app.assignor.assigned_actives():
                if tp.topic == self.settings.topic_partials:
                    self.rollup.load(tp.partition)
            await self._emit()

    async def _emit(self) -> None:
        alerts = await self._send_unconfirmed_alerts()
        out = Outbox(self.app.producer)
        frontiers, raised = {}, {}
        snapshots: list[dict] = []
        for partition in self.rollup.loaded():
            rolling: list[dict] = []
            self.rollup.due_snapshots(partition, out, rolling)
            raised[partition] = self.rollup.alert(partition, rolling)
            snapshots.extend(rolling)
            frontiers[partition] = self.rollup.finals(partition, out, snapshots)
        await out.flush()
        # Alert states and events go to the changelog first, then the events out (see record_alerts).
        held, sent = Outbox(self.app.producer), Outbox(self.app.producer)
        for partition, (changes, events) in raised.items():
            self.rollup.record_alerts(partition, changes, events, held)
            for event in events:
                self._add_alert(sent, event)
                alerts.append(event)
        await held.flush()
        await sent.flush()
        for listener in self.listeners:
            try:
                listener(snapshots, alerts)
            except Exception:  # noqa: BLE001 - a serving copy must never stop the pipeline
                log.exception("snapshot listener %r failed; Kafka has the data", listener)
        changelog = Outbox(self.app.producer)
        for partition, frontier in frontiers.items():
            self.rollup.advance(partition, frontier, changelog)
            self.rollup.confirm_sent(partition, raised[partition][1], changelog)
        await changelog.flush()

    def _add_alert(self, out: Outbox, event: dict) -> None:
        out.add(self.settings.topic_alerts, alert_key(event).encode(), orjson.dumps(event))

    async def _send_unconfirmed_alerts(self) -> list[dict]:
        """Alert events a crashed worker recorded but may not have sent: send those the topic lacks.

        Returns all of them for the read model, which the crashed worker may not have reached.
        """
        unsent = self.rollup.unsent()
        if not unsent:
            return []
        oldest_ms = min(parse_timestamp_ms(event["at"]) for events in unsent.values() for event in events)
        while True:  # the broker away: nothing else can be done either, so wait for it like the rest
            try:
                records = await read_since(self.settings, self.settings.topic_alerts,
                                           oldest_ms - READ_BACK_MARGIN_MS)
                break
            except KafkaError as exc:
                log.warning("cannot read %s back yet (%s); retrying in 1 s", self.settings.topic_alerts, exc)
                await asyncio.sleep(1.0)
        published = set()
        for record in records:
            with contextlib.suppress(orjson.JSONDecodeError, TypeError, KeyError):
                event = orjson.loads(record.value)
                published.add((event["alert_id"], event["status"]))
        sent, changelog = Outbox(self.app.producer), Outbox(self.app.producer)
        unconfirmed: list[dict] = []
        for partition, events in unsent.items():
            for event in events:
                if (event["alert_id"], event["status"]) not in published:
                    self._add_alert(sent, event)
            self.rollup.confirm_sent(partition, events, changelog)
            unconfirmed.extend(events)
        missing = len(sent)
        await sent.flush()
        await changelog.flush()
        log.warning("alert events left unconfirmed by a previous worker: %d already on %s, %d sent now",
                    len(unconfirmed) - missing, self.settings.topic_alerts, missing)
        return unconfirmed


def _table_options(settings: Settings) -> dict[str, Any]:
    """RocksDB sized for many partitions in one process: Faust's defaults (64 MiB write buffers, three
    of them, and a 2 GiB block cache, per partition) let memory grow with the data, to over 1 GiB
    for a million events; local state is rebuilt from the changelog, so small buffers cost little."""
    store = {  # a fresh dict per table: Faust's store pops keys from the one it is given
        "write_buffer_size": settings.store_write_buffer_mib * 1024 * 1024,
        "max_write_buffer_number": 2,
        "block_cache_size": settings.store_block_cache_mib * 1024 * 1024,
    }
    return {"partitions": settings.partitions, "key_type": bytes, "value_type": bytes, "options": store}


def create_app(settings: Settings, rules: tuple[Rule, ...] = ()) -> BatchApp:
    check_pinned_faust()
    data_dir = settings.data_dir.resolve()
    app = BatchApp(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=_credentials(settings),
        store="rocksdb://",
        datadir=str(data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=settings.commit_interval_seconds,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=max(0.5, settings.session_timeout_seconds / 5),
        broker_max_poll_records=settings.batch_max_records,
        stream_recovery_delay=0.5,
        producer_max_request_size=4 * 1024 * 1024,
        producer_max_batch_size=512 * 1024,
        producer_acks=-1,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_transport=f"tcp://{settings.web_host}:{settings.web_port}",
    )
    app.fetch_max_wait_ms = max(1, round(settings.fetch_max_wait_seconds * 1000))
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    sources = app.topic(settings.topic_interactions, settings.topic_surveys, settings.topic_partials,
                        partitions=settings.partitions, **raw)
    intake_table = app.Table(INTAKE_TABLE, **_table_options(settings))
    rollup_table = app.Table(ROLLUP_TABLE, **_table_options(settings))
    pipeline = Pipeline(
        app, settings,
        Intake(settings, intake_table, {settings.topic_interactions: "i", settings.topic_surveys: "s"}),
        Rollup(settings, rollup_table, rules),
    )
    prometheus.declare_rules((rule.name, rule.severity) for rule in rules)
    read_model = ReadModel(settings)
    pipeline.listeners.append(read_model.publish)
    app.task(read_model.run)

    @app.agent(sources, name="cx-batches")
    async def subscription(stream: faust.StreamT) -> None:
        """Holds the subscription so Faust assigns the partitions; records arrive via the batch path."""
        async for _ in stream:
            pass

    app.route_batches(frozenset(sources.topics), pipeline.handle)
    app.on_partitions_revoked.connect(pipeline.on_rebalance)
    app.on_partitions_assigned.connect(pipeline.on_rebalance)
    app.on_rebalance_complete.connect(pipeline.on_recovered)
    app.timer(min(1.0, settings.emit_interval_seconds))(pipeline.tick)
    pipeline.listeners.append(prometheus.observe)
    health = prometheus.PipelineHealth(app, lambda: pipeline.ready, settings.topic_partials,
                                       settings.partitions)
    prometheus.register_health(health, settings.app_id)
    app.on_partitions_assigned.connect(health.on_assigned)
    app.on_rebalance_complete.connect(health.on_recovered)

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ready = pipeline.ready
        return web.json({"ready": ready}, status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        body, content_type = prometheus.exposition()
        return web.bytes(body, content_type=content_type)

    register_api(app, Reader(read_model.client))

    app.cx_pipeline = pipeline  # type: ignore[attr-defined]
    return app


def reset_local_tables(app: faust.App) -> None:
    """Recover tables from their changelogs, never from a local copy a crash may have left ahead."""
    shutil.rmtree(app.conf.tabledir, ignore_errors=True)


def _credentials(settings: Settings) -> Any:
    """Faust's form of the same security options every other client gets."""
    options = settings.kafka_client_options()
    protocol = options["security_protocol"]
    if protocol.startswith("SASL_"):
        return faust.SASLCredentials(
            username=options["sasl_plain_username"] or "", password=options.get("sasl_plain_password", ""),
            mechanism=options["sasl_mechanism"], ssl_context=options.get("ssl_context"),
        )
    if protocol == "SSL":
        return faust.SSLCredentials(options["ssl_context"])
    return None

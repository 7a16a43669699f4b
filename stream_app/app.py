"""The one place where the worker is wired: Faust app, topics, tables, the engine, the timer.

Records of the two input topics go, a fetched batch at a time, to the engine's intake stage; the
partial states it produces go through the partials topic to the rollup stage, which emits
snapshots (``stream_app.engine.commit`` orders every write and send). Faust keeps group membership,
partition assignment, the changelog topics, recovery into RocksDB and the web server.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from typing import Any

import faust
from aiokafka.errors import KafkaError
from faust.types import TP

from stream_app.engine.commit import INTAKE_TABLE, ROLLUP_TABLE, Pipeline, Topics
from stream_app.engine.intake import InputRecord, Intake, IntakeConfig
from stream_app.engine.rollup import Rollup, RollupConfig
from stream_app.faust_bridge import BatchApp, RocksPartition, check_pinned_faust, local_checkpoints
from stream_app.rules import Rule
from stream_app.settings import Settings
from stream_app.sinks import prometheus
from stream_app.sinks.kafka import Outbox, read_since
from stream_app.sinks.redis import Reader, ReadModel
from stream_app.topics import end_offsets
from stream_app.web import register as register_api

log = logging.getLogger(__name__)

# Changelog segments roll often enough for compaction to keep what a new owner reads near the live
# state (the broker never compacts the active segment).
CHANGELOG_CONFIG = {"segment.bytes": str(32 * 1024 * 1024), "segment.ms": str(10 * 60_000),
                    "min.cleanable.dirty.ratio": "0.2", "delete.retention.ms": str(60 * 60_000)}


class FaustPorts:
    """The engine's commit order, on Faust's producer and table partitions."""

    def __init__(self, app: BatchApp, settings: Settings, tables: dict[str, Any]) -> None:
        self.app = app
        self.settings = settings
        self.tables = tables
        self._stores: dict[tuple[str, int], RocksPartition] = {}

    def outbox(self) -> Outbox:
        return Outbox(self.app.producer)

    def store(self, table: str, partition: int) -> RocksPartition:
        found = self._stores.get((table, partition))
        if found is None:
            found = self._stores[(table, partition)] = RocksPartition(self.tables[table], partition)
        return found

    def forget_stores(self) -> None:
        self._stores.clear()  # Faust reopens a partition's database after a rebalance

    def changelog_topic(self, table: str) -> str:
        return self.tables[table].changelog_topic.get_topic_name()

    async def alert_events_since(self, since_ms: int) -> list[bytes]:
        while True:  # the broker away: nothing else can be done either, so wait for it like the rest
            try:
                records = await read_since(self.settings, self.settings.topic_alerts, since_ms)
                return [r.value for r in records if r.value is not None]
            except KafkaError as exc:
                log.warning("cannot read %s back yet (%s); retrying in 1 s", self.settings.topic_alerts, exc)
                await asyncio.sleep(1.0)


def _heap_trimmer() -> Callable[[], object] | None:
    """glibc keeps freed memory in its arenas: a batch frees tens of MiB of short-lived objects and
    buffers, and without a trim an idle worker keeps them (measured after a 300,000-record backlog:
    454 MiB without, 387 MiB with a trim every 5 s; the peak during the backlog moved little). None
    where the C library has no ``malloc_trim`` (not glibc)."""
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    return None if trim is None else (lambda: trim(0))


class Worker:
    """Faust's signals and timer, adapted to the engine's pipeline."""

    TRIM_EVERY_SECONDS = 5.0

    def __init__(self, app: BatchApp, settings: Settings, ports: FaustPorts, pipeline: Pipeline) -> None:
        self.app = app
        self.settings = settings
        self.ports = ports
        self.pipeline = pipeline
        self.recovered = False  # tables hold the current assignment's state (set after each rebalance)
        self._trim = _heap_trimmer()
        self._trimmed_at = time.monotonic()

    def on_rebalance(self, *_: Any, **__: Any) -> None:
        self.pipeline.on_rebalance()
        self.ports.forget_stores()
        self.recovered = False

    async def on_recovered(self, *_: Any, **__: Any) -> None:
        self.recovered = True

    @property
    def ready(self) -> bool:
        """Tables hold the current assignment's state: what /readyz and cx_table_recovered say."""
        return self.recovered and not self.app.rebalancing

    async def handle(self, batch: dict[TP, list[Any]]) -> None:
        started = time.perf_counter()
        records: dict[tuple[str, int], Sequence[InputRecord]] = {(tp.topic, tp.partition): m
                                                                 for tp, m in batch.items()}
        outcomes = await self.pipeline.handle(records)
        prometheus.record_batch(outcomes, sum(len(m) for m in batch.values()), time.perf_counter() - started)

    async def tick(self) -> None:
        """Throttled rolling snapshots and finals, also when no records arrive (idle partitions)."""
        if not self.ready:
            return  # a partition loaded mid-recovery would be missing state
        owned = [tp.partition for tp in self.app.assignor.assigned_actives()
                 if tp.topic == self.settings.topic_partials]
        await self.pipeline.tick(owned)
        if self._trim is not None and time.monotonic() - self._trimmed_at >= self.TRIM_EVERY_SECONDS:
            self._trim()
            self._trimmed_at = time.monotonic()


async def drop_stores_ahead_of_changelog(app: BatchApp, settings: Settings) -> list[str]:
    """Delete the local stores that claim more than their changelog holds, before Faust opens them.

    A store is only ever written after its changelog, so this happens only when the changelog topic
    was deleted and made again while the data dir was kept; Faust would then refuse to recover. The
    changelog is the truth: the partition is rebuilt from it. Returns what was dropped, for the log.
    """
    dropped = []
    for name in (INTAKE_TABLE, ROLLUP_TABLE):
        table = app.tables[name]
        checkpoints = local_checkpoints(table, settings.partitions)
        if not checkpoints:
            continue
        ends = await end_offsets(settings, table.changelog_topic.get_topic_name())
        for partition, (path, offset) in checkpoints.items():
            if offset >= ends.get(partition, 0):
                shutil.rmtree(path, ignore_errors=True)
                dropped.append(f"{name}-{partition} (checkpoint {offset}, changelog ends at "
                               f"{ends.get(partition, 0)})")
    return dropped


def _table_options(settings: Settings) -> dict[str, Any]:
    """RocksDB sized for many partitions in one process: Faust's defaults (64 MiB write buffers, three
    of them, and a 2 GiB block cache, per partition) let memory grow with the data, to over 1 GiB
    for a million events. The engine keeps its live state in memory and writes each key once per
    flush, so small buffers cost little."""
    store = {  # a fresh dict per table: Faust's store pops keys from the one it is given
        "write_buffer_size": settings.store_write_buffer_mib * 1024 * 1024,
        "max_write_buffer_number": 2,
        "block_cache_size": settings.store_block_cache_mib * 1024 * 1024,
    }
    return {"partitions": settings.partitions, "key_type": bytes, "value_type": bytes, "options": store,
            "extra_topic_configs": dict(CHANGELOG_CONFIG)}


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
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
                           "value_serializer": "raw"}
    sources = app.topic(settings.topic_interactions, settings.topic_surveys, settings.topic_partials,
                        partitions=settings.partitions, **raw)
    tables = {name: app.Table(name, **_table_options(settings)) for name in (INTAKE_TABLE, ROLLUP_TABLE)}
    ports = FaustPorts(app, settings, tables)
    topics = Topics(settings.topic_interactions, settings.topic_surveys, settings.topic_partials,
                    settings.topic_scores, settings.topic_alerts, settings.topic_dead_letter)
    pipeline = Pipeline(ports, topics, Intake(IntakeConfig.from_settings(settings)),
                        Rollup(RollupConfig.from_settings(settings), rules))
    worker = Worker(app, settings, ports, pipeline)
    prometheus.declare_rules((rule.name, rule.severity) for rule in rules)
    read_model = ReadModel(settings)
    pipeline.listeners.append(read_model.publish)
    app.task(read_model.run)

    @app.agent(sources, name="cx-batches")
    async def subscription(stream: faust.StreamT) -> None:
        """Holds the subscription so Faust assigns the partitions; records arrive via the batch path."""
        async for _ in stream:
            pass

    app.route_batches(frozenset(sources.topics), worker.handle)
    app.on_partitions_revoked.connect(worker.on_rebalance)
    app.on_partitions_assigned.connect(worker.on_rebalance)
    app.on_rebalance_complete.connect(worker.on_recovered)
    app.timer(min(1.0, settings.emit_interval_seconds))(worker.tick)
    pipeline.listeners.append(prometheus.observe)
    health = prometheus.PipelineHealth(app, lambda: worker.ready, settings.topic_partials,
                                       settings.partitions)
    prometheus.register_health(health, settings.app_id)
    app.on_partitions_assigned.connect(health.on_assigned)
    app.on_rebalance_complete.connect(health.on_recovered)

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ready = worker.ready
        return web.json({"ready": ready}, status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        body, content_type = prometheus.exposition()
        return web.bytes(body, content_type=content_type)

    register_api(app, Reader(read_model.client), frozenset(w.name for w in settings.window_specs))

    return app


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

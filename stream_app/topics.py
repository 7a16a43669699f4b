"""Create every topic the worker uses, or stop with a clear error when one exists in the wrong shape.

The broker runs with topic auto-creation off: an input topic created implicitly with one partition
would not be co-partitioned with the tables and Faust would drop its records (FIELD-NOTES, item 2).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import (
    CoordinatorLoadInProgressError,
    GroupAuthorizationFailedError,
    GroupCoordinatorNotAvailableError,
    KafkaConnectionError,
    NotCoordinatorError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
)

from stream_app.errors import ConfigError
from stream_app.settings import Settings

INTAKE_TABLE, ROLLUP_TABLE = "intake", "rollup"
TABLES = (INTAKE_TABLE, ROLLUP_TABLE)


@dataclass(frozen=True, slots=True)
class TopicPlan:
    name: str
    partitions: int | None  # None: any count is fine (not co-partitioned)
    config: dict[str, str]


def changelog_topic(settings: Settings, table: str) -> str:
    return f"{settings.app_id}-{table}-changelog"


def plan(settings: Settings) -> list[TopicPlan]:
    n = settings.partitions
    compact = {"cleanup.policy": "compact"}
    keep = {"retention.ms": "-1"}  # replayed history carries old timestamps; never age it out
    return [
        TopicPlan(settings.topic_interactions, n, keep),
        TopicPlan(settings.topic_surveys, n, keep),
        TopicPlan(settings.topic_partials, n, {"retention.ms": str(7 * 86_400_000)}),
        TopicPlan(settings.topic_scores, None, compact),
        TopicPlan(settings.topic_alerts, None, {}),
        TopicPlan(settings.topic_dead_letter, None, {}),
    ]


@asynccontextmanager
async def _admin(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, **settings.kafka_client_options())
    with _quiet_client_log():
        try:
            await admin.start()
        except KafkaConnectionError as exc:
            await admin.close()
            raise ConfigError(await _why_unreachable(settings)) from exc
        try:
            yield admin
        finally:
            await admin.close()


@contextmanager
def _quiet_client_log() -> Iterator[None]:
    """aiokafka logs every failed bootstrap attempt at ERROR (and each authentication at INFO); what
    fails here is raised as a ConfigError that says why (``_why_unreachable``), so that a worker that
    cannot start says so in one line."""
    client_log = logging.getLogger("aiokafka")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        client_log.setLevel(level)


async def _why_unreachable(settings: Settings) -> str:
    """Why no bootstrap server took a connection: each one's own error (refused, a certificate that
    does not verify, SASL authentication failed), as aiokafka met it. The password never appears."""
    options = settings.kafka_client_options()
    conn_options: dict[str, Any] = {k: v for k, v in options.items() if k in (
        "security_protocol", "ssl_context", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password")}
    reasons = []
    for server in settings.kafka_bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            conn = await create_conn(host, int(port), request_timeout_ms=10_000, **conn_options)
        except Exception as exc:  # every failure is a reason to report
            text = " ".join(str(exc).split()) or type(exc).__name__
            reasons.append(f"{server.strip()}: {type(exc).__name__}: {text}")
        else:
            conn.close()
            reasons.append(f"{server.strip()}: connects now (it did not a moment ago)")
    who = options["security_protocol"]
    if who.startswith("SASL_"):
        who += f" as {options['sasl_mechanism']} user {options.get('sasl_plain_username') or '(none)'!r}"
    password = options.get("sasl_plain_password")
    text = f"cannot connect to Kafka at {settings.kafka_bootstrap} ({who}): " + "; ".join(reasons)
    return text.replace(password, "***") if password else text


async def _check_group(admin: AIOKafkaAdminClient, settings: Settings) -> None:
    """The consumer group must be usable by this principal (ACL READ on group ``CX_APP_ID``):
    otherwise Faust would fail only once it joins, after start."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        try:
            responses = await admin.describe_consumer_groups([settings.app_id])
            break
        except GroupAuthorizationFailedError as exc:
            raise ConfigError(_not_authorized(settings, f"group {settings.app_id!r} (READ)")) from exc
        except (GroupCoordinatorNotAvailableError, CoordinatorLoadInProgressError, NotCoordinatorError):
            # the group offsets topic is made on first use, or is moving: wait for a coordinator
            if asyncio.get_running_loop().time() > deadline:
                raise ConfigError(f"Kafka at {settings.kafka_bootstrap} has no group coordinator "
                                  f"for {settings.app_id!r} after 30 s") from None
            await asyncio.sleep(0.5)
    for response in responses:
        for group in response.groups:
            if group[0] == GroupAuthorizationFailedError.errno:
                raise ConfigError(_not_authorized(settings, f"group {settings.app_id!r} (READ)"))


def _not_authorized(settings: Settings, what: str) -> str:
    options = settings.kafka_client_options()
    user = options.get("sasl_plain_username") or "(no SASL user)"
    return (f"Kafka at {settings.kafka_bootstrap} does not authorize user {user!r} for {what}: "
            "grant the ACLs README lists (Security) or use the worker's principal")


async def ensure_topics(settings: Settings) -> list[str]:
    """Create what is missing; raise ConfigError for a co-partitioned topic with another count, or
    for topics and the consumer group that the principal may not use."""
    async with _admin(settings) as admin:
        wanted = plan(settings)
        checked = [*wanted, *(TopicPlan(changelog_topic(settings, t), settings.partitions, {})
                              for t in TABLES)]
        denied = await _unauthorized(admin, [t.name for t in checked])
        if denied:
            raise ConfigError(_not_authorized(settings, "topics " + ", ".join(denied) + " (DESCRIBE)"))
        await _check_group(admin, settings)
        existing = await _partition_counts(admin, [t.name for t in checked])
        wrong = [f"{t.name} has {existing[t.name]} partitions, expected {t.partitions}"
                 for t in checked
                 if t.name in existing and t.partitions is not None and existing[t.name] != t.partitions]
        if wrong:
            raise ConfigError(
                "topics are not co-partitioned: " + "; ".join(wrong)
                + ". Set CX_PARTITIONS to match, or recreate these topics with "
                + f"{settings.partitions} partitions."
            )
        missing = [t for t in wanted if t.name not in existing]
        if not missing:
            return []
        response = await admin.create_topics([
            NewTopic(t.name, t.partitions or settings.partitions, settings.replication_factor,
                     topic_configs=t.config) for t in missing])
        created, failed = [], []
        denied = []
        for name, code, *rest in response.topic_errors:
            if code == 0:
                created.append(name)
            elif code == TopicAuthorizationFailedError.errno:
                denied.append(name)
            elif code != TopicAlreadyExistsError.errno:
                failed.append(f"{name}: error {code} {rest[0] if rest else ''}".strip())
        if denied:
            raise ConfigError(_not_authorized(settings, "creating topics " + ", ".join(denied) + " (CREATE)"
                                              + "; create them beforehand or grant CREATE"))
        if failed:
            raise ConfigError("could not create topics: " + "; ".join(failed))
        await _wait_for_leaders(admin, [t.name for t in wanted])
        return created


async def partition_count(settings: Settings, topic: str) -> int:
    """How many partitions ``topic`` has now (0 when it does not exist)."""
    async with _admin(settings) as admin:
        return (await _partition_counts(admin, [topic])).get(topic, 0)


async def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """The next offset of every partition of ``topic`` (none when it does not exist)."""
    count = await partition_count(settings, topic)
    if not count:
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                enable_auto_commit=False, **settings.kafka_client_options())
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(count)])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 30.0) -> None:
    """Return once every partition of the topics has a leader.

    Measured here: a worker that subscribed right after its topics were created (on a broker that
    had just started) got an empty assignment, and kept it until the next metadata refresh.
    """
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        metadata = await admin.describe_topics(names)
        pending = [t["topic"] for t in metadata
                   if t.get("error_code", 0) != 0 or not t.get("partitions")
                   or any(p.get("leader", -1) < 0 for p in t["partitions"])]
        if not pending:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise ConfigError(f"topics have no leader after {timeout_s:.0f} s: {', '.join(pending)}")
        await asyncio.sleep(0.2)


async def _unauthorized(admin: AIOKafkaAdminClient, names: list[str]) -> list[str]:
    """The topics whose metadata the broker refuses this principal (a missing topic is not refused
    to a principal allowed to describe it)."""
    metadata = await admin.describe_topics(names)
    return [t["topic"] for t in metadata if t.get("error_code", 0) == TopicAuthorizationFailedError.errno]


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    metadata = await admin.describe_topics(names)
    counts = {}
    for topic in metadata:
        if topic.get("error_code", 0) == 0 and topic.get("partitions"):
            counts[topic["topic"]] = len(topic["partitions"])
    return counts

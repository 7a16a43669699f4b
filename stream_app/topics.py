"""Create every topic the worker uses, or stop with a clear error when one exists in the wrong shape.

The broker runs with topic auto-creation off: an input topic created implicitly with one partition
would not be co-partitioned with the tables and Faust would drop its records (FIELD-NOTES, item 2).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

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
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def ensure_topics(settings: Settings) -> list[str]:
    """Create what is missing; raise ConfigError for a co-partitioned topic with another count."""
    async with _admin(settings) as admin:
        wanted = plan(settings)
        checked = [*wanted, *(TopicPlan(changelog_topic(settings, t), settings.partitions, {})
                              for t in TABLES)]
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
        for name, code, *rest in response.topic_errors:
            if code == 0:
                created.append(name)
            elif code != TopicAlreadyExistsError.errno:
                failed.append(f"{name}: error {code} {rest[0] if rest else ''}".strip())
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


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    metadata = await admin.describe_topics(names)
    counts = {}
    for topic in metadata:
        if topic.get("error_code", 0) == 0 and topic.get("partitions"):
            counts[topic["topic"]] = len(topic["partitions"])
    return counts

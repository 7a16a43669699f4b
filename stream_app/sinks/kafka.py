"""Records to Kafka sent as one group and awaited together, and read back when a crash left it
unclear whether some were sent.

The worker acknowledges its input only after everything a batch produced is on the broker,
so the committed offset never runs ahead of what was written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from stream_app.faust_bridge import raw_producer
from stream_app.topics import partition_count

if TYPE_CHECKING:
    from stream_app.settings import Settings

Headers = Sequence[tuple[str, bytes]]


class Outbox:
    """An ordered list of records to send; per partition, Kafka keeps the order they were added in."""

    __slots__ = ("_producer", "_records")

    def __init__(self, producer: Any) -> None:
        self._producer = producer
        self._records: list[tuple[str, int | None, bytes | None, bytes | None, Headers | None]] = []

    def add(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        headers: Headers | None = None,
    ) -> None:
        self._records.append((topic, partition, key, value, headers))

    def __len__(self) -> int:
        return len(self._records)

    async def flush(self) -> dict[tuple[str, int], int]:
        """Send everything added so far and wait until the broker has acknowledged all of it.

        Records with an explicit partition (changelogs, partials: nearly all of them) are packed
        into one record batch per partition, which costs a fraction of one send per record.
        Returns the offset of the last record written per (topic, partition) so packed.
        """
        records, self._records = self._records, []
        if not records:
            return {}
        producer = raw_producer(self._producer)
        pending = []
        by_partition: dict[tuple[str, int], list[tuple[bytes | None, bytes | None, Headers | None]]] = {}
        for topic, partition, key, value, headers in records:
            if partition is None:
                pending.append(await producer.send(topic, value, key=key, headers=list(headers or ())))
            else:
                by_partition.setdefault((topic, partition), []).append((key, value, headers))
        batches: list[tuple[tuple[str, int], int, Any]] = []  # (topic, partition), records, future
        for (topic, partition), rows in by_partition.items():
            batch, count = producer.create_batch(), 0
            for key, value, headers in rows:
                while batch.append(timestamp=None, key=key, value=value, headers=list(headers or ())) is None:
                    batches.append(((topic, partition), count, await producer.send_batch(batch, topic,
                                                                                     partition=partition)))
                    batch, count = producer.create_batch(), 0
                count += 1
            batches.append(((topic, partition), count,
                            await producer.send_batch(batch, topic, partition=partition)))
        await asyncio.gather(*pending, *(future for _, _, future in batches))
        last: dict[tuple[str, int], int] = {}
        for tp, count, future in batches:
            if count:
                last[tp] = max(last.get(tp, -1), future.result().offset + count - 1)
        return last


async def read_since(settings: Settings, topic: str, since_ms: int) -> list[Any]:
    """Every record of ``topic`` stamped at or after ``since_ms``, up to the end it has now.

    Used rarely (after a crash left alert events whose sending was not confirmed), so a
    short-lived consumer of its own is simpler than borrowing Faust's.
    """
    tps = [TopicPartition(topic, p) for p in range(await partition_count(settings, topic))]
    if not tps:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                enable_auto_commit=False, client_id=f"{settings.app_id}-read-back",
                                **settings.kafka_client_options())
    try:
        await consumer.start()
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.offsets_for_times({tp: since_ms for tp in tps})
        pending = set()
        for tp in tps:
            found = starts.get(tp)
            if found is not None and found.offset < ends[tp]:
                consumer.seek(tp, found.offset)
                pending.add(tp)
        records: list[Any] = []
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for tp, messages in batch.items():
                records.extend(m for m in messages if m.offset < ends[tp])
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        return records
    finally:
        await consumer.stop()

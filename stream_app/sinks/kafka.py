"""Records to Kafka sent as one group and awaited together.

The worker acknowledges its input only after everything a batch produced is on the broker,
so the committed offset never runs ahead of what was written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from stream_app.faust_bridge import raw_producer

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

    async def flush(self) -> None:
        """Send everything added so far and wait until the broker has acknowledged all of it.

        Records with an explicit partition (changelogs, partials: nearly all of them) are packed
        into one record batch per partition, which costs a fraction of one send per record.
        """
        records, self._records = self._records, []
        if not records:
            return
        producer = raw_producer(self._producer)
        pending = []
        by_partition: dict[tuple[str, int], list] = {}
        for topic, partition, key, value, headers in records:
            if partition is None:
                pending.append(await producer.send(topic, value, key=key, headers=list(headers or ())))
            else:
                by_partition.setdefault((topic, partition), []).append((key, value, headers))
        for (topic, partition), rows in by_partition.items():
            batch = producer.create_batch()
            for key, value, headers in rows:
                while batch.append(timestamp=None, key=key, value=value, headers=list(headers or ())) is None:
                    pending.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
            pending.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*pending)

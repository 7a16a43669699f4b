"""Records to Kafka sent as one group and awaited together.

The worker acknowledges its input only after everything a batch produced is on the broker,
so the committed offset never runs ahead of what was written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

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
        """Send everything added so far and wait until the broker has acknowledged all of it."""
        records, self._records = self._records, []
        if not records:
            return
        send = self._producer.send
        pending = [
            await send(topic, key, value, partition, None, list(headers) if headers else None)
            for topic, partition, key, value, headers in records
        ]
        await asyncio.gather(*pending)

"""One partition of a Faust table, read and written directly, with its changelog records queued.

Every write goes to the local RocksDB store at once (so later reads in the same batch see it) and
to the outbox as a changelog record, in write order. One table holds all of a stage's state for a
partition, so its changelog partition is one ordered log: after a crash the recovered state is a
prefix of the writes, which is what makes replaying the input exact (see README, Exactness).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from stream_app.faust_bridge import partition_db, partition_items
from stream_app.sinks.kafka import Outbox


class PartitionState:
    __slots__ = ("_db", "_outbox", "_topic", "partition")

    def __init__(self, table: Any, partition: int, outbox: Outbox) -> None:
        self._db = partition_db(table, partition)
        self._outbox = outbox
        self._topic = table.changelog_topic.get_topic_name()
        self.partition = partition

    def get(self, key: bytes) -> Any:
        raw = self._db.get(key)
        return None if raw is None else orjson.loads(raw)

    def put(self, key: bytes, value: Any) -> None:
        raw = orjson.dumps(value)
        self._db.put(key, raw)
        self._outbox.add(self._topic, key, raw, self.partition)

    def delete(self, key: bytes) -> None:
        self._db.delete(key)
        self._outbox.add(self._topic, key, None, self.partition)


def iter_partition(table: Any, partition: int) -> Iterator[tuple[bytes, Any]]:
    """Decoded entries of one partition (used when reloading after a rebalance)."""
    for key, raw in partition_items(table, partition):
        yield key, orjson.loads(raw)

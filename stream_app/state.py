"""One partition of a Faust table, read and written directly, with its changelog records queued.

Every write goes to the outbox as a changelog record, in write order, and into a pending overlay
that later reads in the same batch see; ``commit`` then writes the overlay to the local RocksDB
store as one write batch (a put per key costs about twice as much). One table holds all of a
stage's state for a partition, so its changelog partition is one ordered log: after a crash the
recovered state is a prefix of the writes, which is what makes replaying the input exact (see
README, Exactness). The local store needs no write-ahead log: it is rebuilt from the changelog
at every start (``app.reset_local_tables``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from stream_app.faust_bridge import partition_db, partition_items, write_batch
from stream_app.sinks.kafka import Outbox


class PartitionState:
    __slots__ = ("_db", "_outbox", "_pending", "_topic", "partition")

    def __init__(self, table: Any, partition: int, outbox: Outbox) -> None:
        self._db = partition_db(table, partition)
        self._outbox = outbox
        self._topic = table.changelog_topic.get_topic_name()
        self._pending: dict[bytes, bytes | None] = {}
        self.partition = partition

    def get(self, key: bytes) -> Any:
        raw = self._pending[key] if key in self._pending else self._db.get(key)
        return None if raw is None else orjson.loads(raw)

    def put(self, key: bytes, value: Any) -> None:
        raw = orjson.dumps(value)
        self._pending[key] = raw
        self._outbox.add(self._topic, key, raw, self.partition)

    def delete(self, key: bytes) -> None:
        self._pending[key] = None
        self._outbox.add(self._topic, key, None, self.partition)

    def commit(self) -> None:
        """Apply this batch's writes to the local store; call once the batch's last write is made."""
        if self._pending:
            write_batch(self._db, self._pending)
            self._pending = {}


def iter_partition(table: Any, partition: int) -> Iterator[tuple[bytes, Any]]:
    """Decoded entries of one partition (used when reloading after a rebalance)."""
    for key, raw in partition_items(table, partition):
        yield key, orjson.loads(raw)

"""Every place this product reaches under Faust's public API, in one module, pinned to one version.

Faust hands each record to a stream through a per-record path (a future, a queue and a task per
record) that tops out near 6,000 records/s. Here Faust keeps what it is good at — group membership
and partition assignment, changelog topics, table recovery into RocksDB, the web server — while
the fetch loop hands each fetched batch of the product's own topics, whole, to one callable.
Records of any other topic (changelogs during recovery) still take Faust's own path.

Table state is read and written partition by partition straight in Faust's RocksDB store; the
changelog records are sent by the caller, which awaits them before it acknowledges its input.
``tests/unit/test_faust_bridge.py`` fails when the pinned internals change under us.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

PINNED_FAUST_VERSION = "0.15.3"

BatchHandler = Callable[[dict[TP, list[Any]]], Awaitable[None]]


class BatchConsumer(faust_aiokafka.Consumer):
    """Faust's consumer with a fetch loop that delivers batches instead of records."""

    async def _drain_messages(self, fetcher: Any) -> None:  # noqa: C901 - mirrors Faust's loop
        callback = self.callback
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        read_offset = self._read_offset
        unacked = self._unacked_messages
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                batch: dict[TP, list[Any]] = {}
                other: list[Any] = []
                await asyncio.sleep(0)
                if self.should_stop:
                    break
                async for tp, message in self.getmany(timeout=1.0):
                    if tp.topic in self.app.batch_topics:
                        batch.setdefault(tp, []).append(message)
                    else:
                        other.append(message)
                for message in other:
                    await self.wait_first(callback(message), self.suspend_flow.wait())
                    read_offset[message.tp] = message.offset
                if batch:
                    await self._deliver(batch, read_offset, unacked)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    async def _deliver(self, batch: dict[TP, list[Any]], read_offset: Any, unacked: Any) -> None:
        fresh: dict[TP, list[Any]] = {}
        for tp, messages in batch.items():
            # The read offset is the next offset to hand on (a seek sets it to the committed
            # offset); anything below it was handed on already. Offsets with no record (compaction,
            # transaction markers) are recorded as gaps so that commits can move past them.
            expected = read_offset[tp]
            kept = [m for m in messages if expected is None or m.offset >= expected]
            if not kept:
                continue
            for message in kept:
                if expected is not None and message.offset > expected:
                    await self._add_gap(tp, expected, message.offset - 1)
                expected = message.offset + 1
            fresh[tp] = kept
            unacked.add(kept[-1])  # Faust's rebalance waits for this batch to be acknowledged
        if not fresh:
            return
        await self.app.batch_handler(fresh)
        ack = self.ack
        for tp, messages in fresh.items():
            for message in messages:
                ack(message)
            read_offset[tp] = messages[-1].offset + 1
        if self._commit_every is not None and self._n_acked >= self._commit_every:
            self._n_acked = 0
            await self.commit()

    async def perform_seek(self) -> None:
        """Seek to the committed offsets, and to the start where nothing was committed yet.

        Measured here: a partition that returns to this process after a rebalance, with no committed
        offset (its previous owner died before its first commit), resumed at the log end, skipping
        every record. Such a partition must be read from the beginning.
        """
        await super().perform_seek()
        for tp in self.assignment():
            if tp.topic in self.app.batch_topics and self._committed_offset[tp] is None:
                await self.seek(tp, 0)

    def verify_event_path(self, now: float, tp: TP) -> None:
        """Faust's stream-progress watchdog; our batches bypass the streams it watches."""


class BatchTransport(faust_aiokafka.Transport):
    Consumer = BatchConsumer


class BatchApp(faust.App):
    """A Faust app whose consumer delivers batches of ``batch_topics`` to ``batch_handler``."""

    batch_topics: frozenset[str] = frozenset()

    async def batch_handler(self, batch: dict[TP, list[Any]]) -> None:
        raise NotImplementedError("route_batches() was not called")

    def _new_transport(self) -> BatchTransport:
        return BatchTransport(self.conf.broker_consumer, self)

    def route_batches(self, topics: frozenset[str], handler: BatchHandler) -> None:
        self.batch_topics = topics
        self.batch_handler = handler  # type: ignore[method-assign]


def partition_db(table: Any, partition: int) -> Any:
    """The RocksDB handle holding one partition of a table (opened on first use)."""
    return table.data._db_for_partition(partition)


def partition_items(table: Any, partition: int) -> Iterator[tuple[bytes, bytes]]:
    """Every key and value of one table partition, without Faust's bookkeeping key."""
    skip = table.data.offset_key
    for key, value in partition_db(table, partition).items():
        if key != skip:
            yield key, value


def raw_producer(producer: Any) -> Any:
    """The aiokafka producer inside Faust's producer, for record batches (Faust sends one by one)."""
    return producer._ensure_producer()


def check_pinned_faust() -> None:
    """Stop at start, with a clear message, rather than run on internals that may have moved."""
    version = getattr(faust, "__version__", "?")
    if version != PINNED_FAUST_VERSION:
        raise RuntimeError(
            f"stream_app.faust_bridge is pinned to faust-streaming {PINNED_FAUST_VERSION}, found {version}: "
            "re-check the overridden fetch loop and store access, then update the pin"
        )

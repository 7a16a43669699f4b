"""The Faust internals stream_app/faust_bridge.py relies on: a Faust upgrade must fail here first."""

from __future__ import annotations

import asyncio
import inspect
from importlib import metadata

import faust
import pytest
from faust.stores import rocksdb as faust_rocksdb
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka

from stream_app import faust_bridge
from stream_app.faust_bridge import (
    PINNED_FAUST_VERSION,
    BatchApp,
    BatchConsumer,
    BatchTransport,
    check_pinned_faust,
)

FaustConsumer = faust_aiokafka.Consumer


# --- the pin -----------------------------------------------------------------------------------


def test_pinned_version_is_0_15_3():
    assert PINNED_FAUST_VERSION == "0.15.3"


def test_installed_faust_streaming_equals_pinned_version():
    assert metadata.version("faust-streaming") == PINNED_FAUST_VERSION
    assert faust.__version__ == PINNED_FAUST_VERSION


def test_check_pinned_faust_passes_on_pinned_version():
    check_pinned_faust()  # no exception


def test_check_pinned_faust_raises_with_helpful_message_on_other_version(monkeypatch):
    monkeypatch.setattr(faust, "__version__", "0.16.0")
    with pytest.raises(RuntimeError) as caught:
        check_pinned_faust()
    message = str(caught.value)
    assert "0.16.0" in message  # what was found
    assert "0.15.3" in message  # what it is pinned to
    assert "faust-streaming" in message
    assert "pin" in message


def test_check_pinned_faust_raises_when_version_unknown(monkeypatch):
    monkeypatch.delattr(faust, "__version__")
    with pytest.raises(RuntimeError, match="0.15.3"):
        check_pinned_faust()


# --- the aiokafka consumer internals -----------------------------------------------------------


def test_faust_consumer_drain_messages_is_coroutine_taking_fetcher():
    method = FaustConsumer._drain_messages
    assert inspect.iscoroutinefunction(method)
    assert list(inspect.signature(method).parameters) == ["self", "fetcher"]


def test_faust_consumer_getmany_is_async_iterator_taking_timeout():
    method = FaustConsumer.getmany
    assert inspect.isasyncgenfunction(method)
    assert list(inspect.signature(method).parameters) == ["self", "timeout"]


def test_faust_consumer_ack_is_plain_method_taking_message():
    method = FaustConsumer.ack
    assert callable(method) and not inspect.iscoroutinefunction(method)
    assert list(inspect.signature(method).parameters) == ["self", "message"]


def test_faust_consumer_add_gap_is_coroutine_taking_tp_and_offset_range():
    method = FaustConsumer._add_gap
    assert inspect.iscoroutinefunction(method)
    assert list(inspect.signature(method).parameters) == ["self", "tp", "offset_from", "offset_to"]


def test_faust_consumer_perform_seek_is_coroutine_without_arguments():
    method = FaustConsumer.perform_seek
    assert inspect.iscoroutinefunction(method)
    assert list(inspect.signature(method).parameters) == ["self"]


def test_faust_consumer_seek_commit_wait_first_assignment_exist():
    assert inspect.iscoroutinefunction(FaustConsumer.seek)
    assert list(inspect.signature(FaustConsumer.seek).parameters)[:3] == ["self", "partition", "offset"]
    assert inspect.iscoroutinefunction(FaustConsumer.commit)
    assert inspect.iscoroutinefunction(FaustConsumer.wait_first)
    assert callable(FaustConsumer.assignment)


def test_faust_consumer_has_stop_and_ack_counter_attributes():
    assert FaustConsumer.consumer_stopped_errors  # a non-empty tuple of exception types
    assert all(issubclass(e, BaseException) for e in FaustConsumer.consumer_stopped_errors)
    assert hasattr(FaustConsumer, "should_stop")
    assert isinstance(faust_consumer.Consumer._n_acked, int)


def test_faust_consumer_init_sets_offset_bookkeeping_the_bridge_reads():
    source = inspect.getsource(faust_consumer.Consumer.__init__)
    for attribute in ("_read_offset", "_unacked_messages", "_committed_offset", "_commit_every",
                      "callback", "suspend_flow"):
        assert f"self.{attribute} =" in source, attribute


def test_faust_consumer_read_and_committed_offsets_default_to_none():
    # The bridge treats None as "nothing read / nothing committed yet" for a partition.
    source = inspect.getsource(faust_consumer.Consumer.__init__)
    assert "self._read_offset = defaultdict(lambda: None)" in source
    assert "self._committed_offset = defaultdict(lambda: None)" in source


def test_faust_consumer_has_verify_event_path_to_override():
    assert list(inspect.signature(FaustConsumer.verify_event_path).parameters) == ["self", "now", "tp"]


# --- the RocksDB store internals ---------------------------------------------------------------


def test_rocksdb_store_db_for_partition_takes_partition():
    method = faust_rocksdb.Store._db_for_partition
    assert callable(method) and not inspect.iscoroutinefunction(method)
    assert list(inspect.signature(method).parameters) == ["self", "partition"]


def test_rocksdb_store_offset_key_is_bytes():
    assert isinstance(faust_rocksdb.Store.offset_key, bytes)
    assert faust_rocksdb.Store.offset_key == b"__faust\x00offset__"


# --- the producer internals --------------------------------------------------------------------


def test_faust_producer_ensure_producer_returns_the_aiokafka_producer():
    # raw_producer() reaches the aiokafka producer through this method to send record batches.
    from aiokafka import AIOKafkaProducer

    method = faust_aiokafka.Producer._ensure_producer
    assert callable(method) and not inspect.iscoroutinefunction(method)
    assert list(inspect.signature(method).parameters) == ["self"]
    assert inspect.signature(method).return_annotation is AIOKafkaProducer


# --- the app and transport ---------------------------------------------------------------------


def test_faust_app_new_transport_exists_without_arguments():
    assert list(inspect.signature(faust.App._new_transport).parameters) == ["self"]
    assert isinstance(faust.App.__dict__["transport"], property)


def test_aiokafka_transport_names_its_consumer_class():
    assert faust_aiokafka.Transport.Consumer is FaustConsumer


def test_batch_consumer_subclasses_faust_aiokafka_consumer():
    assert issubclass(BatchConsumer, FaustConsumer)


def test_batch_consumer_overrides_drain_messages_and_perform_seek():
    for name in ("_drain_messages", "perform_seek", "verify_event_path"):
        assert name in BatchConsumer.__dict__, name
        assert getattr(BatchConsumer, name) is not getattr(FaustConsumer, name)
    assert inspect.iscoroutinefunction(BatchConsumer._drain_messages)
    assert inspect.iscoroutinefunction(BatchConsumer.perform_seek)


def test_batch_consumer_overrides_keep_faust_signatures():
    for name in ("_drain_messages", "perform_seek", "verify_event_path"):
        ours = list(inspect.signature(getattr(BatchConsumer, name)).parameters)
        theirs = list(inspect.signature(getattr(FaustConsumer, name)).parameters)
        assert ours == theirs, name


def test_batch_transport_consumer_is_batch_consumer():
    assert issubclass(BatchTransport, faust_aiokafka.Transport)
    assert BatchTransport.Consumer is BatchConsumer


@pytest.fixture
def event_loop_if_needed():
    """Constructing the transport may look for a loop; give it one and close it afterwards."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    asyncio.set_event_loop(None)
    loop.close()


def test_batch_app_new_transport_returns_batch_transport_with_batch_consumer(event_loop_if_needed):
    app = BatchApp("t-bridge", broker="kafka://127.0.0.1:9092")
    transport = app.transport  # built lazily by App.transport → _new_transport(); nothing is started
    assert type(transport) is BatchTransport
    assert type(app.transport).Consumer is BatchConsumer
    assert transport.app is app
    assert [str(url) for url in transport.url] == ["kafka://127.0.0.1:9092"]


def test_batch_app_defaults_to_no_batch_topics_and_unrouted_handler(event_loop_if_needed):
    app = BatchApp("t-bridge-2", broker="kafka://127.0.0.1:9092")
    assert app.batch_topics == frozenset()
    with pytest.raises(NotImplementedError, match="route_batches"):
        event_loop_if_needed.run_until_complete(app.batch_handler({}))


def test_route_batches_sets_topics_and_handler(event_loop_if_needed):
    app = BatchApp("t-bridge-3", broker="kafka://127.0.0.1:9092")
    seen = []

    async def handler(batch):
        seen.append(batch)

    app.route_batches(frozenset({"cx.interaction-closed.v1"}), handler)
    assert app.batch_topics == frozenset({"cx.interaction-closed.v1"})
    event_loop_if_needed.run_until_complete(app.batch_handler({"x": [1]}))
    assert seen == [{"x": [1]}]


class _FakeStore:
    """Stands in for faust.stores.rocksdb.Store: the two names the bridge uses."""

    offset_key = b"__faust\x00offset__"

    def __init__(self, partitions):
        self.partitions = partitions
        self.opened = []

    def _db_for_partition(self, partition):
        self.opened.append(partition)
        return self.partitions[partition]


class _FakeTable:
    def __init__(self, store):
        self.data = store


def test_partition_db_asks_the_store_for_that_partition():
    db3 = {b"k": b"v"}
    store = _FakeStore({3: db3, 4: {}})
    assert faust_bridge.partition_db(_FakeTable(store), 3) is db3
    assert store.opened == [3]


def test_partition_items_skips_faust_offset_key():
    db = {b"a": b"1", b"__faust\x00offset__": b"42", b"b": b"2"}
    store = _FakeStore({0: db})
    assert list(faust_bridge.partition_items(_FakeTable(store), 0)) == [(b"a", b"1"), (b"b", b"2")]


# --- consumer lag ------------------------------------------------------------------------------


def test_faust_app_keeps_its_consumer_in_underscore_consumer():
    # consumer_lag() reads app._consumer so that a scrape never creates the consumer.
    assert "self._consumer" in inspect.getsource(faust.App.consumer.fget)


def test_faust_consumer_highwater_and_assignment_are_plain_methods():
    for name, parameters in (("highwater", ["self", "tp"]), ("assignment", ["self"])):
        method = getattr(FaustConsumer, name)
        assert callable(method) and not inspect.iscoroutinefunction(method), name
        assert list(inspect.signature(method).parameters) == parameters, name


class _FakeConsumer:
    def __init__(self, highwaters, read, committed):
        self.highwaters = highwaters
        self._read_offset = read
        self._committed_offset = committed

    def assignment(self):
        return set(self.highwaters)

    def highwater(self, tp):
        return self.highwaters[tp]


def test_consumer_lag_is_highwater_minus_read_offset_on_batch_topics(event_loop_if_needed):
    from faust.types import TP

    app = BatchApp("t-bridge-lag", broker="kafka://127.0.0.1:9092")
    assert faust_bridge.consumer_lag(app) == {}  # no consumer yet: nothing, and none created
    assert app._consumer is None
    read, committed, fetched, fresh, unfetched, changelog = (
        TP("in", 0), TP("in", 1), TP("in", 2), TP("in", 3), TP("in", 4), TP("t-changelog", 0))
    app.route_batches(frozenset({"in"}), lambda batch: None)
    app._consumer = _FakeConsumer(
        {read: 100, committed: 50, fetched: 7, fresh: 9, unfetched: None, changelog: 80},
        {read: 60, changelog: 10}, {committed: 45})
    assert faust_bridge.consumer_lag(app) == {read: 40, committed: 5, fetched: 7, fresh: 9}


def test_faust_consumer_thread_builds_its_aiokafka_consumer_in_create_worker_consumer():
    # BatchConsumerThread shortens the fetch wait on the consumer this method returns, before start().
    from aiokafka import AIOKafkaConsumer

    method = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer
    assert list(inspect.signature(method).parameters) == ["self", "transport"]
    assert inspect.signature(method).return_annotation in (AIOKafkaConsumer, "aiokafka.AIOKafkaConsumer")
    assert "_fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumer.start)
    assert FaustConsumer._new_consumer_thread is not BatchConsumer._new_consumer_thread


# --- the producer ------------------------------------------------------------------------------


def test_transport_builds_an_idempotent_producer_with_acks_all():
    """Faust asks for idempotence and acks=all only inside its transactions; every producer of ours has
    both (a send retried after a leader fail-over is written once, by every in-sync replica)."""
    assert BatchTransport.Producer is faust_bridge.IdempotentProducer
    producer = object.__new__(faust_bridge.IdempotentProducer)
    producer.app = type("App", (), {"in_transaction": False})()
    assert producer._settings_extra() == {"acks": "all", "enable_idempotence": True}

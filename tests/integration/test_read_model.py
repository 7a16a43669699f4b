"""The Redis read model against a real redis-server, and the worker's JSON API against a real worker."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

import orjson
import pytest
from prometheus_client import REGISTRY
from redis.asyncio.connection import AbstractConnection

from stream_app.settings import Settings
from stream_app.sinks.redis import Reader, ReadModel
from tests.harness import free_port, latest_snapshots, produce, wait_for
from tests.integration.traffic import assert_exact, simulated
from tests.reference import to_ms
from tests.samples import alert, score

pytestmark = pytest.mark.integration

TTL_SECONDS = 3600


@pytest.fixture
async def model(redis_server):
    read_model = ReadModel(Settings(redis_url=redis_server.url, redis_key_ttl_seconds=TTL_SECONDS))
    yield read_model
    await read_model.client.aclose()


def api(worker, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def test_rolling_snapshots_land_under_the_documented_keys_with_a_ttl(model, redis_server):
    chat, total = score(), score(dimension="all", key="all", n=40)
    model.publish([chat, total, score(tenant="globex", key="email"), score(key="voice", final=True),
                   score(dimension="agent", key="agent-7")], [])
    assert await model.flush()
    r = redis_server.client()
    assert orjson.loads(r.get("cx:score:acme:channel:chat:15m")) == chat
    assert orjson.loads(r.get("cx:score:acme:all:all:15m")) == total
    assert 0 < r.ttl("cx:score:acme:channel:chat:15m") <= TTL_SECONDS
    assert r.exists("cx:score:acme:channel:voice:15m") == 0, "finals stay on Kafka"
    assert sorted(r.zrange("cx:tenants", 0, -1)) == [b"acme", b"globex"]
    assert sorted(orjson.loads(m) for m in r.zrange("cx:scores:acme", 0, -1)) == [
        ["agent", "agent-7", "15m"], ["all", "all", "15m"], ["channel", "chat", "15m"]]
    points = r.zrange("cx:history:acme:channel:chat:15m", 0, -1, withscores=True)
    assert [(orjson.loads(m)["interactions_n"], e) for m, e in points] == [(10, to_ms(chat["window_end"]))]
    assert r.exists("cx:history:acme:agent:agent-7:15m") == 0, "sparklines only for all and channel"


async def test_a_flush_of_a_large_batch_is_one_round_trip(model, redis_server, monkeypatch):
    model.publish([score(key="warm-up")], [])
    assert await model.flush()  # connects (handshake commands are their own round trips)
    r = redis_server.client()
    sets_before = r.info("commandstats")["cmdstat_set"]["calls"]
    sends = []
    original = AbstractConnection.send_packed_command

    async def counted(self, command, check_health=True):
        sends.append(command)
        return await original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    for minute in range(10):
        model.publish([score(key=f"k{i}", end=f"2026-11-20T10:{15 + minute}:00Z") for i in range(50)],
                      [alert(f"a{minute}")])
    assert sends == [], "publish only buffers"
    assert await model.flush()
    assert len(sends) == 1, "the whole batch goes out in one write"
    assert r.info("commandstats")["cmdstat_set"]["calls"] - sets_before == 50, "latest per key only"
    assert r.xlen("cx:alerts") == 10


async def test_alert_events_go_to_the_stream_and_resolved_leaves_the_active_hash(model, redis_server):
    model.publish([], [alert("a1"), alert("a2", key="voice", severity="warning")])
    assert await model.flush()
    model.publish([], [alert("a1", status="resolved")])
    assert await model.flush()
    r = redis_server.client()
    stream = [(orjson.loads(fields[b"event"])["alert_id"], orjson.loads(fields[b"event"])["status"])
              for _, fields in r.xrange("cx:alerts")]
    assert stream == [("a1", "firing"), ("a2", "firing"), ("a1", "resolved")]
    assert list(r.hgetall("cx:alerts:active")) == [b"a2"]
    assert orjson.loads(r.hget("cx:alerts:active", "a2")) == alert("a2", key="voice", severity="warning")


async def test_redis_stopped_then_started_publish_goes_on_errors_are_counted_and_it_catches_up(model,
                                                                                               redis_server):
    def errors() -> float:
        return REGISTRY.get_sample_value("cx_sink_errors_total", {"sink": "redis"}) or 0.0

    runner = asyncio.create_task(model.run())
    model.publish([score(n=1)], [alert("a1")])
    await wait_for(lambda: _exists(redis_server, "cx:score:acme:channel:chat:15m"), timeout=10, every=0.1,
                   message="first write")
    redis_server.stop()
    before = errors()
    started = time.perf_counter()
    model.publish([score(n=2)], [alert("a1", status="resolved"), alert("a2")])
    model.publish([score(n=3), score(key="voice")], [])
    assert time.perf_counter() - started < 0.05, "publish never waits for Redis"
    await wait_for(lambda: _async(errors() - before >= 2), timeout=10, every=0.1, message="errors counted")
    assert model.down and not model.pending.empty()

    redis_server.start()  # an empty Redis on the same port: everything pending must arrive
    await wait_for(lambda: _async(model.pending.empty()), timeout=10, every=0.1, message="catch-up")
    r = redis_server.client()
    assert orjson.loads(r.get("cx:score:acme:channel:chat:15m"))["interactions"]["n"] == 3
    assert r.exists("cx:score:acme:channel:voice:15m")
    assert [orjson.loads(f[b"event"])["alert_id"] for _, f in r.xrange("cx:alerts")] == ["a1", "a2"]
    assert list(r.hgetall("cx:alerts:active")) == [b"a2"]
    assert not model.down
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


async def test_reader_filters_scores_and_pages_recent_alerts_by_tenant(model):
    model.publish([score(), score(window="1h"), score(key="voice"), score(dimension="all", key="all"),
                   score(tenant="globex", key="email")],
                  [alert(f"a{i}", tenant="acme" if i % 3 else "globex") for i in range(250)])
    assert await model.flush()
    reader = Reader(model.client)
    scopes = [(d["tenant"], d["dimension"], d["key"], d["window"]) for d in await reader.scores()]
    assert scopes == sorted(scopes) and len(scopes) == 5
    found = await reader.scores(tenants=frozenset({"acme"}), dimensions=frozenset({"channel"}),
                                windows=frozenset({"15m"}))
    assert [d["key"] for d in found] == ["chat", "voice"]
    assert await reader.scores(tenants=frozenset({"nobody"})) == []
    recent = await reader.recent_alerts(120, frozenset({"globex"}))
    assert [e["alert_id"] for e in recent] == [f"a{i}" for i in range(249, -1, -1) if i % 3 == 0][:120]
    series = await reader.history(60, tenants=frozenset({"acme"}), keys=frozenset({"chat"}))
    assert [(s["window"], len(s["points"])) for s in series] == [("15m", 1), ("1h", 1)]


async def test_api_scores_returns_the_same_numbers_as_the_kafka_scores_topic(deployment, start_worker,
                                                                           redis_server):
    traffic = simulated(deployment, 3_000, seed=5)
    worker = start_worker(CX_REDIS_URL=redis_server.url)
    await produce(traffic.records)
    await assert_exact(deployment, traffic)

    async def same():
        latest = await latest_snapshots(deployment.topics["scores"])
        rolling = {key: doc for key, doc in latest.items() if not doc["final"]}
        status, body = api(worker, "/api/scores")
        served = {f"{d['tenant']}/{d['dimension']}/{d['key']}/{d['window']}": d
                  for d in body.get("scores", ())}
        return (status == 200 and served == rolling, len(served), len(rolling))

    ok, count, _ = await wait_for(same, timeout=30, message="API equals the rolling snapshots on Kafka")
    assert count > 20
    status, body = api(worker, "/api/scores?dimension=channel&window=15m,1h&key=chat")
    assert status == 200 and sorted(d["window"] for d in body["scores"]) == ["15m", "1h"]
    status, body = api(worker, "/api/history?dimension=channel&window=15m&key=chat&minutes=60")
    assert status == 200 and body["series"][0]["points"], "sparkline points of the last hour"
    assert api(worker, "/api/alerts?state=recent") == (200, {"state": "recent", "alerts": []})
    assert api(worker, "/api/alerts?state=later")[0] == 400


async def test_worker_without_redis_keeps_scoring_and_the_api_answers_503(deployment, start_worker):
    traffic = simulated(deployment, 500, seed=8)
    worker = start_worker(CX_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    await produce(traffic.records)
    await assert_exact(deployment, traffic)
    for path in ("/api/scores", "/api/alerts", "/api/history"):
        status, body = api(worker, path)
        assert status == 503 and body["error"] == "read model unavailable", path
    assert api(worker, "/healthz")[0] == 200

    async def errors_counted():
        series = 'cx_sink_errors_total{sink="redis"}'
        lines = [line for line in worker.metrics().splitlines() if line.startswith(series)]
        return lines and float(lines[0].rsplit(" ", 1)[1]) > 0
    await wait_for(errors_counted, timeout=10, message="cx_sink_errors_total > 0")
    assert worker.proc.poll() is None


async def _async(value):
    return value


async def _exists(server, key: str) -> bool:
    return bool(server.client().exists(key))

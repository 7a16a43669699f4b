"""The Redis read model: a serving copy of the latest scores and of the alerts, never the truth.

Kafka stays the source of truth; Redis lets any worker, and the wallboard, answer for the whole
cluster. The emit path hands every snapshot and alert event it sent to ``ReadModel.publish``, which
only buffers; ``ReadModel.run`` writes the buffer every ``FLUSH_SECONDS`` in one pipelined round trip.
While Redis is down the buffer keeps the latest document per key (and at most ``ALERT_BUFFER`` alert
events), failed writes are counted, and everything still pending is written once Redis answers.

Key layout (TTL: ``CX_REDIS_KEY_TTL_SECONDS``, refreshed by every write):

- ``cx:score:{tenant}:{dimension}:{key}:{window}`` (string, TTL): the latest rolling snapshot, the
  contract's JSON document.
- ``cx:scores:{tenant}`` (sorted set, TTL): member ``["dimension","key","window"]``, score the time of
  its last write (epoch ms); lists a tenant's score keys.
- ``cx:tenants`` (sorted set, TTL): tenant -> time of its last write (epoch ms).
- ``cx:history:{tenant}:{dimension}:{key}:{window}`` (sorted set, TTL), dimensions ``all`` and
  ``channel`` only: one sparkline point per window end (the score, epoch ms), the last 2 h of event time.
- ``cx:alerts:active`` (hash): alert_id -> its firing event; the field is removed when it resolves.
- ``cx:alerts`` (stream): every alert event in the field ``event``, ``MAXLEN ~ 10000``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from stream_app.keys import redis_key
from stream_app.settings import Settings
from stream_app.sinks import prometheus

log = logging.getLogger(__name__)

SINK = "redis"
FLUSH_SECONDS = 0.5
CLOSE_TIMEOUT_SECONDS = 2.0
ALERT_BUFFER = 10_000  # alert events held while Redis is down; the oldest go first
STREAM_MAXLEN = 10_000
HISTORY_MS = 2 * 3600 * 1000
HISTORY_DIMENSIONS = frozenset({"all", "channel"})
TENANTS = "cx:tenants"
ACTIVE_ALERTS = "cx:alerts:active"
ALERT_STREAM = "cx:alerts"

Scope = tuple[str, str, str, str]  # tenant, dimension, key, window
Filter = frozenset[str] | None  # the values a query accepts; None: any


def score_key(tenant: str, dimension: str, key: str, window: str) -> str:
    return redis_key("cx:score", tenant, dimension, key, window)


def history_key(tenant: str, dimension: str, key: str, window: str) -> str:
    return redis_key("cx:history", tenant, dimension, key, window)


def index_key(tenant: str) -> str:
    return redis_key("cx:scores", tenant)


def connect(url: str) -> aioredis.Redis:
    """A client that fails fast: the flush loop is the retry, and a wall screen must not hang."""
    return aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30)


def history_point(snapshot: dict) -> dict:
    """What a sparkline needs of a rolling snapshot: the headline figures at the window's end."""
    ces, csat, nps, interactions = (snapshot.get(g) or {} for g in ("ces", "csat", "nps", "interactions"))
    return {"window_end": snapshot["window_end"], "ces_mean": ces.get("mean"),
            "ces_net_ease": ces.get("net_ease"), "csat_pct": csat.get("pct"), "nps_score": nps.get("score"),
            "interactions_n": interactions.get("n")}


def _epoch_ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


@dataclass
class _Pending:
    """What has not reached Redis yet: bounded by the number of keys, alert ids and ``ALERT_BUFFER``."""

    scores: dict[str, dict] = field(default_factory=dict)  # score key -> latest rolling snapshot
    points: dict[str, dict[int, dict]] = field(default_factory=dict)  # history key -> window end -> point
    active: dict[str, dict] = field(default_factory=dict)  # alert_id -> latest event
    events: deque[dict] = field(default_factory=deque)  # for the stream, oldest first

    def empty(self) -> bool:
        return not (self.scores or self.points or self.active or self.events)

    def add_point(self, key: str, end_ms: int, point: dict) -> None:
        points = self.points.setdefault(key, {})
        fresh = end_ms not in points
        points[end_ms] = point
        if fresh:
            horizon = max(points) - HISTORY_MS
            for old in [end for end in points if end < horizon]:
                del points[old]

    def add_events(self, events: list[dict]) -> None:
        for event in events:
            self.active[event["alert_id"]] = event
        self.events.extend(events)
        self._bound_events()

    def _bound_events(self) -> None:
        dropped = len(self.events) - ALERT_BUFFER
        if dropped > 0:
            for _ in range(dropped):
                self.events.popleft()
            prometheus.record_sink_dropped(SINK, dropped)
            log.warning("redis read model: %d alert events dropped from the buffer (Redis down)", dropped)

    def absorb(self, newer: _Pending) -> None:
        """Put what arrived during a failed write on top of what that write held."""
        self.scores.update(newer.scores)
        for key, points in newer.points.items():
            for end_ms, point in points.items():
                self.add_point(key, end_ms, point)
        self.active.update(newer.active)
        self.events.extend(newer.events)
        self._bound_events()


class ReadModel:
    """Buffers published documents; ``run`` writes them to Redis. Never blocks the worker."""

    def __init__(self, settings: Settings) -> None:
        self.client = connect(settings.redis_url)
        self.ttl_seconds = max(1, round(settings.redis_key_ttl_seconds))
        self.pending = _Pending()
        self.down = False

    def publish(self, snapshots: list[dict], alerts: list[dict]) -> None:
        """A pipeline listener: called after each emit with what went to Kafka. Only buffers."""
        for doc in snapshots:
            if doc["final"]:
                continue
            scope = (doc["tenant"], doc["dimension"], doc["key"], doc["window"])
            self.pending.scores[score_key(*scope)] = doc
            if doc["dimension"] in HISTORY_DIMENSIONS:
                self.pending.add_point(history_key(*scope), _epoch_ms(doc["window_end"]), history_point(doc))
        if alerts:
            self.pending.add_events(alerts)

    async def run(self) -> None:
        """Flush every ``FLUSH_SECONDS`` until cancelled; then one last try, and close the client."""
        try:
            while True:
                await asyncio.sleep(FLUSH_SECONDS)
                await self.flush()
        finally:
            await self.close()

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.flush(), CLOSE_TIMEOUT_SECONDS)
        except TimeoutError:
            log.warning("redis read model: closing with writes pending (Kafka has them)")
        await self.client.aclose()

    async def flush(self) -> bool:
        """Write everything pending in one round trip; keep it for the next try if Redis fails."""
        if self.pending.empty():
            return True
        batch, self.pending = self.pending, _Pending()
        try:
            results = await self._write(batch)
        except (RedisError, OSError) as exc:
            self._keep(batch)
            prometheus.record_sink_error(SINK)
            if not self.down:
                log.warning("redis read model unavailable (%s); keeping the latest per key until it answers",
                            exc)
            self.down = True
            return False
        except asyncio.CancelledError:
            self._keep(batch)
            raise
        if self.down:
            log.info("redis read model: writing again")
            self.down = False
        rejected = [r for r in results if isinstance(r, Exception)]
        for _ in rejected:
            prometheus.record_sink_error(SINK)
        if rejected:  # a command Redis refused (e.g. a key of another type) is not retried
            log.error("redis read model: %d of %d writes refused, first: %s",
                      len(rejected), len(results), rejected[0])
        return not rejected

    def _keep(self, batch: _Pending) -> None:
        batch.absorb(self.pending)
        self.pending = batch

    async def _write(self, batch: _Pending) -> list[Any]:
        now_ms = int(time.time() * 1000)
        ttl = self.ttl_seconds
        expired = now_ms - ttl * 1000
        pipe = self.client.pipeline(transaction=False)
        indexes: dict[str, dict[bytes, int]] = {}
        for key, doc in batch.scores.items():
            pipe.set(key, orjson.dumps(doc), ex=ttl)
            member = orjson.dumps([doc["dimension"], doc["key"], doc["window"]])
            indexes.setdefault(doc["tenant"], {})[member] = now_ms
        for tenant, members in indexes.items():
            _index(pipe, index_key(tenant), members, expired, ttl)
        if indexes:
            _index(pipe, TENANTS, dict.fromkeys(indexes, now_ms), expired, ttl)
        for key, points in batch.points.items():
            for end_ms, point in points.items():
                pipe.zremrangebyscore(key, end_ms, end_ms)  # one point per window end: the latest
                pipe.zadd(key, {orjson.dumps(point): end_ms})
            pipe.zremrangebyscore(key, "-inf", f"({max(points) - HISTORY_MS}")
            pipe.expire(key, ttl)
        for alert_id, event in batch.active.items():
            if event["status"] == "resolved":
                pipe.hdel(ACTIVE_ALERTS, alert_id)
            else:
                pipe.hset(ACTIVE_ALERTS, alert_id, orjson.dumps(event))
        for event in batch.events:
            pipe.xadd(ALERT_STREAM, {"event": orjson.dumps(event)}, maxlen=STREAM_MAXLEN, approximate=True)
        return await pipe.execute(raise_on_error=False)


def _index(pipe: Any, key: str, members: dict, expired_ms: int, ttl: int) -> None:
    """Mark members as written now and forget those whose documents have expired."""
    pipe.zadd(key, members)
    pipe.zremrangebyscore(key, "-inf", expired_ms)
    pipe.expire(key, ttl)


def _accepts(allowed: Filter, value: Any) -> bool:
    return allowed is None or value in allowed


class Reader:
    """The read model's queries for the HTTP API; a filter is a set of accepted values, None = any."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    async def scopes(self, tenants: Filter = None, dimensions: Filter = None, keys: Filter = None,
                     windows: Filter = None) -> list[Scope]:
        if tenants is None:
            # the client does not decode responses: members are bytes
            names = sorted(t.decode() for t in cast(list[bytes], await self.client.zrange(TENANTS, 0, -1)))
        else:
            names = sorted(tenants)
        pipe = self.client.pipeline(transaction=False)
        for tenant in names:
            pipe.zrange(index_key(tenant), 0, -1)
        found: list[Scope] = []
        for tenant, members in zip(names, await pipe.execute(), strict=True):
            for member in members:
                dimension, key, window = orjson.loads(member)
                if _accepts(dimensions, dimension) and _accepts(keys, key) and _accepts(windows, window):
                    found.append((tenant, dimension, key, window))
        return sorted(found)

    async def scores(self, **filters: Filter) -> list[dict]:
        """The latest rolling snapshots, ordered by tenant, dimension, key and window."""
        scopes = await self.scopes(**filters)
        if not scopes:
            return []
        values = await self.client.mget([score_key(*scope) for scope in scopes])
        return [orjson.loads(value) for value in values if value is not None]

    async def history(self, minutes: int, **filters: Filter) -> list[dict]:
        """Sparkline series: each scope's points of the last ``minutes`` before its newest point."""
        scopes = [s for s in await self.scopes(**filters) if s[1] in HISTORY_DIMENSIONS]
        pipe = self.client.pipeline(transaction=False)
        for scope in scopes:
            pipe.zrange(history_key(*scope), 0, -1, withscores=True)
        series = []
        for (tenant, dimension, key, window), rows in zip(scopes, await pipe.execute(), strict=True):
            if rows:
                since = rows[-1][1] - minutes * 60_000
                series.append({"tenant": tenant, "dimension": dimension, "key": key, "window": window,
                               "points": [orjson.loads(member) for member, end in rows if end > since]})
        return series

    async def active_alerts(self, tenants: Filter = None) -> list[dict]:
        """Firing alerts, the most recent first."""
        events = [orjson.loads(v) for v in (await self.client.hgetall(ACTIVE_ALERTS)).values()]
        return sorted((e for e in events if _accepts(tenants, e.get("tenant"))),
                      key=lambda e: str(e.get("since")), reverse=True)

    async def recent_alerts(self, limit: int, tenants: Filter = None) -> list[dict]:
        """The latest ``limit`` alert events of the stream (firing and resolved), newest first."""
        events: list[dict] = []
        newest = "+"
        while len(events) < limit:
            # the client does not decode responses: ids and fields are bytes
            rows = cast(list[tuple[bytes, dict[bytes, bytes]]],
                        await self.client.xrevrange(ALERT_STREAM, max=newest, count=max(limit, 100)))
            for _, fields in rows:
                event = orjson.loads(fields[b"event"])
                if _accepts(tenants, event.get("tenant")):
                    events.append(event)
            if len(rows) < max(limit, 100):
                break
            newest = "(" + rows[-1][0].decode()
        return events[:limit]

"""The worker's JSON API over the Redis read model, the live supervisor wallboard and the agents page.

Every worker writes its share of the scopes into Redis, so any worker answers for the whole
cluster. Redis unreachable is a 503 with a JSON error, never an exception that reaches Faust.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Any

import msgspec
from redis.exceptions import RedisError

from stream_app import agents
from stream_app.sinks.redis import Filter, Reader

log = logging.getLogger(__name__)

Handler = Callable[[Any, Any], Awaitable[Any]]
ALERT_STATES = ("active", "recent")
AGENTS_DEFAULT_WINDOW = "1d"
NO_STORE = {"Cache-Control": "no-store"}


class BadRequest(ValueError):
    """A query parameter the API cannot use; answered with 400."""


def _values(request: Any, name: str) -> Filter:
    """``?tenant=a,b`` or ``?tenant=a&tenant=b``; absent = no filter."""
    values = frozenset(v.strip() for raw in request.query.getall(name, []) for v in raw.split(","))
    return (values - {""}) or None


def _integer(request: Any, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return value


def _required(request: Any, name: str) -> str:
    value = (request.query.get(name) or "").strip()
    if not value:
        raise BadRequest(f"{name} is required")
    return value


def _metric(request: Any) -> agents.Metric:
    name = _required(request, "metric")
    if name not in agents.METRICS:
        raise BadRequest(f"metric must be one of {', '.join(agents.METRICS)}")
    return agents.METRICS[name]


def _target(request: Any, metric: agents.Metric) -> float:
    """In the metric's units, within its range (0-100 for a percentage, -100-100 for a net score...)."""
    raw = _required(request, "target")
    try:
        target = float(raw)
    except ValueError:
        raise BadRequest("target must be a number in the metric's units") from None
    if not (math.isfinite(target) and metric.low <= target <= metric.high):
        raise BadRequest(f"target for {metric.name} must be between {metric.low:g} and {metric.high:g}")
    return target


def _filters(request: Any) -> dict[str, Filter]:
    return {"tenants": _values(request, "tenant"), "dimensions": _values(request, "dimension"),
            "keys": _values(request, "key"), "windows": _values(request, "window")}


def _served(handler: Handler) -> Handler:
    """400 for a bad parameter, 503 when Redis does not answer."""

    @functools.wraps(handler)
    async def serve(web: Any, request: Any) -> Any:
        try:
            return await handler(web, request)
        except BadRequest as exc:
            return web.json({"error": str(exc)}, status=400, headers=NO_STORE)
        except (RedisError, OSError) as exc:
            log.debug("read model unavailable for %s: %s", request.path, exc)
            return web.json({"error": "read model unavailable", "detail": type(exc).__name__},
                            status=503, headers=NO_STORE)

    return serve


def register(app: Any, reader: Reader, windows: frozenset[str]) -> None:
    """Add ``/``, ``/agents`` and the JSON API to the worker's web server; ``windows``: their names."""
    static = files("stream_app").joinpath("static")
    page = static.joinpath("wallboard.html").read_text(encoding="utf-8")
    agents_page = static.joinpath("agents.html").read_text(encoding="utf-8")

    @app.page("/")
    async def wallboard(web: Any, request: Any) -> Any:
        return web.html(page, headers=NO_STORE)

    @app.page("/agents")
    async def agents_wallboard(web: Any, request: Any) -> Any:
        return web.html(agents_page, headers=NO_STORE)

    @app.page("/api/agents")
    @_served
    async def agents_to_coach(web: Any, request: Any) -> Any:
        """Every agent of the tenant in the newest window of its latest rolling snapshots, ranked."""
        tenant = _required(request, "tenant")
        window = (request.query.get("window") or AGENTS_DEFAULT_WINDOW).strip()
        if window not in windows:
            raise BadRequest(f"window must be one of {', '.join(sorted(windows))}")
        metric = _metric(request)
        target = _target(request, metric)
        found = await reader.scores(tenants=frozenset({tenant}), dimensions=frozenset({"agent"}),
                                    windows=frozenset({window}))
        docs = agents.latest_window(found)
        ranking = agents.rank(metric, target, [agents.figure(metric, d["key"], d) for d in docs])
        body = {"tenant": tenant, "window": window, "metric": metric.name, "target": target,
                "window_start": docs[0]["window_start"] if docs else None,
                "window_end": docs[0]["window_end"] if docs else None,
                **msgspec.to_builtins(ranking)}
        return web.json(body, headers=NO_STORE)

    @app.page("/api/scores")
    @_served
    async def scores(web: Any, request: Any) -> Any:
        return web.json({"scores": await reader.scores(**_filters(request))}, headers=NO_STORE)

    @app.page("/api/alerts")
    @_served
    async def alerts(web: Any, request: Any) -> Any:
        state = request.query.get("state", "active")
        if state not in ALERT_STATES:
            raise BadRequest(f"state must be one of {', '.join(ALERT_STATES)}")
        tenants = _values(request, "tenant")
        if state == "active":
            found = await reader.active_alerts(tenants)
        else:
            found = await reader.recent_alerts(_integer(request, "limit", 100, 1, 10_000), tenants)
        return web.json({"state": state, "alerts": found}, headers=NO_STORE)

    @app.page("/api/history")
    @_served
    async def history(web: Any, request: Any) -> Any:
        minutes = _integer(request, "minutes", 60, 1, 120)
        return web.json({"minutes": minutes, "series": await reader.history(minutes, **_filters(request))},
                        headers=NO_STORE)

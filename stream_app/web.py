"""The worker's JSON API over the Redis read model, and the live supervisor wallboard page.

Every worker writes its share of the scopes into Redis, so any worker answers for the whole
cluster. Redis unreachable is a 503 with a JSON error, never an exception that reaches Faust.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Any

from redis.exceptions import RedisError

from stream_app.sinks.redis import Filter, Reader

log = logging.getLogger(__name__)

Handler = Callable[[Any, Any], Awaitable[Any]]
ALERT_STATES = ("active", "recent")
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


def register(app: Any, reader: Reader) -> None:
    """Add ``/``, ``/api/scores``, ``/api/alerts`` and ``/api/history`` to the worker's web server."""
    page = files("stream_app").joinpath("static/wallboard.html").read_text(encoding="utf-8")

    @app.page("/")
    async def wallboard(web: Any, request: Any) -> Any:
        return web.html(page, headers=NO_STORE)

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

"""The survey ↔ interaction join, and deduplication, on one entry per interaction.

An entry is a plain JSON-able dict kept in the intake table under the interaction id:

    {"ids": {event_id: trigger}, "ix": interaction | None, "sv": [survey, ...], "last": event_ms}

A *trigger* names the record that caused an effect, ``"i:<offset>"`` or ``"s:<offset>"``. Every
effect on the windows is attributed to exactly one trigger and can be re-derived from the entry
(and, for an interaction's own count, from the replayed record itself, which is not stored: most
entries are a lone interaction, written once per record), so a record replayed after a crash
yields the same effects as the first time (``effects_of``).

A survey that names no channel/queue/agent/touchpoint counts at once under ``unknown`` for what it
lacks; when its interaction arrives, the interaction's trigger moves it to the right keys. If the
interaction never arrives within the join retention, the survey stays under ``unknown``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

ATTRS = ("channel", "queue", "agent", "touchpoint")
UNKNOWN = "unknown"

Dims = tuple[str | None, str | None, str | None, str | None]
Sparse = Sequence[Sequence[float]]  # [(index, value), ...] of a stats vector (lists once read back from JSON)


class Effect(NamedTuple):
    """Add ``sign`` × ``contribution`` at ``event_ms`` to the scopes of ``dims``.

    ``only`` limits the effect to the attributes whose keys changed (a moved survey must not
    touch ``all`` or any key it already counted under).
    """

    sign: int
    tenant: str
    dims: tuple[str, str, str, str]
    event_ms: int
    contribution: Sparse
    only: frozenset[str] | None = None


def new_entry() -> dict:
    return {"ids": {}, "ix": None, "sv": [], "last": 0}


def resolve(own: Dims, base: Dims | None) -> tuple[str, str, str, str]:
    """A survey's own attributes, then its interaction's, then ``unknown``."""
    if base is None:
        return (own[0] or UNKNOWN, own[1] or UNKNOWN, own[2] or UNKNOWN, own[3] or UNKNOWN)
    return (own[0] or base[0] or UNKNOWN, own[1] or base[1] or UNKNOWN,
            own[2] or base[2] or UNKNOWN, own[3] or base[3] or UNKNOWN)


def own_effect(tenant: str, dims: Dims, event_ms: int, contribution: Sparse) -> Effect:
    """An interaction's count under its own attributes: the same whenever it is derived."""
    return Effect(1, tenant, resolve(dims, None), event_ms, contribution)


def add_interaction(entry: dict, event_id: str, trigger: str, tenant: str, dims: Dims,
                    event_ms: int, contribution: Sparse) -> list[Effect]:
    entry["ids"][event_id] = trigger
    if event_ms > entry["last"]:
        entry["last"] = event_ms
    own = own_effect(tenant, dims, event_ms, contribution)
    if entry["ix"] is None:
        entry["ix"] = {"tr": trigger, "dims": list(dims)}
        for survey in entry["sv"]:
            if survey["jn"] is None:
                survey["jn"] = trigger
    return effects_of(entry, trigger, own)


def add_survey(entry: dict, event_id: str, trigger: str, tenant: str, dims: Dims,
               event_ms: int, contribution: Sparse) -> list[Effect]:
    entry["ids"][event_id] = trigger
    entry["last"] = max(entry["last"], event_ms)
    complete = all(dims)
    joined = trigger if (complete or entry["ix"] is not None) else None
    entry["sv"].append({"tr": trigger, "jn": joined, "tenant": tenant, "dims": list(dims),
                        "t": event_ms, "c": contribution})
    return effects_of(entry, trigger)


def effects_of(entry: dict, trigger: str, own: Effect | None = None) -> list[Effect]:
    """Everything ``trigger`` did to the windows; ``own`` is the interaction's own count when
    ``trigger`` is an interaction (``own_effect`` of the record), everything else comes from the entry."""
    effects: list[Effect] = [] if own is None else [own]
    surveys = entry["sv"]
    if not surveys:
        return effects
    base = tuple(entry["ix"]["dims"]) if entry["ix"] is not None else None
    for survey in surveys:
        own = tuple(survey["dims"])
        if survey["tr"] == trigger:
            dims = resolve(own, base) if survey["jn"] == trigger else resolve(own, None)
            effects.append(Effect(1, survey["tenant"], dims, survey["t"], survey["c"]))
        elif survey["jn"] == trigger:
            before, after = resolve(own, None), resolve(own, base)
            changed = frozenset(a for a, x, y in zip(ATTRS, before, after) if x != y)
            if changed:
                effects.append(Effect(-1, survey["tenant"], before, survey["t"], survey["c"], changed))
                effects.append(Effect(1, survey["tenant"], after, survey["t"], survey["c"], changed))
    return effects

"""The survey ↔ interaction join, and deduplication, on one entry per interaction.

An entry is a plain JSON-able dict kept in the intake table under the interaction id:

    {"ids": {event_id: trigger}, "ix": interaction | None, "sv": [survey, ...], "last": event_ms}

A *trigger* names the record that caused an effect, ``"i:<offset>"`` or ``"s:<offset>"``. Every
effect on the windows is attributed to exactly one trigger and can be re-derived from the entry,
so a record replayed after a crash yields the same effects as the first time (``effects_of``).

A survey that names no channel/queue/agent/touchpoint counts at once under ``unknown`` for what it
lacks; when its interaction arrives, the interaction's trigger moves it to the right keys. If the
interaction never arrives within the join retention, the survey stays under ``unknown``.
"""

from __future__ import annotations

from dataclasses import dataclass

ATTRS = ("channel", "queue", "agent", "touchpoint")
UNKNOWN = "unknown"

Dims = tuple[str | None, str | None, str | None, str | None]
Sparse = list[list[float]]  # [[index, value], ...] of a stats vector


@dataclass(frozen=True, slots=True)
class Effect:
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
    out = []
    for i in range(4):
        value = own[i] or (base[i] if base is not None else None)
        out.append(value or UNKNOWN)
    return (out[0], out[1], out[2], out[3])


def add_interaction(entry: dict, event_id: str, trigger: str, tenant: str, dims: Dims,
                    event_ms: int, contribution: Sparse) -> list[Effect]:
    entry["ids"][event_id] = trigger
    entry["last"] = max(entry["last"], event_ms)
    if entry["ix"] is None:
        entry["ix"] = {"tr": trigger, "dims": list(dims)}
        for survey in entry["sv"]:
            if survey["jn"] is None:
                survey["jn"] = trigger
    entry.setdefault("ic", {})[trigger] = [tenant, list(dims), event_ms, contribution]
    return effects_of(entry, trigger)


def add_survey(entry: dict, event_id: str, trigger: str, tenant: str, dims: Dims,
               event_ms: int, contribution: Sparse) -> list[Effect]:
    entry["ids"][event_id] = trigger
    entry["last"] = max(entry["last"], event_ms)
    complete = all(dims)
    joined = trigger if (complete or entry["ix"] is not None) else None
    entry["sv"].append({"tr": trigger, "jn": joined, "tenant": tenant, "dims": list(dims),
                        "t": event_ms, "c": contribution})
    return effects_of(entry, trigger)


def effects_of(entry: dict, trigger: str) -> list[Effect]:
    """Everything ``trigger`` did to the windows, re-derived from the entry alone."""
    base = tuple(entry["ix"]["dims"]) if entry["ix"] is not None else None
    effects: list[Effect] = []
    recorded = entry.get("ic", {}).get(trigger)
    if recorded is not None:
        tenant, dims, event_ms, contribution = recorded
        effects.append(Effect(1, tenant, resolve(tuple(dims), None), event_ms, contribution))
    for survey in entry["sv"]:
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

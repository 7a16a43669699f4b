"""The survey-to-interaction join and deduplication, on one ``JoinEntry`` per interaction id.

Every effect on the windows is attributed to exactly one trigger and can be derived again from the
entry (and, for an interaction's own count, from the replayed record itself, which is not stored:
most entries are a lone interaction), so a record replayed after a crash yields the same effects
as the first time (``effects_of``).

A survey that names no channel, queue, agent or touchpoint counts at once under ``unknown`` for
what it lacks; when its interaction arrives, the interaction's trigger moves it to the right keys.
If the interaction never arrives within the join retention, the survey stays under ``unknown``.

A survey's delay (answered_at - closed_at) counts once survey and interaction have met, under the
survey's final attributes and at its answered_at, by the trigger that brought them together.
"""

from __future__ import annotations

from typing import NamedTuple

from stream_app.engine.records import Dims, FullDims, InteractionRef, JoinEntry, Sparse, SurveyRef
from stream_app.scoring import delay_index

ATTRIBUTES = ("channel", "queue", "agent", "touchpoint")
UNKNOWN = "unknown"


class Effect(NamedTuple):
    """Add ``sign`` x ``contribution`` at ``event_ms`` to the scopes of ``dims``.

    ``only`` limits the effect to the attributes whose keys changed: a moved survey must not touch
    ``all`` or any key it already counted under.
    """

    sign: int
    tenant: str
    dims: FullDims
    event_ms: int
    contribution: Sparse
    only: frozenset[str] | None = None


def new_entry() -> JoinEntry:
    return JoinEntry(0, {})


def resolve(own: Dims, base: Dims | None) -> FullDims:
    """A survey's own attributes, then its interaction's, then ``unknown``."""
    if base is None:
        return (own[0] or UNKNOWN, own[1] or UNKNOWN, own[2] or UNKNOWN, own[3] or UNKNOWN)
    return (own[0] or base[0] or UNKNOWN, own[1] or base[1] or UNKNOWN,
            own[2] or base[2] or UNKNOWN, own[3] or base[3] or UNKNOWN)


def own_effect(tenant: str, dims: Dims, event_ms: int, contribution: Sparse) -> Effect:
    """An interaction's count under its own attributes: the same whenever it is derived."""
    return Effect(1, tenant, resolve(dims, None), event_ms, contribution)


def add_interaction(entry: JoinEntry, event_id: str, trigger: int, own: Effect, dims: Dims) -> list[Effect]:
    """Record a new interaction; the first one under a key is the one its surveys join."""
    entry.seen[event_id] = trigger
    if own.event_ms > entry.last_ms:
        entry.last_ms = own.event_ms
    if entry.interaction is None:
        entry.interaction = InteractionRef(trigger, dims, own.event_ms)
        for survey in entry.surveys:
            survey.met = trigger
            if survey.joined is None:
                survey.joined = trigger
    return effects_of(entry, trigger, own)


def add_survey(entry: JoinEntry, event_id: str, trigger: int, tenant: str, dims: Dims,
               event_ms: int, contribution: Sparse) -> list[Effect]:
    entry.seen[event_id] = trigger
    if event_ms > entry.last_ms:
        entry.last_ms = event_ms
    complete = all(dims)
    met = trigger if entry.interaction is not None else None
    joined = trigger if (complete or met is not None) else None
    entry.surveys.append(SurveyRef(trigger, joined, tenant, dims, event_ms, contribution, met))
    return effects_of(entry, trigger)


def effects_of(entry: JoinEntry, trigger: int, own: Effect | None = None) -> list[Effect]:
    """Everything ``trigger`` did to the windows; ``own`` is the interaction's own count when
    ``trigger`` is an interaction (``own_effect`` of the record), the rest comes from the entry."""
    effects: list[Effect] = [] if own is None else [own]
    if not entry.surveys:
        return effects
    interaction = entry.interaction
    base = interaction.dims if interaction is not None else None
    for survey in entry.surveys:
        delay = _delay(survey, interaction) if survey.met == trigger else ()
        if survey.trigger == trigger:
            dims = resolve(survey.dims, base) if survey.joined == trigger else resolve(survey.dims, None)
            effects.append(Effect(1, survey.tenant, dims, survey.event_ms, survey.contribution + delay))
            continue
        if survey.joined == trigger:
            before, after = resolve(survey.dims, None), resolve(survey.dims, base)
            changed = frozenset(a for a, x, y in zip(ATTRIBUTES, before, after, strict=True) if x != y)
            if changed:
                contribution = survey.contribution
                effects.append(Effect(-1, survey.tenant, before, survey.event_ms, contribution, changed))
                effects.append(Effect(1, survey.tenant, after, survey.event_ms, survey.contribution, changed))
        if delay:
            effects.append(Effect(1, survey.tenant, resolve(survey.dims, base), survey.event_ms, delay))
    return effects


def _delay(survey: SurveyRef, interaction: InteractionRef | None) -> Sparse:
    """The survey's delay bin, as a contribution; nothing when the interaction's close time is unknown."""
    if interaction is None or interaction.closed_ms is None:
        return ()
    return ((delay_index(survey.event_ms - interaction.closed_ms), 1.0),)

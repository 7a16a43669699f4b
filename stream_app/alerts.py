"""Alert episodes from rolling score snapshots: one small state machine per rule and scope.

Pure: every decision depends only on (rule, state, snapshot, event_ms), where event_ms is the
watermark the snapshot is as of, so a replay after a crash takes the same decisions and derives the
same alert ids. The wall clock (now_ms) only stamps the event's ``at``.

States (``None`` is ok, never seen or back to normal):

- ``pending``: the condition holds since ``since_ms`` but not yet for the rule's ``for``; no event.
- ``firing``: one ``firing`` event was emitted; it ends only with one ``resolved`` event (same
  ``alert_id``) when the value is known, has ``min_samples``, and is past the clear level.
- ``cooldown``: after a resolve, until ``until_ms`` no new episode fires; the condition may already
  hold (``since_ms`` set), and fires at the first snapshot after the cooldown if it still holds then
  for long enough.

A value that is null or rests on fewer than ``min_samples`` answers neither starts an episode nor
ends one: it tells nothing either way.

A rule with a ``baseline`` compares ``value - baseline`` with its threshold and clear level, and takes
no decision (as with too few samples) while the baseline has not yet ``min_history`` behind it. Its
state never goes back to ``None``: it carries the baseline's history under ``"baseline"``, fed at every
step, and is ``ok`` (the fifth status) between episodes. Fixed rules' states are as above, unchanged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from stream_app import baselines
from stream_app.keys import kafka_key
from stream_app.rules import METRICS, Rule
from stream_app.snapshot import rfc3339, rolling_key

__all__ = ["Reading", "alert_key", "is_firing", "matches", "reading", "scope_state_key", "state_key", "step",
           "watches"]

ALERT_ID_HEX = 24


@dataclass(frozen=True, slots=True)
class Reading:
    """The rule's metric in one snapshot: value (or None), its group's sample count, its 95% interval."""

    value: float | None
    n: int
    ci95: list[float] | None


def matches(rule: Rule, snapshot: dict) -> bool:
    """The rule watches this snapshot's scope and window; closed (final) windows never drive alerts."""
    return (snapshot.get("final") is False and snapshot.get("window") == rule.window
            and watches(rule, snapshot.get("tenant"), snapshot.get("dimension"), snapshot.get("key")))


def watches(rule: Rule, tenant: object, dimension: object, key: object) -> bool:
    """The rule watches this scope (tenant, dimension, key), in whichever window."""
    return (dimension == rule.dimension and (rule.tenant is None or tenant == rule.tenant)
            and (rule.key is None or key in rule.key))


def reading(rule: Rule, snapshot: dict) -> Reading:
    """A missing group or field reads as no data, the same as a group with ``n: 0``."""
    group = snapshot.get(rule.group) or {}
    value = group.get(rule.metric.split(".", 1)[1])
    spec = METRICS[rule.metric]
    interval = group.get(spec.interval) if spec.interval else None
    if interval is not None and spec.mirrored:
        interval = [round(8.0 - interval[1], 4) + 0.0, round(8.0 - interval[0], 4) + 0.0]
    return Reading(value, int(group.get("n") or 0), None if interval is None else list(interval))


def state_key(rule: Rule, snapshot: dict) -> str:
    """Where the worker keeps this rule's state for the snapshot's scope; equal to the alert's Kafka key."""
    return scope_state_key(rule, snapshot["tenant"], snapshot["dimension"], snapshot["key"])


def scope_state_key(rule: Rule, tenant: str, dimension: str, key: str) -> str:
    return _key(rule.name, tenant, dimension, key)


def alert_key(event: dict) -> str:
    """The Kafka key of an alert event: ``{rule}/{tenant}/{dimension}/{key}``."""
    return _key(event["rule"], event["tenant"], event["dimension"], event["key"])


def is_firing(state: dict | None) -> bool:
    return state is not None and state["status"] == "firing"


def step(rule: Rule, state: dict | None, snapshot: dict, event_ms: int,
         now_ms: int) -> tuple[dict | None, list[dict]]:
    """The state after ``snapshot`` (the window ending at the step boundary ``event_ms``) and the 0 or 1
    events it raises. With a baseline, its level at ``event_ms`` is read first, and only then is the
    snapshot's figure fed to it."""
    if not matches(rule, snapshot):
        scope = rolling_key(*(str(snapshot.get(f)) for f in ("tenant", "dimension", "key", "window")))
        raise ValueError(f"rule {rule.name!r} does not watch the rolling snapshot {scope}")
    now = reading(rule, snapshot)
    if rule.baseline is None:
        return _judge(rule, state, snapshot, now, None, event_ms, now_ms)
    history = None if state is None else state["baseline"]
    base = baselines.level(rule.baseline, history, event_ms)
    episode = None if state is None or state["status"] == "ok" else {k: state[k] for k in _STATE_KEYS}
    after, events = _judge(rule, episode, snapshot, now, base, event_ms, now_ms)
    figure = now.value if now.n >= rule.min_samples else None  # as for a decision: enough samples
    history = baselines.feed(rule.baseline, history, event_ms, figure)
    return {**(after or _state("ok")), "baseline": history}, events


def _judge(rule: Rule, state: dict | None, snapshot: dict, now: Reading, base: float | None, event_ms: int,
           now_ms: int) -> tuple[dict | None, list[dict]]:
    """The episode's state machine; ``base`` is the baseline (None: a fixed rule, or none yet)."""
    if state is not None and state["status"] == "firing":
        if not _recovered(rule, now, base):
            return state, []
        event = _event(rule, snapshot, now, base, "resolved", state["alert_id"], state["since_ms"], now_ms)
        after = _state("cooldown", until_ms=event_ms + rule.cooldown_ms) if rule.cooldown_ms > 0 else None
        return after, [event]

    cooling = state is not None and state["status"] == "cooldown" and event_ms < state["until_ms"]
    until_ms = state["until_ms"] if state is not None and cooling else None
    if not _entering(rule, now, base):
        return (_state("cooldown", until_ms=until_ms) if cooling else None), []
    since_ms = state["since_ms"] if state is not None and state["since_ms"] is not None else event_ms
    if cooling:
        return _state("cooldown", since_ms=since_ms, until_ms=until_ms), []
    if event_ms - since_ms < rule.for_ms:
        return _state("pending", since_ms=since_ms), []
    alert_id = _alert_id(rule, snapshot, since_ms)
    return (_state("firing", since_ms=since_ms, alert_id=alert_id),
            [_event(rule, snapshot, now, base, "firing", alert_id, since_ms, now_ms)])


_STATE_KEYS = ("status", "since_ms", "alert_id", "until_ms")


def _state(status: str, *, since_ms: int | None = None, alert_id: str | None = None,
           until_ms: int | None = None) -> dict:
    """Every state has the same four keys (a baseline rule's adds ``baseline``), so a stored state is
    easy to read and to migrate."""
    return {"status": status, "since_ms": since_ms, "alert_id": alert_id, "until_ms": until_ms}


def _past(figure: float, base: float | None) -> float:
    """What the rule compares with its levels: the figure, or its difference from the baseline."""
    return figure if base is None else figure - base


def _compared(rule: Rule, now: Reading, base: float | None) -> float | None:
    """The figure the rule compares with its levels, or None when it takes no decision on this reading:
    too few samples, no value, or a baseline rule whose baseline has too little history."""
    if now.value is None or now.n < rule.min_samples or (rule.baseline is not None and base is None):
        return None
    return _past(now.value, base)


def _entering(rule: Rule, now: Reading, base: float | None) -> bool:
    """Past the threshold on enough samples; with ``significant``, the whole interval is past it too."""
    figure = _compared(rule, now, base)
    if figure is None or not rule.holds(figure, rule.threshold):
        return False
    if not rule.significant:
        return True
    if now.ci95 is None:
        return False
    return rule.holds(_past(now.ci95[1] if rule.below else now.ci95[0], base), rule.threshold)


def _recovered(rule: Rule, now: Reading, base: float | None) -> bool:
    """Known on enough samples and past the clear level; the point value decides, also for ``significant``."""
    figure = _compared(rule, now, base)
    return figure is not None and not rule.holds(figure, rule.clear)


def _key(rule: str, tenant: str, dimension: str, key: str) -> str:
    return kafka_key(rule, tenant, dimension, key)


def _alert_id(rule: Rule, snapshot: dict, since_ms: int) -> str:
    """Derived from the episode, not drawn: a worker deriving the episode again after a crash repeats it."""
    parts = (rule.name, snapshot["tenant"], snapshot["dimension"], snapshot["key"], rule.window,
             str(since_ms))
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:ALERT_ID_HEX]


def _event(rule: Rule, snapshot: dict, now: Reading, base: float | None, status: str, alert_id: str,
           since_ms: int, now_ms: int) -> dict:
    """The alert event of CONTRACT.md "Alerts"; ``threshold`` is the clear level on a resolved event, a
    difference from ``baseline`` on a baseline rule (``baseline`` null on a fixed one)."""
    level = rule.threshold if status == "firing" else rule.clear
    return {
        "alert_id": alert_id, "rule": rule.name, "status": status, "severity": rule.severity,
        "tenant": snapshot["tenant"], "dimension": snapshot["dimension"], "key": snapshot["key"],
        "window": rule.window, "metric": rule.metric, "value": now.value, "threshold": level,
        "baseline": base, "n": now.n, "ci95": now.ci95, "since": rfc3339(since_ms), "at": rfc3339(now_ms),
        "message": _message(rule, snapshot["key"], now, base, status, level),
    }


def _message(rule: Rule, key: str, now: Reading, base: float | None, status: str, level: float) -> str:
    """One line for a person, e.g. ``chat: CES net ease 12.0 below 20.0 over 15m (n=34)``."""
    label = METRICS[rule.metric].label
    if base is not None:
        return _baseline_message(rule, key, label, now, base, status, level)
    if status == "firing":
        side = "below" if rule.below else "above"
        text = f"{key}: {label} {now.value:.1f} {side} {level:.1f} over {rule.window} (n={now.n}"
        if rule.significant and now.ci95 is not None:
            text += f", 95% interval {now.ci95[0]:.1f} to {now.ci95[1]:.1f}"
        return text + ")"
    return f"{key}: {label} back to {now.value:.1f} (clear level {level:.1f}) over {rule.window} (n={now.n})"


def _baseline_message(rule: Rule, key: str, label: str, now: Reading, base: float, status: str,
                      level: float) -> str:
    """E.g. ``chat: CSAT satisfied % 52.0, 27.0 below its baseline 79.0 (threshold -15.0) over 15m``."""
    assert now.value is not None  # a decision was taken on it
    gap = now.value - base
    where = f"{abs(gap):.1f} {'below' if gap < 0 else 'above'} its baseline {base:.1f}"
    if status == "firing":
        text = (f"{key}: {label} {now.value:.1f}, {where} (threshold {level:+.1f}) over {rule.window} "
                f"(n={now.n}")
        if rule.significant and now.ci95 is not None:
            text += f", 95% interval {now.ci95[0]:.1f} to {now.ci95[1]:.1f}"
        return text + ")"
    return (f"{key}: {label} back to {now.value:.1f}, {where} (clear level {level:+.1f}) over {rule.window} "
            f"(n={now.n})")

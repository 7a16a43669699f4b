"""The alert state machine: one episode is one firing and one resolved event, never a flood, decided on
event time only; and the example rules catch the simulator's chat incident and nothing else."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections import defaultdict
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app import alerts, contract, scoring, simulate, snapshot
from stream_app.baselines import Ewma, Seasonal
from stream_app.events import Answer
from stream_app.rules import Rule, load_rules

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "rules.example.yaml"
T0 = 1_763_632_800_000  # 2025-11-20T10:00:00Z, on a minute boundary
MIN = 60_000
EMPTY = snapshot.build("acme", "channel", "chat", "15m", T0 - 15 * MIN, T0, False, scoring.empty(), T0)
validate_alert = contract.validator("alert.v1.json")

EFFORT = Rule(
    name="chat-effort", metric="ces.net_ease", dimension="channel", window="15m", comparison="<",
    threshold=20.0, clear=25.0, severity="critical", key=("chat",), min_samples=20, for_ms=0, cooldown_ms=0,
)


def rule(**changes) -> Rule:
    return dataclasses.replace(EFFORT, **changes)


def snap(value: float | None, n: int = 34, ci: list[float] | None = None, *, group: str = "ces",
         field: str = "net_ease", **scope) -> dict:
    """A rolling snapshot whose one watched figure is ``value`` on ``n`` samples."""
    doc = copy.deepcopy(EMPTY)
    doc.update(scope)
    doc[group].update({"n": n, field: value, "ci95": ci})
    return doc


def run(r: Rule, values: list, every_ms: int = MIN, state: dict | None = None, now_ms: int = T0):
    """Step through snapshots one ``every_ms`` apart; ``values`` holds values or ``snap`` keyword dicts.

    Returns the final state and (event_ms, event) for every event.
    """
    events = []
    for i, value in enumerate(values):
        doc = snap(**value) if isinstance(value, dict) else snap(value)
        state, out = alerts.step(r, state, doc, T0 + i * every_ms, now_ms + i)
        assert len(out) <= 1
        events += [(T0 + i * every_ms, e) for e in out]
    return state, events


def statuses(events) -> list[str]:
    return [e["status"] for _, e in events]


# --- matching ---------------------------------------------------------------------------------------


def test_matches_only_rolling_snapshots_of_the_rules_tenant_dimension_key_and_window():
    r = rule(tenant="acme", key=("chat", "voice"))
    assert alerts.matches(r, snap(10.0))
    assert alerts.matches(r, snap(10.0, key="voice"))
    assert not alerts.matches(r, snap(10.0, final=True))  # closed windows never drive alerts
    assert not alerts.matches(r, snap(10.0, window="1h"))
    assert not alerts.matches(r, snap(10.0, dimension="queue"))
    assert not alerts.matches(r, snap(10.0, key="email"))
    assert not alerts.matches(r, snap(10.0, tenant="other"))
    assert alerts.matches(rule(tenant=None, key=None), snap(10.0, tenant="other", key="email"))


def test_step_refuses_a_snapshot_the_rule_does_not_watch():
    with pytest.raises(ValueError, match="does not watch the rolling snapshot acme/channel/email/15m"):
        alerts.step(EFFORT, None, snap(10.0, key="email"), T0, T0)


# --- one episode --------------------------------------------------------------------------------------


def test_one_episode_is_exactly_one_firing_and_one_resolved_event_with_the_same_alert_id():
    state, events = run(EFFORT, [30.0, 12.0, 10.0, 11.0, 26.0, 27.0])
    assert statuses(events) == ["firing", "resolved"]
    (fired_ms, firing), (resolved_ms, resolved) = events
    assert (fired_ms, resolved_ms) == (T0 + MIN, T0 + 4 * MIN)
    assert firing["alert_id"] == resolved["alert_id"]
    assert firing["since"] == resolved["since"] == snapshot.rfc3339(T0 + MIN)
    assert (firing["threshold"], resolved["threshold"]) == (20.0, 25.0)  # resolved carries the clear level
    assert (firing["value"], resolved["value"]) == (12.0, 26.0)
    assert state is None  # no cooldown in this rule: back to ok


def test_firing_event_has_the_contracts_fields_and_a_plain_message():
    _, [(_, event)] = run(EFFORT, [{"value": 12.0, "ci": [3.1, 25.4]}], now_ms=T0 + 2500)
    assert event == {
        "alert_id": event["alert_id"], "rule": "chat-effort", "status": "firing", "severity": "critical",
        "tenant": "acme", "dimension": "channel", "key": "chat", "window": "15m", "metric": "ces.net_ease",
        "value": 12.0, "threshold": 20.0, "baseline": None, "n": 34, "ci95": [3.1, 25.4],
        "since": "2025-11-20T10:00:00Z",
        "at": "2025-11-20T10:00:02.500Z", "message": "chat: CES net ease 12.0 below 20.0 over 15m (n=34)",
    }
    assert len(event["alert_id"]) == alerts.ALERT_ID_HEX and int(event["alert_id"], 16) >= 0
    validate_alert(event)


def test_resolved_message_names_the_clear_level():
    _, events = run(EFFORT, [12.0, 30.0])
    assert events[1][1]["message"] == "chat: CES net ease back to 30.0 (clear level 25.0) over 15m (n=34)"


def test_events_from_real_snapshots_validate_against_the_alert_schema():
    stats = scoring.empty()
    for value in [1] * 20 + [2] * 6 + [6] * 8:  # 26 difficult, 8 easy on 1-7: net ease -52.9
        scoring.add_survey(stats, [Answer("ces", value, 1, 7), Answer("csat", 2, 1, 5)])
    doc = snapshot.build("acme", "channel", "chat", "15m", T0 - 15 * MIN, T0, False, stats, T0)
    for r, healthy in (
        (EFFORT, 90.0),
        (rule(metric="ces.effort_mean", comparison=">", threshold=4.0, clear=4.0, significant=True), 2.0),
        (rule(metric="csat.mean", threshold=3.0, clear=3.0, significant=True), 4.5),
        (rule(metric="csat.pct", threshold=50.0, clear=50.0, significant=True), 90.0),
    ):
        state, [firing] = alerts.step(r, None, doc, T0, T0)
        group, field = r.metric.split(".")
        recovered = doc | {group: doc[group] | {field: healthy}}
        _, [resolved] = alerts.step(r, state, recovered, T0 + MIN, T0 + MIN)
        validate_alert(firing)
        validate_alert(resolved)
    no_interactions = rule(metric="interactions.response_pct", threshold=50.0, clear=50.0, min_samples=0)
    assert alerts.step(no_interactions, None, doc, T0, T0) == (None, [])  # a null value never fires


# --- for, hysteresis, samples, significance ---------------------------------------------------------------


def test_for_holds_back_firing_until_the_condition_held_that_long_in_event_time():
    r = rule(for_ms=2 * MIN)
    state, events = run(r, [12.0] * 4, every_ms=MIN // 2)  # held 0, 30, 60, 90 s: not yet
    assert events == [] and state["status"] == "pending" and state["since_ms"] == T0
    state, out = alerts.step(r, state, snap(12.0), T0 + 2 * MIN, now_ms=0)  # held 120 s; wall clock absurd
    assert [e["status"] for e in out] == ["firing"] and out[0]["since"] == snapshot.rfc3339(T0)


def test_pending_that_stops_holding_goes_back_to_ok_without_any_event():
    state, events = run(rule(for_ms=5 * MIN), [12.0, 12.0, 22.0])
    assert (state, events) == (None, [])
    state, events = run(rule(for_ms=5 * MIN), [12.0, 12.0, {"value": 12.0, "n": 3}, 12.0, 12.0, 12.0])
    assert events == [] and state["since_ms"] == T0 + 3 * MIN  # too few samples broke the run: a new start


def test_value_hovering_between_threshold_and_clear_does_not_flap():
    hover = [12.0, 21.0, 19.0, 24.9, 18.0, 25.0 - 1e-9, 20.0, 22.0, 19.5]
    state, events = run(EFFORT, hover)
    assert statuses(events) == ["firing"] and alerts.is_firing(state)
    _, events = run(EFFORT, hover + [25.0])  # at the clear level: recovered (below 25 is the unhealthy side)
    assert statuses(events) == ["firing", "resolved"]


def test_too_few_samples_neither_fire_nor_resolve():
    state, events = run(EFFORT, [{"value": -80.0, "n": 19}] * 10)
    assert (state, events) == (None, [])
    state, events = run(EFFORT, [12.0, {"value": 90.0, "n": 5}, {"value": 90.0, "n": 19}])
    assert statuses(events) == ["firing"] and alerts.is_firing(state)  # 5 happy answers prove nothing


def test_a_null_value_or_an_empty_window_does_not_resolve_a_firing_alert():
    state, events = run(EFFORT, [12.0, {"value": None, "n": 0}, {"value": None, "n": 0}, 12.0, 30.0])
    assert statuses(events) == ["firing", "resolved"]
    assert events[0][1]["alert_id"] == events[1][1]["alert_id"]
    state, events = run(rule(min_samples=0), [{"value": None, "n": 0}] * 3)
    assert (state, events) == (None, [])


def test_significant_fires_only_when_the_whole_interval_lies_past_the_threshold():
    r = rule(significant=True)
    _, events = run(r, [{"value": 12.0, "ci": [-5.0, 29.0]}, {"value": 12.0, "ci": None},
                        {"value": 12.0, "ci": [0.0, 20.0]}])
    assert events == []  # a handful of answers: the interval reaches the threshold
    _, events = run(r, [{"value": 12.0, "ci": [0.0, 19.9]}])
    assert statuses(events) == ["firing"]
    assert events[0][1]["message"].endswith("(n=34, 95% interval 0.0 to 19.9)")
    _, events = run(r, [{"value": 12.0, "ci": [0.0, 19.9]}, {"value": 22.0, "ci": [10.0, 34.0]},
                        {"value": 26.0, "ci": [14.0, 38.0]}])
    assert statuses(events) == ["firing", "resolved"]  # the point value past clear resolves


def test_a_metric_without_an_interval_reports_ci95_null():
    r = rule(metric="interactions.abandoned_pct", comparison=">", threshold=15.0, clear=10.0)
    _, events = run(r, [{"value": 16.0, "n": 200, "group": "interactions", "field": "abandoned_pct"}])
    assert statuses(events) == ["firing"] and events[0][1]["ci95"] is None
    assert events[0][1]["message"] == "chat: abandoned % 16.0 above 15.0 over 15m (n=200)"


def test_significant_above_uses_the_low_end_of_the_interval():
    r = rule(metric="csat.pct", comparison=">", threshold=15.0, clear=10.0, significant=True)
    values = [{"value": 18.0, "group": "csat", "field": "pct", "ci": [14.0, 23.0]},
              {"value": 18.0, "group": "csat", "field": "pct", "ci": [15.5, 23.0]}]
    _, events = run(r, values)
    assert [t for t, _ in events] == [T0 + MIN]


def test_mean_rules_use_mean_ci95_and_effort_mean_mirrors_it():
    doc = snap(None, n=40)
    doc["ces"].update(mean=5.0, effort_mean=3.0, mean_ci95=[4.6, 5.4], ci95=[-90.0, -80.0])
    assert alerts.reading(rule(metric="ces.mean"), doc) == alerts.Reading(5.0, 40, [4.6, 5.4])
    assert alerts.reading(rule(metric="ces.effort_mean"), doc) == alerts.Reading(3.0, 40, [2.6, 3.4])
    assert alerts.reading(rule(metric="ces.easy_pct"), doc).ci95 is None
    effort_high = rule(metric="ces.effort_mean", comparison=">", threshold=2.5, clear=2.5, significant=True)
    assert alerts.step(effort_high, None, doc, T0, T0)[1][0]["ci95"] == [2.6, 3.4]
    assert alerts.step(dataclasses.replace(effort_high, threshold=2.7, clear=2.7), None, doc, T0, T0)[1] == []


def test_interaction_metrics_count_samples_in_interactions():
    r = rule(metric="interactions.service_level_pct", threshold=12.0, clear=18.0, min_samples=100)
    few = {"value": 3.0, "n": 99, "group": "interactions", "field": "service_level_pct"}
    doc = snap(**few)
    doc["ces"]["n"] = 500  # another group's count does not help
    assert alerts.step(r, None, doc, T0, T0) == (None, [])
    assert statuses(run(r, [few | {"n": 100}])[1]) == ["firing"]


# --- cooldown, ids, replays ---------------------------------------------------------------------------


def test_cooldown_holds_back_a_new_episode_until_it_has_passed_in_event_time():
    r = rule(cooldown_ms=10 * MIN)
    values = [12.0, 30.0] + [12.0] * 12  # resolved at +1 min; bad again at once
    state, events = run(r, values)
    assert statuses(events) == ["firing", "resolved", "firing"]
    (_, first), (resolved_ms, _), (refired_ms, second) = events
    assert refired_ms == resolved_ms + 10 * MIN
    assert second["since"] == snapshot.rfc3339(T0 + 2 * MIN)  # the condition held from then on
    assert second["alert_id"] != first["alert_id"]


def test_cooldown_ends_quietly_when_nothing_is_wrong():
    state, events = run(rule(cooldown_ms=5 * MIN), [12.0, 30.0, 12.0, 30.0, 30.0, 30.0, 30.0, 30.0])
    assert statuses(events) == ["firing", "resolved"]
    assert state is None  # cooldown over and healthy: nothing left to keep


def test_cooldown_and_for_both_apply():
    r = rule(cooldown_ms=2 * MIN, for_ms=3 * MIN)
    _, events = run(r, [12.0, 12.0, 12.0, 12.0, 30.0, 30.0, 30.0, 12.0, 12.0, 12.0, 12.0])
    assert [t - T0 for t, _ in events] == [3 * MIN, 4 * MIN, 10 * MIN]


def test_alert_id_is_the_same_when_the_episode_is_derived_again():
    first = run(EFFORT, [30.0, 12.0, 30.0])[1]
    again = run(EFFORT, [30.0, 12.0, 30.0], now_ms=T0 + 3_600_000)[1]  # later, on another worker
    assert [e["alert_id"] for _, e in first] == [e["alert_id"] for _, e in again]
    other_scope = alerts.step(rule(key=None), None, snap(12.0, key="voice"), T0 + MIN, T0)[1][0]
    other_start = alerts.step(EFFORT, None, snap(12.0), T0 + 2 * MIN, T0)[1][0]
    assert len({first[0][1]["alert_id"], other_scope["alert_id"], other_start["alert_id"]}) == 3


def test_decisions_do_not_depend_on_the_wall_clock():
    values = [12.0, 12.0, 22.0, 30.0, 12.0, {"value": None, "n": 0}, 30.0]
    r = rule(for_ms=MIN, cooldown_ms=2 * MIN)
    early, late = run(r, values, now_ms=0), run(r, values, now_ms=T0 * 2)
    strip = [(t, {k: v for k, v in e.items() if k != "at"}) for t, e in early[1]]
    assert early[0] == late[0]
    assert strip == [(t, {k: v for k, v in e.items() if k != "at"}) for t, e in late[1]]


def test_state_is_small_json_that_survives_a_round_trip():
    r = rule(for_ms=MIN, cooldown_ms=3 * MIN)
    state = None
    for i, value in enumerate([12.0, 12.0, 12.0, 30.0, 12.0, 12.0, 12.0, 12.0]):
        stored = json.loads(json.dumps(state))
        assert stored == state
        state, _ = alerts.step(r, stored, snap(value), T0 + i * MIN, T0)
        assert state is None or set(state) == {"status", "since_ms", "alert_id", "until_ms"}


def test_alert_key_and_state_key_are_rule_and_scope():
    state, [(_, event)] = run(rule(key=None), [{"value": 12.0, "key": "chat-sales", "dimension": "channel"}])
    assert alerts.alert_key(event) == "chat-effort/acme/channel/chat-sales"
    assert alerts.state_key(rule(key=None), snap(1.0, key="chat-sales")) == alerts.alert_key(event)


# --- the property: never a flood ----------------------------------------------------------------------

# Mostly values on and around the threshold (20) and the clear level (25), so that episodes happen.
VALUES = st.one_of(st.sampled_from([None, -50.0, 0.0, 19.9, 20.0, 20.1, 22.0, 24.9, 25.0, 25.1, 60.0]),
                   st.floats(-100, 100))
READINGS = st.tuples(VALUES, st.sampled_from([0, 5, 19, 20, 40]), st.sampled_from([0.0, 2.0, 10.0, 40.0]),
                     st.sampled_from([0, MIN // 2, MIN, 3 * MIN, 10 * MIN]))


@settings(max_examples=300, deadline=None)
@given(
    readings=st.lists(READINGS, min_size=10, max_size=60),
    for_ms=st.sampled_from([0, MIN, 3 * MIN]),
    cooldown_ms=st.sampled_from([0, 2 * MIN, 10 * MIN]),
    min_samples=st.sampled_from([0, 20]),
    significant=st.booleans(),
    comparison=st.sampled_from(["<", "<="]),
)
def test_events_alternate_firing_resolved_and_each_resolved_carries_its_firings_id(
    readings, for_ms, cooldown_ms, min_samples, significant, comparison
):
    r = rule(for_ms=for_ms, cooldown_ms=cooldown_ms, min_samples=min_samples, significant=significant,
             comparison=comparison)
    state, event_ms, events = None, T0, []
    for value, n, half, gap in readings:
        event_ms += gap
        ci = None if value is None or n < 2 else [value - half, value + half]
        state, out = alerts.step(r, json.loads(json.dumps(state)), snap(value, n, ci), event_ms, T0)
        assert len(out) <= 1
        events += [(event_ms, e) for e in out]
    assert statuses(events) == ["firing", "resolved"] * (len(events) // 2) + ["firing"] * (len(events) % 2)
    assert alerts.is_firing(state) == (len(events) % 2 == 1)
    last_resolved_ms = None
    for (t, event), (_, previous) in zip(events, [(None, None)] + events, strict=False):
        validate_alert(event)
        since_ms = contract.parse_timestamp_ms(event["since"])
        if event["status"] == "resolved":
            assert (event["alert_id"], event["since"]) == (previous["alert_id"], previous["since"])
            assert not r.holds(event["value"], r.clear) and event["n"] >= min_samples
            last_resolved_ms = t
        else:
            assert t - since_ms >= for_ms and r.holds(event["value"], r.threshold)
            assert event["n"] >= min_samples
            assert last_resolved_ms is None or t >= last_resolved_ms + cooldown_ms


# --- the example rules on the simulator ---------------------------------------------------------------


def channel_snapshots(records, minutes: int, windows: dict[str, tuple[int, int]]):
    """Rolling per-channel snapshots at every step boundary: (watermark, snapshot), in event-time order.

    A simplified worker: surveys join their interaction's channel, windows are sums of 1-minute buckets.
    """
    buckets: dict[tuple[str, int], list[float]] = defaultdict(scoring.empty)
    channel_of: dict[str, str] = {}
    first = last = None
    for record in records:
        minute = record.event_ms // MIN
        first = minute if first is None else first
        if minute >= first + minutes:
            break
        last = minute
        if record.kind == "interaction":
            ix = contract.decode_interaction(orjson.dumps(record.value))
            channel_of[ix.interaction_id] = ix.channel
            scoring.add_interaction(buckets[(ix.channel, minute)], ix, 20.0)
        else:
            sv = contract.decode_survey(orjson.dumps(record.value))
            channel = sv.channel or channel_of.get(sv.interaction_id, "unknown")
            scoring.add_survey(buckets[(channel, minute)], sv.answers)
    for end in range(first + 1, last + 2):
        for channel in sorted({c for c, _ in buckets}):
            for name, (size, step) in windows.items():
                if end % step == 0:
                    stats = scoring.empty()
                    for minute in range(end - size, end):
                        if (channel, minute) in buckets:
                            scoring.merge_into(stats, buckets[(channel, minute)])
                    start_ms, end_ms = (end - size) * MIN, end * MIN
                    yield end_ms - 1, snapshot.build("default", "channel", channel, name, start_ms, end_ms,
                                                     False, stats, end_ms)


def fired(incident: str | None, seed: int, minutes: int) -> dict[tuple[str, str], list[str]]:
    rules = load_rules(EXAMPLE, windows=("15m", "1h", "1d"))
    rate = 3.0 / simulate.expected_records_per_interaction(incident)  # 3 records/s: a quiet contact center
    records = simulate.generate(seed, None, T0, rate, incident)
    states: dict[str, dict | None] = {}
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    for watermark, doc in channel_snapshots(records, minutes, {"15m": (15, 1), "1h": (60, 5)}):
        for r in rules:
            if alerts.matches(r, doc):
                key = alerts.state_key(r, doc)
                states[key], events = alerts.step(r, states.get(key), doc, watermark, watermark)
                out[(r.name, doc["key"])] += [e["status"] for e in events]
    return dict(out)


def test_example_rules_fire_once_each_for_the_chat_incident_and_only_for_chat():
    events = {scope: s for scope, s in fired("chat", seed=11, minutes=60).items() if s}
    names = [r.name for r in load_rules(EXAMPLE) if r.baseline is None]  # baselines need hours of history
    assert events == {(name, "chat"): ["firing"] for name in names}


def test_example_rules_stay_quiet_on_healthy_traffic():
    events = {scope: s for scope, s in fired(None, seed=21, minutes=150).items() if s}
    assert events == {}


def test_a_rule_can_watch_the_survey_delay_p90():
    slow = rule(name="survey-slow", metric="surveys.delay_p90_seconds", comparison=">", threshold=7200.0,
                clear=3600.0, min_samples=10)
    values = [{"value": v, "group": "surveys", "field": "delay_p90_seconds", "n": 40}
              for v in (1800.0, 9000.0, 9500.0, 2000.0)]
    _, events = run(slow, values)
    assert statuses(events) == ["firing", "resolved"]
    assert events[0][1]["metric"] == "surveys.delay_p90_seconds" and events[0][1]["value"] == 9000.0
    validate_alert(events[0][1])


# --- baseline rules -------------------------------------------------------------------------------------

HOUR = 60 * MIN
# Net ease 15 points below its own ewma (half-life 1 h) fires, back to 5 below resolves; no history needed.
DROP = rule(name="chat-drop", threshold=-15.0, clear=-5.0, baseline=Ewma(half_life_ms=HOUR, min_history_ms=0))


def test_baseline_rule_fires_and_resolves_on_the_difference_from_its_baseline():
    state, events = run(DROP, [50.0] * 10 + [30.0, 40.0, 47.0, 42.0])
    assert statuses(events) == ["firing", "resolved"]
    (fired_ms, firing), (resolved_ms, resolved) = events
    assert (fired_ms, resolved_ms) == (T0 + 10 * MIN, T0 + 12 * MIN)
    # ten steps of 50: the baseline is 50, and 30 is 20 below it (past -15)
    assert (firing["value"], firing["baseline"], firing["threshold"]) == (30.0, 50.0, -15.0)
    # 30 fed with weight 1 against 9.49 (sum of 0.5 ** (k / 60), k = 0..9, decayed by one more minute):
    # 50 - 20 / 10.38 = 48.075, so 40 is 8.1 below (between -15 and -5, still firing); then 40 fed:
    # 47.3585, and 47 is 0.4 below it: past the clear level -5
    assert (resolved["value"], resolved["baseline"], resolved["threshold"]) == (47.0, 47.3585, -5.0)
    assert firing["message"] == ("chat: CES net ease 30.0, 20.0 below its baseline 50.0 (threshold -15.0) "
                                 "over 15m (n=34)")
    assert resolved["message"] == ("chat: CES net ease back to 47.0, 0.4 below its baseline 47.4 "
                                   "(clear level -5.0) over 15m (n=34)")
    for _, event in events:
        validate_alert(event)
    assert state["status"] == "ok" and state["baseline"]["last_ms"] == T0 + 13 * MIN


def test_the_current_figure_does_not_feed_its_own_baseline():
    _, events = run(DROP, [50.0, 10.0])
    assert [(e["value"], e["baseline"]) for _, e in events] == [(10.0, 50.0)]


def test_baseline_rule_takes_no_decision_until_min_history():
    r = dataclasses.replace(DROP, baseline=Ewma(half_life_ms=HOUR, min_history_ms=10 * MIN), for_ms=MIN)
    state, events = run(r, [50.0] * 5 + [0.0] * 5)  # from T0 + 5m far below, but less than 10 min of history
    assert events == [] and state["status"] == "ok"  # pending never started: no decision, not even that
    state, events = run(r, [50.0] * 5 + [0.0] * 7)
    assert [t - T0 for t, _ in events] == [11 * MIN]  # decides from T0 + 10m, fires after `for`
    assert events[0][1]["since"] == snapshot.rfc3339(T0 + 10 * MIN)


def test_steps_with_too_few_samples_or_no_value_do_not_feed_the_baseline():
    state, _ = run(DROP, [50.0])
    for reading in ({"value": 0.0, "n": 19}, {"value": None, "n": 0}):
        after, events = alerts.step(DROP, state, snap(**reading), T0 + MIN, T0)
        assert events == [] and after == state
    _, events = run(DROP, [50.0, {"value": 0.0, "n": 19}, 34.0])
    assert [(e["value"], e["baseline"]) for _, e in events] == [(34.0, 50.0)]


def test_significant_baseline_rule_needs_the_whole_interval_past_baseline_plus_threshold():
    r = dataclasses.replace(DROP, significant=True)
    _, events = run(r, [50.0, {"value": 30.0, "ci": [20.0, 36.0]}])
    assert events == []  # 36 - 50 = -14: the interval reaches past -15
    _, events = run(r, [50.0, {"value": 30.0, "ci": [20.0, 34.0]}])
    assert statuses(events) == ["firing"] and events[0][1]["baseline"] == 50.0
    assert events[0][1]["message"].endswith("(n=34, 95% interval 20.0 to 34.0)")


def test_baseline_rule_above_its_baseline():
    r = rule(name="abandon-up", metric="interactions.abandoned_pct", comparison=">", threshold=10.0,
             clear=3.0, baseline=Ewma(half_life_ms=HOUR, min_history_ms=0))
    reading = {"n": 200, "group": "interactions", "field": "abandoned_pct"}
    assert run(r, [reading | {"value": 5.0}, reading | {"value": 15.0}])[1] == []  # 10 is not above 10
    _, events = run(r, [reading | {"value": 5.0}, reading | {"value": 16.0}])
    assert [(e["value"], e["baseline"]) for _, e in events] == [(16.0, 5.0)]
    assert events[0][1]["message"].startswith("chat: abandoned % 16.0, 11.0 above its baseline 5.0")


def test_seasonal_baseline_rule_compares_with_the_same_step_a_period_earlier():
    daily = Seasonal(period_ms=24 * HOUR, lookback=1, min_history_ms=24 * HOUR)
    r = dataclasses.replace(DROP, baseline=daily)
    state, events = run(r, [50.0, 50.0], every_ms=24 * HOUR)
    assert events == [] and state["baseline"]["values"] == {str(T0 + 24 * HOUR): 50.0}
    state, out = alerts.step(r, state, snap(30.0), T0 + 48 * HOUR, T0)
    assert [(e["value"], e["baseline"]) for e in out] == [(30.0, 50.0)]


def test_baseline_state_is_json_kept_while_ok_and_its_episode_keys_are_those_of_fixed_rules():
    r = dataclasses.replace(DROP, for_ms=MIN, cooldown_ms=3 * MIN)
    state = None
    for i, value in enumerate([50.0, 50.0, 20.0, 20.0, 20.0, 48.0, 20.0, 20.0, 20.0, 20.0, 50.0]):
        stored = json.loads(json.dumps(state))
        assert stored == state
        state, _ = alerts.step(r, stored, snap(value), T0 + i * MIN, T0)
        assert set(state) == {"status", "since_ms", "alert_id", "until_ms", "baseline"}
        assert state["status"] in ("ok", "pending", "firing", "cooldown")
    assert not alerts.is_firing(state)


def test_fixed_rule_events_carry_baseline_null():
    _, [(_, event)] = run(EFFORT, [12.0])
    assert event["baseline"] is None


@settings(max_examples=200, deadline=None)
@given(
    readings=st.lists(READINGS, min_size=10, max_size=60),
    for_ms=st.sampled_from([0, MIN, 3 * MIN]),
    cooldown_ms=st.sampled_from([0, 2 * MIN]),
    significant=st.booleans(),
    min_history_ms=st.sampled_from([0, 5 * MIN]),
)
def test_baseline_rule_events_alternate_and_each_decision_is_past_its_baseline(
    readings, for_ms, cooldown_ms, significant, min_history_ms
):
    r = dataclasses.replace(DROP, for_ms=for_ms, cooldown_ms=cooldown_ms, significant=significant,
                            baseline=Ewma(half_life_ms=2 * MIN, min_history_ms=min_history_ms))
    state, event_ms, events = None, T0, []
    for value, n, half, gap in readings:
        event_ms += gap or MIN  # one call per step boundary, in increasing event time
        ci = None if value is None or n < 2 else [value - half, value + half]
        state, out = alerts.step(r, json.loads(json.dumps(state)), snap(value, n, ci), event_ms, T0)
        events += out
    assert statuses([(None, e) for e in events]) == (["firing", "resolved"] * len(events))[:len(events)]
    for event in events:
        validate_alert(event)
        gap = event["value"] - event["baseline"]
        assert r.holds(gap, r.threshold) if event["status"] == "firing" else not r.holds(gap, r.clear)

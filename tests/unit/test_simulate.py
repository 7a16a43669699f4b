"""The simulator: deterministic, contract-valid, time-ordered and realistic enough to alert on."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

import orjson
import pytest

from stream_app import simulate
from stream_app.contract import decode_interaction, decode_survey, parse_timestamp_ms
from stream_app.simulate import SimRecord, generate

START_MS = parse_timestamp_ms("2024-05-01T08:00:00Z")


def records(seed=7, count=3000, rate=5.0, incident=None, tenant="default") -> list[SimRecord]:
    return list(generate(seed, count, START_MS, rate, incident=incident, tenant=tenant))


def ease_of(answer) -> float:
    """The contract's 1-7 ease of a ces answer."""
    e = answer.value if answer.higher_is_easier else answer.scale_min + answer.scale_max - answer.value
    return 1 + 6 * (e - answer.scale_min) / (answer.scale_max - answer.scale_min)


def test_same_seed_gives_the_same_records():
    assert records(seed=11) == records(seed=11)


def test_different_seeds_give_different_records():
    assert records(seed=1, count=50) != records(seed=2, count=50)


def test_count_counts_all_records_and_a_shorter_run_is_a_prefix():
    long = records(count=2000)
    assert len(long) == 2000
    assert records(count=700) == long[:700]
    assert {r.kind for r in long} == {"interaction", "survey"}


def test_records_are_in_non_decreasing_event_time_order():
    got = records(count=5000)
    times = [r.event_ms for r in got]
    assert times == sorted(times)
    assert times[0] >= START_MS


def test_event_ms_is_the_event_time_field():
    for r in records(count=500):
        field = "closed_at" if r.kind == "interaction" else "answered_at"
        assert r.event_ms == parse_timestamp_ms(r.value[field])


def test_every_record_passes_the_contract_after_a_json_round_trip():
    for r in records(count=4000, incident="voice", tenant="acme"):
        raw = orjson.dumps(r.value)
        if r.kind == "interaction":
            got = decode_interaction(raw)
            assert got.closed_at_ms == r.event_ms and r.key == got.interaction_id.encode()
        else:
            got = decode_survey(raw)
            assert got.answered_at_ms == r.event_ms and r.key == got.interaction_id.encode()
        assert got.tenant == "acme"


def test_default_tenant_is_left_to_the_contract_default():
    got = records(count=200)
    assert all("tenant" not in r.value for r in got)


def test_surveys_reference_earlier_interactions_answered_one_to_ten_minutes_later():
    seen: dict[str, int] = {}
    surveys = 0
    for r in records(count=5000):
        if r.kind == "interaction":
            seen[r.value["interaction_id"]] = r.event_ms
        else:
            surveys += 1
            closed = seen[r.value["interaction_id"]]  # KeyError: a survey about an unknown interaction
            assert 60_000 <= r.event_ms - closed <= 600_000
    assert surveys > 500


def test_event_ids_and_interaction_ids_are_unique():
    got = records(count=5000)
    event_ids = [r.value["event_id"] for r in got]
    assert len(set(event_ids)) == len(event_ids)
    interaction_ids = [r.value["interaction_id"] for r in got if r.kind == "interaction"]
    assert len(set(interaction_ids)) == len(interaction_ids)


def test_event_time_advances_at_the_interaction_rate():
    got = records(count=6000, rate=10.0)
    interactions = [r for r in got if r.kind == "interaction"]
    span_s = (interactions[-1].event_ms - interactions[0].event_ms) / 1000
    assert span_s / (len(interactions) - 1) == pytest.approx(0.1, rel=0.1)


def test_traffic_looks_like_a_contact_center():
    got = records(count=20000)
    interactions = [r.value for r in got if r.kind == "interaction"]
    surveys = [r.value for r in got if r.kind == "survey"]
    channels = {v["channel"] for v in interactions}
    assert {"voice", "chat", "email", "social", "messaging"} <= channels
    for v in interactions:
        assert v["queue"].startswith(v["channel"] + "-")
        assert v["touchpoint"] in {"purchase", "support", "returns", "billing"}
        assert v["customer_id"].startswith("cust-")
    queues_per_channel = defaultdict(set)
    for v in interactions:
        queues_per_channel[v["channel"]].add(v["queue"])
    assert all(2 <= len(q) <= 3 for q in queues_per_channel.values())
    agents = {v["agent_id"] for v in interactions if "agent_id" in v}
    assert 30 <= len(agents) <= 40
    assert 0.2 <= len(surveys) / len(interactions) <= 0.4
    waits = defaultdict(list)
    for v in interactions:
        waits[v["channel"]].append(v["wait_seconds"])
    assert statistics.median(waits["email"]) > 20 * statistics.median(waits["chat"])
    assert any(v["abandoned"] for v in interactions if v["channel"] == "voice")
    assert any("resolved" not in v for v in interactions)
    assert any(v["transfers"] > 0 for v in interactions)
    answers = [a for s in surveys for a in s["answers"]]
    assert {a["metric"] for a in answers} == {"ces", "csat", "nps"}
    assert all(1 <= len(s["answers"]) <= 3 for s in surveys)
    ces = [a for a in answers if a["metric"] == "ces"]
    effort_worded = sum(a.get("higher_is_easier") is False for a in ces) / len(ces)
    assert 0.12 <= effort_worded <= 0.28
    assert any(a.get("scale_max") == 5 for a in ces)
    carrying = sum("channel" in s for s in surveys) / len(surveys)
    assert 0.04 <= carrying <= 0.18
    assert any("comment" in s for s in surveys)


def _mean_ease_by_channel(got: list[SimRecord]) -> dict[str, float]:
    channel_of: dict[str, str] = {}
    eases: dict[str, list[float]] = defaultdict(list)
    for r in got:
        raw = orjson.dumps(r.value)
        if r.kind == "interaction":
            i = decode_interaction(raw)
            channel_of[i.interaction_id] = i.channel
        else:
            s = decode_survey(raw)
            for a in s.answers:
                if a.metric == "ces":
                    eases[channel_of[s.interaction_id]].append(ease_of(a))
    return {c: statistics.mean(v) for c, v in eases.items()}


def test_incident_channel_has_a_clearly_worse_mean_ease():
    ease = _mean_ease_by_channel(records(count=5000, incident="chat"))
    healthy = [v for c, v in ease.items() if c != "chat"]
    assert ease["chat"] < min(healthy) - 1.0
    baseline = _mean_ease_by_channel(records(count=5000))
    assert ease["chat"] < baseline["chat"] - 2.0


def test_healthy_run_has_harder_voice_and_email_than_chat():
    ease = _mean_ease_by_channel(records(count=8000))
    assert ease["chat"] > ease["voice"] + 0.5
    assert ease["chat"] > ease["email"] + 0.5


def test_incident_makes_waits_longer_and_abandonment_more_common():
    def stats(got):
        chat = [r.value for r in got if r.kind == "interaction" and r.value["channel"] == "chat"]
        return (statistics.median(v["wait_seconds"] for v in chat),
                statistics.mean(v["abandoned"] for v in chat))

    wait_ok, abandon_ok = stats(records(count=8000))
    wait_bad, abandon_bad = stats(records(count=8000, incident="chat"))
    assert wait_bad > 2 * wait_ok
    assert abandon_bad > 2 * abandon_ok


def test_unknown_incident_channel_is_refused():
    with pytest.raises(ValueError, match="incident"):
        generate(1, 10, START_MS, 10.0, incident="carrier-pigeon")


def test_rate_must_be_positive():
    with pytest.raises(ValueError):
        generate(1, 10, START_MS, 0.0)


def test_unlimited_count_keeps_going():
    it = generate(3, None, START_MS, 10.0)
    assert len([next(it) for _ in range(3000)]) == 3000


def test_dry_run_prints_json_lines_without_personal_data(capsysbinary):
    assert simulate.main(["--dry-run", "--count", "8000", "--seed", "5",
                          "--start", "2024-05-01T08:00:00Z"]) == 0
    lines = capsysbinary.readouterr().out.splitlines()
    assert len(lines) == 8000
    topics = set()
    for line in lines:
        row = orjson.loads(line)
        topics.add(row["topic"])
        assert "customer_id" not in row["value"] and "comment" not in row["value"]
        assert b"cust-" not in line
    assert topics == {"cx.interaction-closed.v1", "cx.survey-answered.v1"}


def test_dry_run_topics_come_from_the_environment(monkeypatch, capsysbinary):
    monkeypatch.setenv("CX_TOPIC_INTERACTIONS", "t.int")
    monkeypatch.setenv("CX_TOPIC_SURVEYS", "t.srv")
    assert simulate.main(["--dry-run", "--count", "8000", "--start", "2024-05-01T08:00:00Z"]) == 0
    topics = {orjson.loads(line)["topic"] for line in capsysbinary.readouterr().out.splitlines()}
    assert topics == {"t.int", "t.srv"}


def test_records_per_interaction_matches_the_survey_share():
    got = records(count=30000)
    settled_before = got[-1].event_ms - 600_000  # their surveys, if any, are all in the run
    closed = {r.value["interaction_id"]: r.event_ms for r in got if r.kind == "interaction"}
    settled = [i for i, t in closed.items() if t < settled_before]
    settled_set = set(settled)
    surveys = sum(r.kind == "survey" and r.value["interaction_id"] in settled_set for r in got)
    assert 1 + surveys / len(settled) == pytest.approx(simulate.expected_records_per_interaction(), abs=0.03)


def test_backfill_sends_the_history_then_live_traffic_in_event_time_order():
    from stream_app.simulate import backfilled

    start_ms, backfill_ms = 1_793_577_600_000, 20 * 60_000
    records = list(backfilled(5, 300, start_ms, backfill_ms, 5.0))
    times = [r.event_ms for r in records]
    assert times == sorted(times)
    history = [r for r in records if r.event_ms < start_ms]
    assert history and min(times) >= start_ms - backfill_ms
    interactions = {r.value["interaction_id"] for r in records if r.kind == "interaction"}
    surveys = [r for r in records if r.kind == "survey"]
    assert surveys and all(s.value.get("interaction_id") in interactions for s in surveys)
    live = [r for r in records if r.event_ms >= start_ms and r.kind == "interaction"]
    assert live, "live traffic follows the history"
    assert list(backfilled(5, 300, start_ms, backfill_ms, 5.0)) == records, \
        "pure: same arguments, same records"


def test_agent_panel_is_seeded_spread_over_channels_with_shares_around_the_mean():
    panel = simulate.agent_panel(3, 300)
    assert panel == simulate.agent_panel(3, 300) and panel != simulate.agent_panel(4, 300)
    assert {a.channel for a in panel} == {c.name for c in simulate.CHANNELS}
    shares = [a.csat_top_box for a in panel]
    assert statistics.mean(shares) == pytest.approx(0.85, abs=0.01)
    assert statistics.stdev(shares) == pytest.approx(0.05, abs=0.01)
    struggling = simulate.agent_panel(3, 300, struggling=0.1)
    assert statistics.mean(a.csat_top_box for a in struggling[9::10]) == pytest.approx(0.65, abs=0.02)
    with pytest.raises(ValueError):
        simulate.agent_panel(3, 5)


def test_panel_agents_are_the_roster_and_their_surveys_ask_csat_at_their_true_share():
    panel = simulate.agent_panel(5, 12, mean=0.5, sd=0.2)
    truth = {a.agent_id: a.csat_top_box for a in panel}
    owner, answers = {}, defaultdict(list)
    for r in generate(5, 20_000, START_MS, 5.0, panel=panel):
        if r.kind == "interaction":
            owner[r.value["interaction_id"]] = r.value.get("agent_id")
            assert r.value.get("agent_id") in {None, *truth}
        elif owner[r.value["interaction_id"]] is not None:
            csat = [a for a in r.value["answers"] if a["metric"] == "csat"]
            assert len(csat) == 1 and 1 <= csat[0]["value"] <= 5
            answers[owner[r.value["interaction_id"]]].append(csat[0]["value"] >= 4)
    for agent, satisfied in answers.items():
        share = sum(satisfied) / len(satisfied)
        assert share == pytest.approx(truth[agent], abs=4 / math.sqrt(len(satisfied)))


def test_surveys_stop_on_one_channel_from_a_time_on_and_everything_else_stays_the_same():
    stop_ms = START_MS + 20 * 60_000
    until = START_MS + 60 * 60_000
    base = [r for r in records(count=20_000, rate=3.0) if r.event_ms < until]
    stopped = [r for r in generate(7, 20_000, START_MS, 3.0, surveys_stop="Chat", surveys_stop_ms=stop_ms)
               if r.event_ms < until]
    closed = {r.value["interaction_id"]: (r.value["channel"], r.event_ms)
              for r in base if r.kind == "interaction"}

    def dropped(r: SimRecord) -> bool:
        channel, closed_ms = closed[r.value["interaction_id"]]
        return r.kind == "survey" and channel == "chat" and closed_ms >= stop_ms

    assert stopped == [r for r in base if not dropped(r)]
    assert sum(map(dropped, base)) > 100  # chat's surveys were many, and are gone
    chat_closed = [closed[r.value["interaction_id"]][1] for r in stopped
                   if r.kind == "survey" and closed[r.value["interaction_id"]][0] == "chat"]
    assert chat_closed and max(chat_closed) < stop_ms


def test_surveys_stop_from_the_command_line(capsysbinary):
    assert simulate.main(["--dry-run", "--count", "3000", "--seed", "5", "--start", "2024-05-01T08:00:00Z",
                          "--surveys-stop", "voice"]) == 0
    lines = [orjson.loads(line) for line in capsysbinary.readouterr().out.splitlines()]
    channel = {x["value"]["interaction_id"]: x["value"]["channel"]
               for x in lines if "closed_at" in x["value"]}
    surveys = [channel[x["value"]["interaction_id"]] for x in lines if "answers" in x["value"]]
    assert surveys and "voice" not in surveys
    with pytest.raises(ValueError, match="surveys-stop"):
        generate(1, 10, START_MS, 10.0, surveys_stop="carrier-pigeon")

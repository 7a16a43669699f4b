"""The agents-to-coach view: snapshot fields to the maths' inputs, the ranking, its edge cases."""

from __future__ import annotations

import math

import msgspec
import pytest

from stream_app import agents, scoring, snapshot
from stream_app.agents import METRICS, AgentFigure, figure, latest_window, rank
from stream_app.events import Answer

DAY_MS = 86_400_000


def doc(key: str, answers: list[Answer], end_ms: int = DAY_MS, dimension: str = "agent") -> dict:
    stats = scoring.empty()
    for answer in answers:
        scoring.add_survey(stats, [answer])
    return snapshot.build("acme", dimension, key, "1d", end_ms - DAY_MS, end_ms, False, stats, end_ms)


def csat(key: str, satisfied: int, n: int) -> dict:
    return doc(key, [Answer("csat", 5 if i < satisfied else 2, 1, 5) for i in range(n)])


def test_a_share_count_is_recovered_from_the_rounded_percentage():
    found = figure(METRICS["csat.pct"], "a", csat("a", 2, 3))  # 66.6667%
    assert (found.n, found.value, found.successes) == (3, 66.6667, 2)


def test_a_mean_standard_deviation_is_recovered_from_its_interval():
    values = [1, 2, 4, 7, 7]
    found = figure(METRICS["ces.mean"], "a", doc("a", [Answer("ces", v, 1, 7) for v in values]))
    mean = sum(values) / 5
    assert found.value == pytest.approx(mean)
    assert found.sum_of_squares == pytest.approx(sum((v - mean) ** 2 for v in values), rel=1e-4)
    effort = figure(METRICS["ces.effort_mean"], "a", doc("a", [Answer("ces", v, 1, 7) for v in values]))
    assert effort.value == pytest.approx(8 - mean) and effort.sum_of_squares == found.sum_of_squares


def test_a_net_score_variance_comes_from_its_positive_and_negative_shares():
    # 2 promoters, 1 detractor of 4: per answer 100^2 (3/4 - (1/4)^2) = 6875, times n = 4
    found = figure(METRICS["nps.score"], "a", doc("a", [Answer("nps", v, 0, 10) for v in (10, 9, 7, 3)]))
    assert (found.n, found.value) == (4, 25.0)
    assert found.sum_of_squares == pytest.approx(4 * 6875.0)


def test_a_group_without_answers_is_an_agent_with_n_zero():
    assert figure(METRICS["nps.score"], "a", csat("a", 2, 3)) == AgentFigure("a", 0, None)


def test_shares_ranked_with_prior_interval_probability_and_coach():
    # the three shares of tests/unit/test_shrinkage.py: prior mean 50%, a + b = 32/13
    ranking = rank(METRICS["csat.pct"], 50.0, [figure(METRICS["csat.pct"], k, csat(k, s, 10))
                                                for k, s in (("hi", 8), ("lo", 2), ("mid", 5))])
    assert ranking.prior == agents.Prior(50.0, round(32 / 13, 4), True)
    low, mid, high = ranking.agents
    assert [a.key for a in ranking.agents] == ["lo", "mid", "hi"], "most likely worse first"
    assert low.adjusted == round(100 * 7 / 27, 4) and low.value == 20.0 and low.n == 10
    assert low.interval is not None and low.interval[0] < low.adjusted < low.interval[1]
    assert mid.p_below_target == 0.5 and not mid.coach
    assert low.p_below_target is not None and low.p_below_target > 0.9 and low.coach
    assert high.p_below_target == pytest.approx(1 - low.p_below_target, abs=1e-4) and not high.coach


def test_means_ranked_and_effort_is_worse_above_the_target():
    figures = [AgentFigure(k, 4, v, sum_of_squares=12.0) for k, v in (("a", 3.0), ("b", 5.0), ("c", 7.0))]
    # sigma^2 = 36 / 9 = 4: the normal example of tests/unit/test_shrinkage.py
    ease = rank(METRICS["ces.mean"], 4.0, figures)
    assert ease.prior == agents.Prior(5.0, round(4 / 3, 4), True)
    assert ease.agents[0].key == "a" and ease.agents[0].adjusted == 3.5
    p = 0.5 * (1 + math.erf(0.5 / math.sqrt(0.75) / math.sqrt(2)))  # 0.7181: below 0.8
    assert ease.agents[0].p_below_target == round(p, 4) and not ease.agents[0].coach
    effort = rank(METRICS["ces.effort_mean"], 6.0, figures)
    assert effort.agents[0].key == "c" and effort.agents[0].adjusted == 6.5
    assert effort.agents[0].p_below_target == round(p, 4), "P(effort above the target)"


def test_interval_is_clipped_to_the_metric_range():
    figures = [AgentFigure(k, 1, v, sum_of_squares=0.0) for k, v in (("a", 100.0), ("b", 100.0))]
    ranking = rank(METRICS["ces.net_ease"], 0.0, figures)  # flat prior, sigma^2 the scale's largest
    assert not ranking.prior.fitted and ranking.prior.mean is None and ranking.prior.strength == 0.0
    assert all(a.interval is not None and a.interval[1] == 100.0 for a in ranking.agents)


def test_agents_without_answers_are_listed_last_with_nulls_and_not_fitted():
    figures = [figure(METRICS["csat.pct"], k, csat(k, s, 10)) for k, s in (("lo", 2), ("mid", 5), ("hi", 8))]
    ranking = rank(METRICS["csat.pct"], 50.0, [AgentFigure("idle", 0, None), *figures])
    assert ranking.agents[-1] == agents.AgentScore("idle", 0, None, None, None, None, False)
    assert ranking.prior == rank(METRICS["csat.pct"], 50.0, figures).prior


def test_one_agent_is_judged_on_its_own_answers():
    ranking = rank(METRICS["csat.pct"], 80.0, [figure(METRICS["csat.pct"], "solo", csat("solo", 3, 4))])
    assert ranking.prior == agents.Prior(50.0, 1.0, False), "Jeffreys' Beta(1/2, 1/2)"
    assert ranking.agents[0].adjusted == 70.0  # (3 + 1/2) / (4 + 1)


def test_no_agents():
    assert rank(METRICS["nps.score"], 0.0, []) == agents.Ranking(agents.Prior(None, 0.0, False), [])


def test_the_document_has_the_contract_fields():
    ranking = rank(METRICS["csat.pct"], 50.0, [figure(METRICS["csat.pct"], "a", csat("a", 1, 2))])
    body = msgspec.json.decode(msgspec.json.encode(ranking))
    assert set(body) == {"prior", "agents"}
    assert set(body["prior"]) == {"mean", "strength", "fitted"}
    assert set(body["agents"][0]) == {"key", "n", "value", "adjusted", "interval", "p_below_target", "coach"}
    assert isinstance(body["agents"][0]["interval"], list)


def test_only_agents_of_the_newest_window_and_neither_unknown_nor_other():
    docs = [csat("a", 1, 2), csat("unknown", 1, 2), csat("other", 1, 2),
            doc("old", [Answer("csat", 5, 1, 5)], end_ms=DAY_MS // 2), doc("all", [], dimension="all")]
    assert [d["key"] for d in latest_window(docs)] == ["a"]
    assert latest_window([]) == []

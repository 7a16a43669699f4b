"""Score maths against CONTRACT.md "Scores". Every expectation is worked out by hand in a comment."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app import scoring
from stream_app.events import Answer, Interaction
from stream_app.scoring import (
    STATS_LEN,
    add_interaction,
    add_survey,
    adjusted_wald_net,
    empty,
    mean_ci,
    merge_into,
    score_groups,
    wilson_pct,
)

SL = 20.0  # service level threshold used throughout (the contract's default)


def ces(value: float, lo: int = 1, hi: int = 7, easier: bool = True) -> Answer:
    return Answer("ces", value, lo, hi, easier)


def csat(value: float, lo: int = 1, hi: int = 5) -> Answer:
    return Answer("csat", value, lo, hi)


def nps(value: float) -> Answer:
    return Answer("nps", value, 0, 10)


def ix(
    *,
    wait: float | None = None,
    handle: float | None = None,
    transfers: int = 0,
    abandoned: bool = False,
    resolved: bool | None = None,
    n: int = 0,
) -> Interaction:
    return Interaction(
        event_id=f"e{n}",
        interaction_id=f"i{n}",
        tenant="acme",
        channel="voice",
        queue=None,
        agent_id=None,
        touchpoint=None,
        closed_at_ms=1_700_000_000_000 + n,
        wait_seconds=wait,
        handle_seconds=handle,
        transfers=transfers,
        abandoned=abandoned,
        resolved=resolved,
    )


def scores_of(*answers: Answer) -> dict:
    """One survey per answer."""
    acc = empty()
    for a in answers:
        add_survey(acc, [a])
    return score_groups(acc)


# --- vector and empty groups -------------------------------------------------------------------


def test_empty_is_all_zeros_of_stats_len() -> None:
    assert empty() == [0.0] * STATS_LEN
    assert empty() is not empty()  # a fresh list each time, safe to mutate


def test_empty_groups_have_n_zero_and_every_other_field_null() -> None:
    groups = score_groups(empty())
    for name, group in groups.items():
        assert group["n"] == 0 and isinstance(group["n"], int), name
        assert all(v is None for k, v in group.items() if k != "n"), name


def test_keys_are_exactly_those_of_the_contract_snapshot() -> None:
    groups = score_groups(empty())
    assert list(groups) == ["ces", "csat", "nps", "interactions", "surveys"]
    assert set(groups["ces"]) == {
        "n", "mean", "effort_mean", "easy_pct", "difficult_pct", "net_ease", "ci95", "mean_ci95",
    }
    assert set(groups["csat"]) == {"n", "pct", "mean", "ci95", "mean_ci95"}
    assert set(groups["nps"]) == {"n", "score", "promoters_pct", "detractors_pct", "ci95"}
    assert set(groups["interactions"]) == {
        "n", "abandoned_pct", "aht_seconds", "asa_seconds", "fcr_pct", "transfer_pct",
        "service_level_pct", "response_pct",
    }
    assert set(groups["surveys"]) == {"n", "delay_p50_seconds", "delay_p90_seconds"}


def test_groups_without_answers_stay_null_while_others_fill() -> None:
    groups = scores_of(nps(10))
    assert groups["nps"]["n"] == 1
    assert groups["ces"] == {
        "n": 0, "mean": None, "effort_mean": None, "easy_pct": None, "difficult_pct": None,
        "net_ease": None, "ci95": None, "mean_ci95": None,
    }
    assert groups["csat"] == {"n": 0, "pct": None, "mean": None, "ci95": None, "mean_ci95": None}
    # a survey but no interaction: response_pct has a zero denominator, so it is null too
    assert groups["interactions"]["n"] == 0
    assert groups["interactions"]["response_pct"] is None


def test_counts_are_output_as_ints() -> None:
    acc = empty()
    add_survey(acc, [ces(5), csat(4), nps(9)])
    add_interaction(acc, ix(wait=1), SL)
    for group in score_groups(acc).values():
        assert type(group["n"]) is int and group["n"] == 1
    acc[scoring.SURVEYS] = 2.0  # the survey count reads the response counter
    assert score_groups(acc)["surveys"]["n"] == 2


def test_every_float_output_is_rounded_to_four_decimals() -> None:
    # 1/3 and 1/7 shares give endless decimals everywhere
    acc = empty()
    for v in (1, 4, 7):
        add_survey(acc, [ces(v), csat(v, 1, 7), nps(v)])
    for w in (1, 2, 30, 40, 50, 61, 70):
        add_interaction(acc, ix(wait=w / 3, handle=w / 7, resolved=w > 2), SL)
    for group in score_groups(acc).values():
        for key, v in group.items():
            values = v if isinstance(v, list) else [v]
            for x in values:
                if isinstance(x, float):
                    assert round(x, 4) == x, (key, x)


# --- CES ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lo", "hi", "value", "easier", "band"),
    [
        # 1-5: n=5, k=floor(4/2)=2; difficult e <= 1+2-1 = 2, easy e >= 5-2+1 = 4
        (1, 5, 1, True, "difficult"),
        (1, 5, 2, True, "difficult"),
        (1, 5, 3, True, "neutral"),
        (1, 5, 4, True, "easy"),
        (1, 5, 5, True, "easy"),
        # 1-7: n=7, k=3; difficult e <= 3, easy e >= 5
        (1, 7, 3, True, "difficult"),
        (1, 7, 4, True, "neutral"),
        (1, 7, 5, True, "easy"),
        # effort-worded 1-5: e = 1+5-value, so value 5 -> e 1 (difficult), value 1 -> e 5 (easy)
        (1, 5, 5, False, "difficult"),
        (1, 5, 4, False, "difficult"),
        (1, 5, 3, False, "neutral"),
        (1, 5, 2, False, "easy"),
        (1, 5, 1, False, "easy"),
        # effort-worded 1-7: value 5 -> e 3 difficult, 4 -> 4 neutral, 3 -> 5 easy
        (1, 7, 5, False, "difficult"),
        (1, 7, 4, False, "neutral"),
        (1, 7, 3, False, "easy"),
        # 0-10: n=11, k=5; difficult e <= 0+5-1 = 4, easy e >= 10-5+1 = 6
        (0, 10, 4, True, "difficult"),
        (0, 10, 5, True, "neutral"),
        (0, 10, 6, True, "easy"),
    ],
)
def test_ces_easy_and_difficult_cut_points(lo: int, hi: int, value: int, easier: bool, band: str) -> None:
    g = scores_of(ces(value, lo, hi, easier))["ces"]
    assert (g["easy_pct"], g["difficult_pct"]) == {
        "easy": (100.0, 0.0),
        "difficult": (0.0, 100.0),
        "neutral": (0.0, 0.0),
    }[band]


def test_ces_on_1_to_7_scale() -> None:
    g = scores_of(*(ces(v) for v in range(1, 8)))["ces"]
    # values 1..7: ease = value; mean = 28/7 = 4; effort_mean = 8 - 4 = 4
    # difficult {1,2,3} = 3/7 = 42.857142.. %, easy {5,6,7} = 3/7 = 42.857142.. %; net 0
    assert g["n"] == 7
    assert g["mean"] == 4.0
    assert g["effort_mean"] == 4.0
    assert g["easy_pct"] == 42.8571
    assert g["difficult_pct"] == 42.8571
    assert g["net_ease"] == 0.0
    # adjusted Wald: n'=10, p+'=p-'=3.75/10=0.375, centre 0,
    # half = 100*1.959964*sqrt((0.75 - 0)/10) = 195.9964*0.2738613 = 53.67582
    assert g["ci95"] == [-53.6758, 53.6758]
    # s^2 = (9+4+1+0+1+4+9)/6 = 4.666667; half = 1.959964*sqrt(4.666667/7) = 1.959964*0.8164966 = 1.600304
    assert g["mean_ci95"] == [2.3997, 5.6003]


def test_ces_on_1_to_5_scale_rescales_to_1_to_7_ease() -> None:
    g = scores_of(*(ces(v, 1, 5) for v in (1, 2, 3, 4, 5, 5)))["ces"]
    # ease = 1 + 6*(v-1)/4: 1, 2.5, 4, 5.5, 7, 7 -> sum 27, mean 27/6 = 4.5; effort_mean 3.5
    # easy {4,5,5} = 3/6 = 50 %, difficult {1,2} = 2/6 = 33.3333 %, net_ease 1/6 = 16.6667
    assert g["n"] == 6
    assert g["mean"] == 4.5
    assert g["effort_mean"] == 3.5
    assert g["easy_pct"] == 50.0
    assert g["difficult_pct"] == 33.3333
    assert g["net_ease"] == 16.6667
    # n'=9, p+'=3.75/9=0.416667, p-'=2.75/9=0.305556, centre 100*(1/9) = 11.1111
    # half = 195.9964*sqrt((0.722222 - 0.0123457)/9) = 195.9964*0.2808473 = 55.04504
    assert g["ci95"] == [-43.9339, 66.1562]
    # deviations from 4.5: -3.5,-2,-0.5,1,2.5,2.5 -> squares 12.25+4+0.25+1+6.25+6.25 = 30; s^2 = 30/5 = 6
    # half = 1.959964*sqrt(6/6) = 1.959964
    assert g["mean_ci95"] == [2.54, 6.46]


def test_ces_effort_worded_scale_is_flipped_before_scoring() -> None:
    g = scores_of(*(ces(v, 1, 7, easier=False) for v in (1, 7, 2, 4)))["ces"]
    # e = 8 - value: 7, 1, 6, 4 -> mean 18/4 = 4.5; effort_mean 8 - 4.5 = 3.5
    # easy {7,6} = 50 %, difficult {1} = 25 %, net_ease 25
    assert (g["mean"], g["effort_mean"]) == (4.5, 3.5)
    assert (g["easy_pct"], g["difficult_pct"], g["net_ease"]) == (50.0, 25.0, 25.0)
    # n'=7, p+'=2.75/7=0.392857, p-'=1.75/7=0.25, centre 100*(1/7) = 14.285714
    # half = 195.9964*sqrt((0.642857 - 0.0204082)/7) = 195.9964*0.2981967 = 58.44547
    assert g["ci95"] == [-44.1598, 72.7312]
    # deviations from 4.5: 2.5,-3.5,1.5,-0.5 -> 6.25+12.25+2.25+0.25 = 21, s^2 = 7
    # half = 1.959964*sqrt(7/4) = 1.959964*1.3228757 = 2.592789
    assert g["mean_ci95"] == [1.9072, 7.0928]


def test_ces_same_answer_on_both_polarities_scores_the_same() -> None:
    # "5 of 5, very easy" and "1 of 5, very little effort" are the same experience
    assert scores_of(ces(5, 1, 5))["ces"] == scores_of(ces(1, 1, 5, easier=False))["ces"]


# --- CSAT --------------------------------------------------------------------------------------


def test_csat_on_1_to_5_scale() -> None:
    g = scores_of(*(csat(v) for v in (5, 4, 3, 2, 1, 5, 4, 5)))["csat"]
    # satisfied >= 5-1 = 4: {5,4,5,4,5} = 5/8 = 62.5 %; mean 29/8 = 3.625 (1-5 is the identity)
    assert g["n"] == 8
    assert g["pct"] == 62.5
    assert g["mean"] == 3.625
    # Wilson k=5 n=8: z^2=3.841459, denom=1+3.841459/8=1.480182,
    # centre=(0.625+3.841459/16)/denom=0.865091/1.480182=0.584449,
    # half=1.959964*sqrt(0.625*0.375/8+3.841459/256)/denom=1.959964*0.2104846/1.480182=0.278707
    assert g["ci95"] == [30.5742, 86.3156]
    # deviations from 3.625: squares 1.890625*3 + 0.140625*2 + 0.390625 + 2.640625 + 6.890625 = 15.875
    # s^2 = 15.875/7 = 2.267857; half = 1.959964*sqrt(2.267857/8) = 1.959964*0.5324259 = 1.043544
    assert g["mean_ci95"] == [2.5815, 4.6685]


def test_csat_on_1_to_10_scale_uses_top_two_boxes_and_rescales_mean() -> None:
    g = scores_of(*(csat(v, 1, 10) for v in (10, 9, 8, 1)))["csat"]
    # satisfied >= 10-1 = 9: {10, 9} = 50 %
    # mean on 1-5: 1+4*(v-1)/9 -> 5, 1+32/9, 1+28/9, 1 = 5 + 4.555556 + 4.111111 + 1
    #   = 14.666667, mean 3.666667
    assert g["pct"] == 50.0
    assert g["mean"] == 3.6667
    # Wilson k=2 n=4: denom=1+3.841459/4=1.960365, centre=(0.5+0.480182)/1.960365=0.5,
    # half=1.959964*sqrt(0.0625+3.841459/64)/1.960365=1.959964*0.3500284/1.960365=0.349961
    assert g["ci95"] == [15.0039, 84.9961]
    # deviations from 3.666667: 1.333333, 0.888889, 0.444444, -2.666667
    # squares 1.777778+0.790123+0.197531+7.111111 = 9.876543, s^2 = 3.292181
    # half = 1.959964*sqrt(3.292181/4) = 1.959964*0.9072189 = 1.778115
    assert g["mean_ci95"] == [1.8886, 5.4448]


# --- NPS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "promoter", "detractor"),
    [(0, 0.0, 100.0), (6, 0.0, 100.0), (7, 0.0, 0.0), (8, 0.0, 0.0), (9, 100.0, 0.0), (10, 100.0, 0.0)],
)
def test_nps_promoter_passive_detractor_bands(value: int, promoter: float, detractor: float) -> None:
    g = scores_of(nps(value))["nps"]
    assert (g["promoters_pct"], g["detractors_pct"]) == (promoter, detractor)


def test_nps_score_and_adjusted_wald_interval() -> None:
    g = scores_of(*(nps(v) for v in (9, 10, 9, 10, 10, 7, 8, 8, 0, 6)))["nps"]
    # 5 promoters, 3 passives, 2 detractors of 10: 50 % - 20 % = 30
    assert g == {
        "n": 10,
        "score": 30.0,
        "promoters_pct": 50.0,
        "detractors_pct": 20.0,
        # n'=13, p+'=5.75/13=0.442308, p-'=2.75/13=0.211538, centre 100*3/13 = 23.076923
        # var=(0.653846 - 0.230769^2)/13 = (0.653846-0.053254)/13 = 0.0461994
        # half = 195.9964*0.2149405 = 42.12754
        "ci95": [-19.0506, 65.2045],
    }


# --- intervals on their own ---------------------------------------------------------------------


def test_wilson_interval_for_8_of_10() -> None:
    # p=0.8, z^2=3.841459, denom=1.384146, centre=(0.8+0.192073)/1.384146=0.716740
    # half=1.959964*sqrt(0.016+0.0096036)/denom=1.959964*0.1600113/1.384146=0.226578
    assert wilson_pct(8, 10) == pytest.approx([49.0162, 94.3318], abs=1e-4)


def test_wilson_interval_stays_inside_0_and_100_at_the_extremes() -> None:
    # k=0 n=5: centre = half = (3.841459/10)/1.768292 = 0.217241 -> [0, 43.4482]
    low, high = wilson_pct(0, 5)
    assert low == 0.0 and high == pytest.approx(43.4482, abs=1e-4)
    low, high = wilson_pct(5, 5)
    assert low == pytest.approx(56.5518, abs=1e-4) and high == 100.0


def test_wilson_is_null_without_data() -> None:
    assert wilson_pct(0, 0) is None


def test_adjusted_wald_for_5_promoters_3_passives_2_detractors() -> None:
    # n'=13, p+'=5.75/13, p-'=2.75/13 (see the NPS test for the arithmetic)
    assert adjusted_wald_net(5, 2, 10) == pytest.approx([-19.050616, 65.204462], abs=1e-5)


def test_adjusted_wald_is_clipped_to_plus_minus_100() -> None:
    # 2 promoters of 2: n'=5, p+'=0.55, p-'=0.15, centre 40,
    # half = 195.9964*sqrt((0.7-0.16)/5) = 195.9964*0.3286335 = 64.41099 -> high 104.41 clipped to 100
    assert adjusted_wald_net(2, 0, 2) == pytest.approx([-24.411, 100.0], abs=1e-4)
    assert adjusted_wald_net(0, 2, 2) == pytest.approx([-100.0, 24.411], abs=1e-4)
    g = scores_of(nps(10), nps(9))["nps"]
    assert g["score"] == 100.0
    assert g["ci95"] == [-24.411, 100.0]


def test_adjusted_wald_is_null_without_data() -> None:
    assert adjusted_wald_net(0, 0, 0) is None


def test_mean_ci_uses_the_sample_standard_deviation() -> None:
    # values 2,4,4,4,5,5,7,9: total 40, sum of squares 232, n 8, mean 5
    # s^2 = (232 - 40^2/8)/7 = 32/7 = 4.571429
    # half = 1.959964*sqrt(4.571429/8) = 1.959964*0.7559289 = 1.481594
    assert mean_ci(40, 232, 8) == pytest.approx([3.518406, 6.481594], abs=1e-6)


def test_mean_ci_has_zero_width_when_all_values_agree() -> None:
    # three times 1.6: s = 0 even though 1.6 is not exact in binary
    assert mean_ci(3 * 1.6, 3 * 1.6 * 1.6, 3) == pytest.approx([1.6, 1.6], abs=1e-6)


@pytest.mark.parametrize("n", [0, 1])
def test_mean_ci_is_null_below_two_values(n: int) -> None:
    assert mean_ci(5.0 * n, 25.0 * n, n) is None


def test_single_answer_has_headline_interval_but_no_mean_interval() -> None:
    groups = scores_of(ces(6), csat(5))
    assert groups["ces"]["ci95"] is not None and groups["ces"]["mean_ci95"] is None
    assert groups["csat"]["ci95"] is not None and groups["csat"]["mean_ci95"] is None


# --- interactions -------------------------------------------------------------------------------


def interaction_fixture() -> list[Interaction]:
    return [
        ix(n=1, wait=10, handle=300, transfers=0, resolved=True),
        ix(n=2, wait=30, handle=200, transfers=2, resolved=False),
        ix(n=3, wait=20, handle=None, transfers=1, resolved=None),  # exactly at the service level
        ix(n=4, wait=5, handle=999, transfers=3, resolved=True, abandoned=True),  # quick, but abandoned
        ix(n=5, wait=None, abandoned=True),
        ix(n=6, wait=None, handle=100, transfers=0, resolved=True),
    ]


def test_interaction_kpis() -> None:
    acc = empty()
    for i in interaction_fixture():
        add_interaction(acc, i, SL)
    g = score_groups(acc)["interactions"]
    assert g == {
        "n": 6,
        "abandoned_pct": 33.3333,  # 2 of 6
        "aht_seconds": 200.0,  # answered with handle: (300+200+100)/3; the abandoned 999 is left out
        "asa_seconds": 20.0,  # answered with wait: (10+30+20)/3; the abandoned 5 is left out
        "fcr_pct": 66.6667,  # answered that say: #1 yes, #2 no, #6 yes -> 2/3; #3 (None) and #4 left out
        "transfer_pct": 50.0,  # answered #1,#2,#3,#6; transferred #2,#3 -> 2/4
        # with a wait: #1,#2,#3,#4 (abandoned included) = 4; answered within 20 s: #1, #3 -> 2/4
        "service_level_pct": 50.0,
        "response_pct": 0.0,  # no surveys counted: 0/6
    }


def test_service_level_counts_abandoned_with_a_wait_as_missed() -> None:
    acc = empty()
    add_interaction(acc, ix(wait=5), SL)
    add_interaction(acc, ix(wait=5, abandoned=True), SL)
    add_interaction(acc, ix(wait=None, abandoned=True), SL)  # no wait: not in the denominator
    # met 1 (the answered one) of 2 with a wait
    assert score_groups(acc)["interactions"]["service_level_pct"] == 50.0


def test_only_abandoned_interactions_leave_answered_kpis_null() -> None:
    acc = empty()
    add_interaction(acc, ix(wait=40, handle=10, resolved=True, transfers=1, abandoned=True), SL)
    g = score_groups(acc)["interactions"]
    assert (g["n"], g["abandoned_pct"], g["service_level_pct"]) == (1, 100.0, 0.0)
    assert g["aht_seconds"] is None and g["asa_seconds"] is None
    assert g["fcr_pct"] is None and g["transfer_pct"] is None


def test_fcr_is_null_when_no_answered_interaction_says_whether_it_was_resolved() -> None:
    acc = empty()
    add_interaction(acc, ix(resolved=None), SL)
    assert score_groups(acc)["interactions"]["fcr_pct"] is None


def test_response_pct_is_survey_responses_over_interactions() -> None:
    acc = empty()
    for i in interaction_fixture():  # 6 interactions
        add_interaction(acc, i, SL)
    add_survey(acc, [ces(5), csat(4), nps(9)])  # one response, three answers
    add_survey(acc, [nps(3)])
    add_survey(acc, [csat(2)])
    # 3 responses / 6 interactions = 50 %, however many answers each response holds
    assert score_groups(acc)["interactions"]["response_pct"] == 50.0


# --- input checks --------------------------------------------------------------------------------


def test_unknown_metric_is_rejected_without_touching_the_aggregate() -> None:
    acc = empty()
    with pytest.raises(ValueError):
        add_survey(acc, [ces(5), Answer("effort", 3, 1, 5)])
    assert acc == empty()


def test_vectors_of_another_length_are_rejected() -> None:
    with pytest.raises(ValueError):
        merge_into(empty(), [0.0] * (STATS_LEN - 1))
    with pytest.raises(ValueError):
        score_groups([0.0] * (STATS_LEN + 1))


# --- merging --------------------------------------------------------------------------------------


def test_merging_two_halves_equals_adding_everything_into_one() -> None:
    surveys = [
        [ces(2), csat(5), nps(10)],
        [ces(6, 1, 5), nps(4)],
        [ces(3, 1, 7, easier=False), csat(9, 1, 10)],
        [csat(1), nps(8)],
    ]
    interactions = interaction_fixture()
    whole, first, second = empty(), empty(), empty()
    for k, s in enumerate(surveys):
        add_survey(whole, s)
        add_survey(first if k < 2 else second, s)
    for k, i in enumerate(interactions):
        add_interaction(whole, i, SL)
        add_interaction(first if k < 3 else second, i, SL)
    merged = empty()
    merge_into(merged, first)
    merge_into(merged, second)
    assert merged == whole
    assert score_groups(merged) == score_groups(whole)
    assert score_groups(merged)["ces"]["n"] == 3 and score_groups(merged)["interactions"]["n"] == 6


def test_merge_is_bit_identical_whatever_the_grouping() -> None:
    # in floats (0.1 + 0.2) + 0.3 = 0.6000000000000001 but 0.1 + (0.2 + 0.3) = 0.6;
    # in whole milliseconds (100 + 200) + 300 = 100 + (200 + 300) = 600
    # 1-10 CES ease 1 + 6*(v-1)/9 has thirds; in 1/2520ths 2 -> 4200, 3 -> 5880, 5 -> 9240
    parts = []
    for w, v in ((0.1, 2), (0.2, 3), (0.3, 5)):
        acc = empty()
        add_interaction(acc, ix(wait=w, handle=w), SL)
        add_survey(acc, [ces(v, 1, 10), csat(v, 1, 10)])
        parts.append(acc)
    left, right = empty(), empty()
    merge_into(left, parts[0])
    merge_into(left, parts[1])
    merge_into(left, parts[2])
    tail = empty()
    merge_into(tail, parts[1])
    merge_into(tail, parts[2])
    merge_into(right, parts[0])
    merge_into(right, tail)
    assert left == right
    g = score_groups(left)
    assert g["interactions"]["asa_seconds"] == 0.2  # 600 ms / 3
    # ease 1+6/9, 1+12/9, 1+24/9 -> sum 3 + 42/9 = 7.666667, mean 2.555556
    assert g["ces"]["mean"] == 2.5556


def test_seconds_are_kept_to_the_millisecond() -> None:
    acc = empty()
    add_interaction(acc, ix(handle=12.3454), SL)  # 12345 ms
    add_interaction(acc, ix(handle=12.3474), SL)  # 12347 ms -> mean 12346 ms (unrounded: 12.3464 s)
    assert score_groups(acc)["interactions"]["aht_seconds"] == 12.346


def test_merge_into_adds_in_place_and_leaves_other_alone() -> None:
    acc, other = empty(), empty()
    add_survey(acc, [nps(9)])
    add_survey(other, [nps(0)])
    snapshot = list(other)
    merge_into(acc, other)
    assert other == snapshot
    assert score_groups(acc)["nps"] == scores_of(nps(9), nps(0))["nps"]


SCALES = {
    "ces": [(1, 7), (1, 5), (1, 10), (0, 10)],
    "csat": [(1, 5), (1, 10), (1, 7), (0, 10)],
    "nps": [(0, 10)],
}


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    metric = draw(st.sampled_from(sorted(SCALES)))
    lo, hi = draw(st.sampled_from(SCALES[metric]))
    value = draw(st.integers(lo, hi))
    return Answer(metric, value, lo, hi, draw(st.booleans()) if metric == "ces" else True)


@st.composite
def interactions(draw: st.DrawFn) -> Interaction:
    seconds = st.none() | st.floats(0, 3600, allow_nan=False, allow_infinity=False)
    return ix(
        wait=draw(seconds),
        handle=draw(seconds),
        transfers=draw(st.integers(0, 3)),
        abandoned=draw(st.booleans()),
        resolved=draw(st.none() | st.booleans()),
    )


@settings(max_examples=300, deadline=None)
@given(
    surveys=st.lists(st.lists(answers(), min_size=1, max_size=10), max_size=40),
    ixs=st.lists(interactions(), max_size=40),
    data=st.data(),
)
def test_merge_of_partial_vectors_scores_like_one_vector(
    surveys: list[list[Answer]], ixs: list[Interaction], data: st.DataObject
) -> None:
    cut_s = data.draw(st.integers(0, len(surveys)), label="survey split")
    cut_i = data.draw(st.integers(0, len(ixs)), label="interaction split")
    whole, first, second = empty(), empty(), empty()
    for k, s in enumerate(surveys):
        add_survey(whole, s)
        add_survey(first if k < cut_s else second, s)
    for k, i in enumerate(ixs):
        add_interaction(whole, i, SL)
        add_interaction(first if k < cut_i else second, i, SL)
    merged = empty()
    merge_into(merged, first)
    merge_into(merged, second)
    assert merged == whole  # bit for bit, so no rounding tie can come out differently
    assert score_groups(merged) == score_groups(whole)


def test_vector_layout_indices_are_distinct_and_cover_the_vector() -> None:
    indices = [
        v for k, v in vars(scoring).items()
        if k.isupper() and isinstance(v, int) and k not in {"STATS_LEN", "UNIT", "DELAY_BINS"}
    ]
    indices += range(scoring.DELAY_FIRST + 1, scoring.DELAY_FIRST + scoring.DELAY_BINS)  # the other bins
    assert sorted(indices) == list(range(STATS_LEN))
    assert math.isclose(scoring.Z95, 1.959964)


# --- survey delay histogram --------------------------------------------------------------------


@pytest.mark.parametrize(("seconds", "bin_"), [
    (0, 0), (14.999, 0), (-3, 0),  # [0, 15 s); answered before the close (skew) counts as no delay
    (15, 1), (21.2, 1),  # [15, 15·√2 = 21.213)
    (21.214, 2), (30, 3),  # 30 = 15·2^(2/2): the lower edge of bin 3
    (3600, 16),  # 2·log2(3600/15) = 15.81: bin 1 + 15
    (245_759, 28), (245_760, 29), (10**7, 29),  # the open last bin from 15·2^14 s
])
def test_delay_bins_are_two_per_doubling_from_15_seconds(seconds: float, bin_: int) -> None:
    assert scoring.delay_index(round(seconds * 1000)) == scoring.DELAY_FIRST + bin_


def test_every_delay_edge_opens_its_own_bin() -> None:
    for bin_, edge in enumerate(scoring.DELAY_EDGES_SECONDS[1:], start=1):
        ms = math.ceil(edge * 1000)
        assert scoring.delay_index(ms) == scoring.DELAY_FIRST + bin_, edge


def with_delays(*seconds: float) -> list[float]:
    acc = empty()
    for s in seconds:
        acc[scoring.delay_index(round(s * 1000))] += 1.0
    return acc


def test_delay_quantiles_are_the_geometric_middle_of_their_bin() -> None:
    # 100 s is in bin 6: [15·2^2.5, 15·2^3) = [84.85, 120): middle 15·2^2.75 = 100.9
    # 3600 s is in bin 16: [15·2^7.5, 15·2^8) = [2715.29, 3840): middle 15·2^7.75 = 3229.0
    acc = with_delays(100, 100, 100, 3600)
    assert score_groups(acc)["surveys"]["delay_p50_seconds"] == round(15 * 2 ** 2.75, 4)
    assert score_groups(acc)["surveys"]["delay_p90_seconds"] == round(15 * 2 ** 7.75, 4)


def test_delay_quantile_takes_the_bin_where_the_rank_is_reached() -> None:
    # ranks: p50 of 4 is 2 -> the second value's bin; p90 is 3.6 -> the fourth value's bin
    acc = with_delays(5, 60, 600, 6000)
    assert scoring.delay_quantile(acc, 0.5) == pytest.approx(15 * 2 ** 2.25)  # 60 s: bin [60, 84.85)
    assert scoring.delay_quantile(acc, 0.9) == pytest.approx(15 * 2 ** 8.75)  # 6000 s: [5430.6, 7680)


def test_delay_below_15_seconds_reads_7_5_and_beyond_the_last_edge_its_lower_edge() -> None:
    assert scoring.delay_quantile(with_delays(1, 2), 0.5) == 7.5
    assert scoring.delay_quantile(with_delays(10**6), 0.9) == 245_760.0


def test_delay_quantiles_are_null_without_a_joined_survey() -> None:
    groups = score_groups(empty())
    assert groups["surveys"] == {"n": 0, "delay_p50_seconds": None, "delay_p90_seconds": None}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=15, max_value=245_000), min_size=1, max_size=60))
def test_delay_quantile_is_within_19_percent_of_the_true_one(delays: list[float]) -> None:
    acc = with_delays(*delays)
    ordered = sorted(delays)
    for q in (0.5, 0.9):
        true = ordered[max(0, math.ceil(q * len(ordered)) - 1)]  # the smallest value with rank >= q·n
        estimate = scoring.delay_quantile(acc, q)
        assert estimate is not None
        assert abs(estimate - true) <= (2 ** 0.25 - 1) * true + 1e-6, (q, true, estimate)

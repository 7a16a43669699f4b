"""Baselines against hand-computed figures: the ewma's weights halve every half-life of event time, also
over irregular gaps; the seasonal median looks back whole periods; neither decides before min_history."""

from __future__ import annotations

import json

import pytest

from stream_app.baselines import Ewma, Seasonal, feed, level

T0 = 1_763_632_800_000  # 2025-11-20T10:00:00Z
MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR


def fed(spec, steps, history=None):
    """The history after feeding ``(t_ms, figure)`` steps in order, each through a JSON round trip."""
    for t_ms, figure in steps:
        history = feed(spec, json.loads(json.dumps(history)), t_ms, figure)
    return history


# --- ewma -------------------------------------------------------------------------------------------


def test_ewma_regular_steps_weigh_each_older_step_by_half_per_half_life():
    spec = Ewma(half_life_ms=2 * MIN, min_history_ms=0)
    history = fed(spec, [(T0, 10.0), (T0 + MIN, 20.0)])
    # weights at T0 + 1m: 0.5 ** (1/2) = 0.70711 for the 10, 1 for the 20:
    # (10 * 0.70711 + 20) / 1.70711 = 15.85786
    assert level(spec, history, T0 + 2 * MIN) == 15.8579
    assert history == {"first_ms": T0, "last_ms": T0 + MIN, "mean": pytest.approx(15.857864),
                       "weight": pytest.approx(1.707107)}


def test_ewma_one_half_life_apart_weighs_one_to_two_and_two_half_lives_one_to_four():
    spec = Ewma(half_life_ms=HOUR, min_history_ms=0)
    assert level(spec, fed(spec, [(T0, 0.0), (T0 + HOUR, 100.0)]), T0 + 2 * HOUR) == 66.6667  # 100 * 1/1.5
    assert level(spec, fed(spec, [(T0, 0.0), (T0 + 2 * HOUR, 100.0)]), T0 + 3 * HOUR) == 80.0  # 100 / 1.25


def test_ewma_irregular_gaps_decay_by_the_time_that_passed():
    spec = Ewma(half_life_ms=2 * MIN, min_history_ms=0)
    # 10 at 0, 20 at 1m, nothing at 2m and 3m, 40 at 4m. Weights as of 4m: 0.5 ** (4/2) = 0.25,
    # 0.5 ** (3/2) = 0.35355, 1: (2.5 + 7.07107 + 40) / 1.60355 = 30.91326
    history = fed(spec, [(T0, 10.0), (T0 + MIN, 20.0), (T0 + 2 * MIN, None), (T0 + 4 * MIN, 40.0)])
    assert level(spec, history, T0 + 5 * MIN) == 30.9133
    # the level does not depend on how far the boundary is from the last fed step: weights scale alike
    assert level(spec, history, T0 + 50 * MIN) == 30.9133


def test_ewma_decides_only_with_min_history_behind_it_default_four_half_lives():
    spec = Ewma(half_life_ms=2 * MIN, min_history_ms=8 * MIN)
    history = fed(spec, [(T0 - MIN, None)] + [(T0 + i * MIN, 50.0) for i in range(8)])
    assert history["first_ms"] == T0  # a step without a figure does not start the history
    assert level(spec, history, T0 + 7 * MIN) is None
    assert level(spec, history, T0 + 8 * MIN) == 50.0
    assert level(spec, None, T0) is None


def test_ewma_steps_without_a_figure_feed_nothing_and_a_repeated_step_is_not_counted_twice():
    spec = Ewma(half_life_ms=2 * MIN, min_history_ms=0)
    history = fed(spec, [(T0, 10.0)])
    assert fed(spec, [(T0 + MIN, None)], history) == history
    assert fed(spec, [(T0, 99.0)], history) == history


def test_feed_leaves_its_argument_as_it_was():
    spec = Ewma(half_life_ms=2 * MIN, min_history_ms=0)
    history = fed(spec, [(T0, 10.0)])
    kept = json.loads(json.dumps(history))
    feed(spec, history, T0 + MIN, 20.0)
    assert history == kept


# --- seasonal ---------------------------------------------------------------------------------------

PAST = [(T0 - 4 * DAY, 50.0), (T0 - 3 * DAY, 10.0), (T0 - 2 * DAY, 30.0), (T0 - DAY, 20.0)]


@pytest.mark.parametrize(
    ("lookback", "expected"),
    [
        (1, 20.0),  # yesterday
        (2, 25.0),  # median of 20, 30
        (3, 20.0),  # median of 20, 30, 10
        (4, 25.0),  # median of 20, 30, 10, 50: (20 + 30) / 2
    ],
)
def test_seasonal_is_the_median_of_the_same_boundary_one_to_lookback_periods_earlier(lookback, expected):
    spec = Seasonal(period_ms=DAY, lookback=lookback, min_history_ms=0)
    history = fed(spec, PAST[-lookback:])
    assert level(spec, history, T0) == expected


def test_seasonal_looks_at_the_same_boundary_only():
    spec = Seasonal(period_ms=DAY, lookback=2, min_history_ms=0)
    history = fed(spec, [(T0 - DAY - MIN, 99.0), (T0 - DAY, 20.0), (T0 - DAY + MIN, 99.0)])
    assert level(spec, history, T0) == 20.0
    assert level(spec, history, T0 + 2 * MIN) is None  # nothing at T0 + 2m - 1d or - 2d


def test_seasonal_missing_periods_leave_the_median_of_the_others():
    spec = Seasonal(period_ms=DAY, lookback=4, min_history_ms=0)
    history = fed(spec, [(T0 - 4 * DAY, 50.0), (T0 - 3 * DAY, None), (T0 - 2 * DAY, 30.0),
                         (T0 - DAY, 20.0)])
    assert level(spec, history, T0) == 30.0  # median of 20, 30, 50
    assert level(spec, fed(spec, [(T0 - DAY, 20.0)]), T0) == 20.0


def test_seasonal_decides_only_with_min_history_default_lookback_periods():
    spec = Seasonal(period_ms=DAY, lookback=4, min_history_ms=4 * DAY)
    history = fed(spec, PAST[1:])  # three days of history
    assert level(spec, history, T0) is None
    history = fed(spec, [(T0, 40.0)], history)
    assert level(spec, history, T0 + DAY) == 25.0  # 4 days behind it: median of 40, 20, 30, 10


def test_seasonal_keeps_only_the_steps_a_later_boundary_can_look_back_to():
    spec = Seasonal(period_ms=DAY, lookback=2, min_history_ms=0)
    history = fed(spec, [(T0 + i * HOUR, float(i)) for i in range(24 * 10)])
    last = T0 + (24 * 10 - 1) * HOUR
    assert len(history["values"]) == 48
    assert min(int(t) for t in history["values"]) == last - 2 * DAY + HOUR
    assert level(spec, history, last + HOUR) == (24 * 8 + 24 * 9) / 2  # median of 216, 192
    assert history["first_ms"] == T0  # the history stays as long as it began, though pruned


def test_seasonal_a_repeated_step_replaces_its_figure():
    spec = Seasonal(period_ms=DAY, lookback=1, min_history_ms=0)
    history = fed(spec, [(T0 - DAY, 20.0), (T0 - DAY, 30.0)])
    assert level(spec, history, T0) == 30.0 and len(history["values"]) == 1

"""Agents to coach (CONTRACT "Agents to coach"): per-agent snapshots in, a fair ranking out. Pure.

Each agent's raw figure is shrunk toward the tenant's agents as a whole (``stream_app.shrinkage``),
so that an agent is flagged for coaching only when its own answers make it probable (at least
``COACH_PROBABILITY``) that its true figure is worse than the target, not for one unlucky day.

The snapshots carry percentages and confidence intervals, not the counts and variances the maths
needs; they are recovered exactly enough: a count is pct x n / 100 (rounded to a whole answer),
and a mean's sample standard deviation is s = half-width x sqrt(n) / z from its ``mean_ci95``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

import msgspec

from stream_app import rules, shrinkage
from stream_app.scoring import Z95
from stream_app.shrinkage import Estimate, Share

COACH_PROBABILITY = 0.8
NOT_AGENTS = frozenset({"unknown", "other"})  # no agent_id, and the cardinality bound's overflow
DECIMALS = 4


class Family(Enum):
    SHARE = "share"  # beta-binomial, figure = 100 x share
    NET = "net"  # normal-normal, figure = %positive - %negative, per-answer values +100, 0, -100
    MEAN = "mean"  # normal-normal, figure = a mean on the 1-7 scale


@dataclass(frozen=True, slots=True)
class Metric:
    """A figure the view ranks on: its model and which way is worse; its group and range are the rules'."""

    name: str
    family: Family
    worse_above: bool = False  # ces.effort_mean: more effort is worse

    @property
    def group(self) -> str:
        """The snapshot group it sits in: ces, csat, nps."""
        return self.name.split(".", 1)[0]

    @property
    def low(self) -> float:
        return rules.METRICS[self.name].low

    @property
    def high(self) -> float:
        return rules.METRICS[self.name].high

    @property
    def max_unit_variance(self) -> float:
        """The largest per-answer variance the scale allows: the fallback when none can be measured."""
        return ((self.high - self.low) / 2.0) ** 2


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("csat.pct", Family.SHARE),
    Metric("ces.easy_pct", Family.SHARE),
    Metric("ces.net_ease", Family.NET),
    Metric("nps.score", Family.NET),
    Metric("ces.mean", Family.MEAN),
    Metric("ces.effort_mean", Family.MEAN, worse_above=True),
)}
_NET_PARTS = {"ces.net_ease": ("easy_pct", "difficult_pct"), "nps.score": ("promoters_pct", "detractors_pct")}


@dataclass(frozen=True, slots=True)
class AgentFigure:
    """One agent's raw figure and what the maths needs of it.

    ``successes``: shares only, the count behind the share. ``sum_of_squares``: means and net scores,
    the agent's within-agent sum of squared deviations (for the pooled per-answer variance).
    """

    key: str
    n: int
    value: float | None
    successes: float = 0.0
    sum_of_squares: float = 0.0


class Prior(msgspec.Struct, frozen=True):
    """The tenant prior, in the metric's units; ``fitted`` False: too few agents, no shrinkage."""

    mean: float | None
    strength: float
    fitted: bool


class AgentScore(msgspec.Struct, frozen=True):
    """One row of the contract's list; an agent with n = 0 has nulls and ``coach`` false."""

    key: str
    n: int
    value: float | None
    adjusted: float | None
    interval: tuple[float, float] | None
    p_below_target: float | None
    coach: bool


class Ranking(msgspec.Struct, frozen=True):
    prior: Prior
    agents: list[AgentScore]


def _count(pct: float, n: int) -> int:
    """The whole number of answers behind a percentage rounded to 4 decimals."""
    return round(pct * n / 100.0)


def figure(metric: Metric, key: str, snapshot: dict) -> AgentFigure:
    """The agent's figure of ``metric`` in a contract snapshot document."""
    group = snapshot.get(metric.group) or {}
    n = int(group.get("n") or 0)
    value = group.get(metric.name.split(".")[1])
    if n == 0 or value is None:
        return AgentFigure(key, 0, None)
    if metric.family is Family.SHARE:
        return AgentFigure(key, n, value, successes=_count(value, n))
    if metric.family is Family.NET:
        positive, negative = (_count(group[part], n) / n for part in _NET_PARTS[metric.name])
        variance = 100.0**2 * (positive + negative - (positive - negative) ** 2)  # of one answer, ML
        return AgentFigure(key, n, value, sum_of_squares=n * variance)
    interval = group.get("mean_ci95")
    if n < 2 or interval is None:
        return AgentFigure(key, n, value)
    s = (interval[1] - interval[0]) / 2.0 * math.sqrt(n) / Z95
    return AgentFigure(key, n, value, sum_of_squares=(n - 1) * s * s)


def latest_window(snapshots: Iterable[dict]) -> list[dict]:
    """The agent snapshots of the newest window: a key still in an older one (its worker has not
    moved on yet, or it is waiting for its TTL) would compare another period."""
    docs = [d for d in snapshots if d["dimension"] == "agent" and d["key"] not in NOT_AGENTS]
    newest = max((d["window_end"] for d in docs), default=None)
    return [d for d in docs if d["window_end"] == newest]


def rank(metric: Metric, target: float, figures: Sequence[AgentFigure]) -> Ranking:
    """Every agent's adjusted figure, interval and P(worse than ``target``), the likeliest first."""
    if metric.family is Family.SHARE:
        prior, scores = _rank_shares(metric, target, figures)
    else:
        prior, scores = _rank_estimates(metric, target, figures)
    order = sorted(scores, key=lambda s: (s.p_below_target is None, -(s.p_below_target or 0.0), s.key))
    return Ranking(prior, order)


def _score(metric: Metric, agent: AgentFigure, posterior: shrinkage.Posterior, scale: float) -> AgentScore:
    """The posterior in the metric's units (``scale``: 100 for a share), its interval clipped to the range."""
    low = min(max(posterior.low * scale, metric.low), metric.high)
    high = min(max(posterior.high * scale, metric.low), metric.high)
    p_worse = 1.0 - posterior.p_below if metric.worse_above else posterior.p_below
    return AgentScore(agent.key, agent.n, agent.value, _round(posterior.mean * scale),
                      (_round(low), _round(high)), _round(p_worse), p_worse >= COACH_PROBABILITY)


def _empty(agent: AgentFigure) -> AgentScore:
    return AgentScore(agent.key, 0, None, None, None, None, False)


def _rank_shares(metric: Metric, target: float,
                 figures: Sequence[AgentFigure]) -> tuple[Prior, list[AgentScore]]:
    prior = shrinkage.fit_beta_prior([Share(f.successes, f.n) for f in figures if f.n > 0])
    scores = [_empty(f) if f.n == 0 else
              _score(metric, f, shrinkage.beta_posterior(prior, Share(f.successes, f.n), target / 100.0),
                     100.0)
              for f in figures]
    return Prior(_round(100.0 * prior.mean), _round(prior.strength), prior.fitted), scores


def _rank_estimates(metric: Metric, target: float,
                    figures: Sequence[AgentFigure]) -> tuple[Prior, list[AgentScore]]:
    present = [f for f in figures if f.n > 0]
    unit_variance = shrinkage.pooled_unit_variance([f.sum_of_squares for f in present],
                                                   [f.n for f in present], metric.max_unit_variance)
    estimates = {f.key: Estimate(float(f.value or 0.0), f.n) for f in present}
    prior = shrinkage.fit_normal_prior(list(estimates.values()), unit_variance)
    scores = [_empty(f) if f.n == 0 else
              _score(metric, f, shrinkage.normal_posterior(prior, estimates[f.key], target), 1.0)
              for f in figures]
    mean = None if prior.mean is None else _round(prior.mean)
    return Prior(mean, _round(prior.strength), prior.fitted), scores


def _round(x: float) -> float:
    """Round for output like the snapshots; adding 0.0 turns -0.0 into 0.0."""
    return round(x, DECIMALS) + 0.0

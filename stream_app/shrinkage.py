"""Empirical-Bayes shrinkage of many small groups toward the groups as a whole. Pure maths.

A group (an agent) with a dozen answers says little about its own true figure; the other groups
of the same population say how far true figures usually are from each other. The prior is fitted
across the groups, and each group's posterior weighs its own answers against that prior by how
many it has. Two families:

- shares (k successes of n): beta-binomial, posterior Beta(a + k, b + n - k). The Beta prior is fitted
  by the method of moments weighted by n (the ANOVA estimator of the intra-class correlation rho =
  1 / (a + b + 1)): closed form, and it matches the spread of the agents' shares, where maximum
  likelihood fits the shape of the bulk (on simulated tenants of 200 agents it put a + b at 1834 on
  one seed whose spread looked small, and above the moments' figure when a few agents lag).
- means and net scores (an estimate from n answers with a per-answer variance): normal-normal. The
  per-answer variance is pooled across groups (one group's variance from three answers is noise, and
  zero when they agree); the between-group variance tau^2 by DerSimonian-Laird, floored at 0: the
  same moment estimator for the other family.

Both priors are worth at most the population's answers put together (strength <= N = sum of n): where
the groups show no spread beyond chance, a group is judged against the pooled figure with the
uncertainty of that pooled figure, never against a certainty. A prior is fitted only from
``MIN_GROUPS`` groups with answers, one of them with 2 or more; else no pooling (Jeffreys' Beta(1/2,
1/2) for shares, a flat prior for means).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import betainc, betaincinv, ndtr

Z95 = 1.959964  # as the snapshots' intervals (stream_app.scoring)
TAIL = 0.025  # each tail of the 95% equal-tailed credible interval
MIN_GROUPS = 3  # fewer figures say nothing about the spread between groups
MIN_STRENGTH = 0.01  # the beta prior's a + b is kept in [MIN_STRENGTH, N]: rho >= 1 is possible
JEFFREYS = 0.5


@dataclass(frozen=True, slots=True)
class Share:
    """A group's successes ``k`` of ``n`` answers (k need not be whole: 0 <= k <= n)."""

    k: float
    n: int


@dataclass(frozen=True, slots=True)
class Estimate:
    """A group's figure from ``n`` answers (a mean or a net score)."""

    value: float
    n: int


@dataclass(frozen=True, slots=True)
class Posterior:
    """The posterior mean, its 95% equal-tailed credible interval, and P(true figure < threshold)."""

    mean: float
    low: float
    high: float
    p_below: float


@dataclass(frozen=True, slots=True)
class BetaPrior:
    """Beta(a, b) over the true share; ``fitted`` False: Jeffreys' prior, no pooling."""

    a: float
    b: float
    fitted: bool

    @property
    def mean(self) -> float:
        return self.a / (self.a + self.b)

    @property
    def strength(self) -> float:
        """a + b: the prior counts as that many answers."""
        return self.a + self.b


@dataclass(frozen=True, slots=True)
class NormalPrior:
    """N(mean, variance) over the true figure; ``variance`` None: a flat prior (no pooling).

    ``unit_variance`` is the pooled per-answer variance sigma^2: a group of n answers has the
    sampling variance sigma^2 / n.
    """

    mean: float | None
    variance: float | None
    unit_variance: float

    @property
    def fitted(self) -> bool:
        return self.variance is not None

    @property
    def strength(self) -> float:
        """sigma^2 / tau^2: the number of answers whose sampling variance equals the prior's; 0 if flat."""
        return 0.0 if self.variance is None else self.unit_variance / self.variance


def _poolable(counts: Sequence[int]) -> bool:
    """Enough groups with answers to see a spread, and one with two answers or more."""
    with_data = [n for n in counts if n > 0]
    return len(with_data) >= MIN_GROUPS and max(with_data) >= 2


def fit_beta_prior(shares: Sequence[Share]) -> BetaPrior:
    """Moments: p = K / N; S = sum n (k/n - p)^2 has the expectation
    p (1 - p) [rho (N - sum n^2 / N) + (1 - rho)(g - 1)] over g groups, so
    rho = (S / (p (1 - p)) - (g - 1)) / (N - sum n^2 / N - (g - 1)) and a + b = 1 / rho - 1.

    No spread beyond binomial noise (rho <= 0, or every answer a success, or none) puts a + b at its
    bound N, the prior mean then (K + 1/2) / (N + 1) so that it stays inside (0, 1).
    """
    data = [s for s in shares if s.n > 0]
    if not _poolable([s.n for s in data]):
        return BetaPrior(JEFFREYS, JEFFREYS, fitted=False)
    total = sum(s.n for s in data)
    successes = sum(s.k for s in data)
    mean = successes / total
    if 0.0 < mean < 1.0:
        spread = sum(s.n * (s.k / s.n - mean) ** 2 for s in data) / (mean * (1.0 - mean))
        chance = len(data) - 1
        rho = (spread - chance) / (total - sum(s.n * s.n for s in data) / total - chance)
    else:
        mean, rho = (successes + JEFFREYS) / (total + 1.0), 0.0
    strength = total if rho <= 0.0 else min(total, max(MIN_STRENGTH, 1.0 / rho - 1.0))
    return BetaPrior(mean * strength, (1.0 - mean) * strength, fitted=True)


def beta_posterior(prior: BetaPrior, share: Share, threshold: float) -> Posterior:
    """Beta(a + k, b + n - k): its mean, 2.5% and 97.5% quantiles and CDF at ``threshold`` (0-1)."""
    a, b = prior.a + share.k, prior.b + share.n - share.k
    low, high = (float(betaincinv(a, b, q)) for q in (TAIL, 1.0 - TAIL))
    return Posterior(a / (a + b), low, high, float(betainc(a, b, min(max(threshold, 0.0), 1.0))))


def pooled_unit_variance(sums_of_squares: Sequence[float], counts: Sequence[int], fallback: float) -> float:
    """sigma^2 = sum of within-group squared deviations / sum of (n - 1), over all groups.

    ``fallback`` (the largest variance the scale allows) when no group has two answers, or when
    every group's answers agree (a variance of 0 would make every figure exact).
    """
    degrees = sum(n - 1 for n in counts if n >= 2)
    total = sum(sums_of_squares)
    return total / degrees if degrees > 0 and total > 0 else fallback


def fit_normal_prior(estimates: Sequence[Estimate], unit_variance: float) -> NormalPrior:
    """DerSimonian-Laird: tau^2 = max(0, (Q - (g - 1)) / (W - sum w^2 / W)), w = n / sigma^2.

    The prior mean is the random-effects mean, weights 1 / (sigma^2 / n + tau^2); the prior
    variance is at least sigma^2 / N, the variance of the pooled mean of all N answers.
    """
    data = [e for e in estimates if e.n > 0]
    if not _poolable([e.n for e in data]):
        return NormalPrior(None, None, unit_variance)
    y = np.array([e.value for e in data], dtype=float)
    n = np.array([e.n for e in data], dtype=float)
    w = n / unit_variance
    total_w = float(w.sum())
    fixed_mean = float(np.sum(w * y)) / total_w
    q = float(np.sum(w * (y - fixed_mean) ** 2))
    tau2 = max(0.0, (q - (len(data) - 1)) / (total_w - float(np.sum(w * w)) / total_w))
    weights = 1.0 / (unit_variance / n + tau2)
    mean = float(np.sum(weights * y)) / float(weights.sum())
    return NormalPrior(mean, max(tau2, unit_variance / float(n.sum())), unit_variance)


def normal_posterior(prior: NormalPrior, estimate: Estimate, threshold: float) -> Posterior:
    """Precision-weighted mean of prior and figure; with a flat prior, the figure and its own variance."""
    sampling = prior.unit_variance / estimate.n
    if prior.mean is None or prior.variance is None:
        mean, variance = estimate.value, sampling
    else:
        precision = 1.0 / prior.variance + 1.0 / sampling
        mean = (prior.mean / prior.variance + estimate.value / sampling) / precision
        variance = 1.0 / precision
    sd = math.sqrt(variance)
    return Posterior(mean, mean - Z95 * sd, mean + Z95 * sd, float(ndtr((threshold - mean) / sd)))

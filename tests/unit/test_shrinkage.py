"""Empirical-Bayes maths against values computed by hand (fractions in the comments)."""

from __future__ import annotations

import math

import pytest

from stream_app.shrinkage import (
    BetaPrior,
    Estimate,
    NormalPrior,
    Share,
    beta_posterior,
    fit_beta_prior,
    fit_normal_prior,
    normal_posterior,
    pooled_unit_variance,
)

Z = 1.959964
THREE_SHARES = [Share(2, 10), Share(5, 10), Share(8, 10)]
THREE_MEANS = [Estimate(3.0, 4), Estimate(5.0, 4), Estimate(7.0, 4)]


def phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def test_beta_prior_by_moments():
    # N = 30, K = 15, p = 1/2; S = 10 (0.3^2 + 0 + 0.3^2) / (1/4) = 7.2; g - 1 = 2;
    # N - sum n^2 / N = 30 - 300/30 = 20; rho = (7.2 - 2) / (20 - 2) = 13/45; a + b = 45/13 - 1 = 32/13
    prior = fit_beta_prior(THREE_SHARES)
    assert prior.fitted
    assert prior.mean == pytest.approx(0.5)
    assert prior.strength == pytest.approx(32 / 13)
    assert prior.a == pytest.approx(16 / 13) and prior.b == pytest.approx(16 / 13)


def test_beta_posterior_mean_is_shrunk_toward_the_prior():
    # Beta(16/13 + 2, 16/13 + 8): mean (42/13) / (162/13) = 7/27
    posterior = beta_posterior(fit_beta_prior(THREE_SHARES), Share(2, 10), 0.5)
    assert posterior.mean == pytest.approx(7 / 27)
    assert 0.2 < posterior.mean < 0.5


def test_beta_interval_and_probability_in_closed_form():
    # Beta(1, 1) prior, 0 of 3: Beta(1, 4), CDF 1 - (1 - x)^4, quantile 1 - (1 - q)^(1/4)
    posterior = beta_posterior(BetaPrior(1.0, 1.0, fitted=True), Share(0, 3), 0.5)
    assert posterior.mean == pytest.approx(0.2)
    assert posterior.low == pytest.approx(1 - 0.975 ** 0.25, rel=1e-9)
    assert posterior.high == pytest.approx(1 - 0.025 ** 0.25, rel=1e-9)
    assert posterior.p_below == pytest.approx(1 - 0.5 ** 4)  # 0.9375


def test_beta_probability_with_whole_parameters_is_a_binomial_tail():
    # Beta(2, 8) prior, 3 of 10: Beta(5, 15); I_x(5, 15) = P(Binomial(19, x) >= 5)
    posterior = beta_posterior(BetaPrior(2.0, 8.0, fitted=True), Share(3, 10), 0.2)
    tail = sum(math.comb(19, j) * 0.2 ** j * 0.8 ** (19 - j) for j in range(5, 20))
    assert posterior.p_below == pytest.approx(tail, rel=1e-9)
    assert posterior.mean == pytest.approx(0.25)


def test_identical_shares_pool_fully_but_the_prior_is_worth_no_more_than_all_answers():
    # S = 0: rho = (0 - 2) / (30 - 10 - 2) < 0, so a + b = N = 30 around p = 0.8
    prior = fit_beta_prior([Share(8, 10)] * 3)
    assert (prior.a, prior.b) == pytest.approx((24.0, 6.0))
    posterior = beta_posterior(prior, Share(8, 10), 0.8)
    assert posterior.mean == pytest.approx(0.8)
    assert posterior.low < 0.7 and posterior.high > 0.9, "the pooled figure's own uncertainty"


def test_all_answers_satisfied_keeps_the_prior_inside_zero_and_one():
    # K = N = 30: mean (30 + 1/2) / 31, a + b = 30
    prior = fit_beta_prior([Share(10, 10)] * 3)
    assert prior.mean == pytest.approx(30.5 / 31) and prior.strength == pytest.approx(30.0)
    posterior = beta_posterior(prior, Share(10, 10), 0.9)
    assert 0.9 < posterior.mean < 1.0 and 0.0 <= posterior.p_below < 0.2


@pytest.mark.parametrize("shares", [[Share(3, 4)], [Share(3, 4), Share(1, 4)],
                                    [Share(1, 1), Share(0, 1), Share(1, 1)]])
def test_one_or_two_agents_or_single_answers_get_jeffreys_prior_and_no_pooling(shares):
    prior = fit_beta_prior(shares)
    assert not prior.fitted and (prior.a, prior.b) == (0.5, 0.5)
    # Beta(3.5, 1.5): the agent's own answers with half an answer each way
    assert beta_posterior(prior, Share(3, 4), 0.5).mean == pytest.approx(3.5 / 5)


def test_agents_without_answers_do_not_change_the_fit():
    assert fit_beta_prior([*THREE_SHARES, Share(0, 0)]) == fit_beta_prior(THREE_SHARES)
    assert fit_normal_prior([*THREE_MEANS, Estimate(0.0, 0)], 4.0) == fit_normal_prior(THREE_MEANS, 4.0)


def test_pooled_unit_variance():
    # (n - 1) s^2 = 3 * 2, 3 * 4, 3 * 6; sum 36 over 9 degrees of freedom; n = 1 adds nothing
    assert pooled_unit_variance([6.0, 12.0, 18.0, 0.0], [4, 4, 4, 1], 9.0) == pytest.approx(4.0)
    assert pooled_unit_variance([0.0, 0.0], [1, 1], 9.0) == 9.0, "no agent with two answers"
    assert pooled_unit_variance([0.0, 0.0], [3, 5], 9.0) == 9.0, "all answers alike: not exact figures"


def test_normal_prior_by_dersimonian_laird():
    # sigma^2 = 4, n = 4: w = 1 each; fixed mean 5; Q = 4 + 0 + 4 = 8; W - sum w^2 / W = 3 - 1 = 2;
    # tau^2 = (8 - 2) / 2 = 3; prior mean 5; strength sigma^2 / tau^2 = 4/3
    prior = fit_normal_prior(THREE_MEANS, 4.0)
    assert prior.fitted
    assert prior.mean == pytest.approx(5.0) and prior.variance == pytest.approx(3.0)
    assert prior.strength == pytest.approx(4 / 3)


def test_normal_posterior_mean_interval_and_probability():
    # precision 1/3 + 1/1 = 4/3; mean (5/3 + 3) / (4/3) = 3.5; sd sqrt(3/4)
    posterior = normal_posterior(fit_normal_prior(THREE_MEANS, 4.0), Estimate(3.0, 4), 4.0)
    sd = math.sqrt(0.75)
    assert posterior.mean == pytest.approx(3.5)
    assert (posterior.low, posterior.high) == pytest.approx((3.5 - Z * sd, 3.5 + Z * sd))  # 1.8026, 5.1974
    assert posterior.p_below == pytest.approx(phi(0.5 / sd))  # 0.7181


def test_identical_means_give_tau_zero_and_the_pooled_mean_with_its_own_variance():
    # Q = 0: tau^2 = 0; prior variance sigma^2 / N = 4 / 12; strength N = 12
    prior = fit_normal_prior([Estimate(5.0, 4)] * 3, 4.0)
    assert prior.mean == pytest.approx(5.0) and prior.variance == pytest.approx(1 / 3)
    assert prior.strength == pytest.approx(12.0)
    posterior = normal_posterior(prior, Estimate(5.0, 4), 5.0)
    assert posterior.mean == pytest.approx(5.0) and posterior.p_below == pytest.approx(0.5)
    # precision 3 + 1 = 4: sd 1/2
    assert posterior.high - posterior.low == pytest.approx(2 * Z * 0.5)


@pytest.mark.parametrize("estimates", [[Estimate(3.0, 4)], [Estimate(3.0, 4), Estimate(6.0, 9)]])
def test_one_or_two_agents_get_a_flat_prior(estimates):
    prior = fit_normal_prior(estimates, 4.0)
    assert prior == NormalPrior(None, None, 4.0) and prior.strength == 0.0
    # the figure with its own sampling variance 4 / 4
    posterior = normal_posterior(prior, Estimate(3.0, 4), 4.0)
    assert (posterior.mean, posterior.low, posterior.high) == pytest.approx((3.0, 3.0 - Z, 3.0 + Z))
    assert posterior.p_below == pytest.approx(phi(1.0))

"""Bayesian comparisons (analysis/bayesian.py): closed forms against Monte Carlo with many draws,
against independent numerical integration, and their symmetries."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from analysis import bayesian
from analysis.bayesian import (beta_binomial, normal_posterior, prob_greater_exact, prob_greater_quadrature)
from analysis.sufficient import SampleStats

DRAWS = 2_000_000


def binary(n: int, successes: int) -> SampleStats:
    return SampleStats(n, successes, successes)


def test_beta_binomial_matches_monte_carlo() -> None:
    control, variant = binary(500, 40), binary(500, 55)
    result = beta_binomial(control, variant)
    assert result.method == bayesian.EXACT_METHOD

    rng = np.random.default_rng(20240601)
    p_c = rng.beta(1 + 40, 1 + 460, DRAWS)
    p_v = rng.beta(1 + 55, 1 + 445, DRAWS)
    d = p_v - p_c
    win = d > 0
    assert abs(result.chance_to_beat_control - win.mean()) < 4 * win.std() / math.sqrt(DRAWS)
    loss_v, loss_c = np.maximum(-d, 0), np.maximum(d, 0)
    assert abs(result.expected_loss - loss_v.mean()) < 4 * loss_v.std() / math.sqrt(DRAWS)
    assert abs(result.expected_loss_control - loss_c.mean()) < 4 * loss_c.std() / math.sqrt(DRAWS)
    assert result.uplift == pytest.approx(d.mean(), abs=4 * d.std() / math.sqrt(DRAWS))
    # MC error of a quantile: sqrt(q(1 − q)/N) / density there (density of d ≈ normal)
    sd = d.std()
    for q, bound in zip((0.025, 0.975), result.uplift_ci):
        density = stats.norm.pdf(stats.norm.ppf(q)) / sd
        assert abs(bound - np.quantile(d, q)) < 5 * math.sqrt(q * (1 - q) / DRAWS) / density


def test_monte_carlo_option_is_seeded_and_agrees() -> None:
    control, variant = binary(800, 30), binary(800, 42)
    exact = beta_binomial(control, variant)
    mc = beta_binomial(control, variant, draws=400_000, seed=7)
    assert mc == beta_binomial(control, variant, draws=400_000, seed=7)
    assert mc.method.startswith("beta-binomial: Monte Carlo")
    assert mc.chance_to_beat_control == pytest.approx(exact.chance_to_beat_control, abs=0.003)
    assert mc.expected_loss == pytest.approx(exact.expected_loss, abs=5e-5)
    assert mc.uplift_ci == pytest.approx(exact.uplift_ci, abs=5e-4)


@pytest.mark.parametrize("a_x, b_x, a_y, b_y", [
    (56, 446, 41, 461), (1, 1, 1, 1), (3, 998, 12, 989), (250, 30, 240, 45), (2, 1, 1, 1), (41, 461, 56, 446),
])
def test_closed_form_agrees_with_itself_and_with_quadrature(a_x, b_x, a_y, b_y) -> None:
    by_sum = [prob_greater_exact(a_x, b_x, a_y, b_y, over=over) for over in ("a_x", "a_y", "b_x", "b_y")]
    assert max(by_sum) - min(by_sum) < 1e-11
    assert by_sum[0] == pytest.approx(prob_greater_quadrature(a_x, b_x, a_y, b_y), abs=1e-9)
    # both ways round: P(X > Y) + P(Y > X) = 1
    assert by_sum[0] + prob_greater_exact(a_y, b_y, a_x, b_x) == pytest.approx(1, abs=1e-12)


def test_closed_form_known_values() -> None:
    assert prob_greater_exact(2, 1, 1, 1) == pytest.approx(2 / 3, abs=1e-14)  # E[X], X ~ Beta(2, 1)
    flat = beta_binomial(binary(0, 0), binary(0, 0))  # two U(0, 1): E[(U − V)+] = 1/6
    assert flat.chance_to_beat_control == pytest.approx(0.5, abs=1e-14)
    assert flat.expected_loss == pytest.approx(1 / 6, abs=1e-12)
    assert flat.uplift_ci[0] == pytest.approx(math.sqrt(0.05) - 1, abs=1e-9)  # triangular difference


def test_expected_loss_against_numerical_integration() -> None:
    """E[max(p_c − p_v, 0)] = ∫ f_v(p) E[(p_c − p)+] dp, with E[(p_c − p)+] = μ_c S_{a+1,b}(p) − p S_{a,b}(p)."""
    a_c, b_c, a_v, b_v = 13.0, 190.0, 9.0, 170.0
    result = beta_binomial(binary(201, 12), binary(177, 8))
    mu_c = a_c / (a_c + b_c)

    def integrand(p: float) -> float:
        inner = mu_c * stats.beta.sf(p, a_c + 1, b_c) - p * stats.beta.sf(p, a_c, b_c)
        return stats.beta.pdf(p, a_v, b_v) * inner

    value, _ = integrate.quad(integrand, 0, 1, limit=200, epsabs=1e-14, points=[a_v / (a_v + b_v)])
    assert result.expected_loss == pytest.approx(value, rel=1e-8)
    assert result.expected_loss_control - result.expected_loss == pytest.approx(result.uplift, abs=1e-12)


def test_symmetry_equal_data_and_determinism() -> None:
    a, b = binary(1200, 80), binary(1100, 95)
    ab, ba = beta_binomial(a, b), beta_binomial(b, a)
    assert ab.chance_to_beat_control + ba.chance_to_beat_control == pytest.approx(1, abs=1e-12)
    assert ab.expected_loss == pytest.approx(ba.expected_loss_control, rel=1e-10)
    assert ab.uplift_ci == pytest.approx((-ba.uplift_ci[1], -ba.uplift_ci[0]), abs=1e-9)
    assert ab == beta_binomial(a, b)  # no randomness in the default path

    same = beta_binomial(a, a)
    assert same.chance_to_beat_control == pytest.approx(0.5, abs=1e-12)
    assert same.expected_loss == pytest.approx(same.expected_loss_control, rel=1e-10)
    assert same.uplift_ci[0] == pytest.approx(-same.uplift_ci[1], abs=1e-9)


def test_monotone_in_variant_successes() -> None:
    control = binary(600, 45)
    results = [beta_binomial(control, binary(600, x)) for x in range(20, 80, 3)]
    chances = [r.chance_to_beat_control for r in results]
    losses = [r.expected_loss for r in results]
    assert all(np.diff(chances) > 0) and all(np.diff(losses) < 0)
    assert chances[0] < 0.01 and chances[-1] > 0.99


def test_large_counts_use_the_normal_approximation(monkeypatch: pytest.MonkeyPatch) -> None:
    control, variant = binary(40_000, 2_000), binary(40_000, 2_090)
    exact = beta_binomial(control, variant)
    monkeypatch.setattr(bayesian, "MAX_EXACT_TERMS", 1_000)
    approx = beta_binomial(control, variant)
    assert approx.method == bayesian.BETA_NORMAL_METHOD and exact.method == bayesian.EXACT_METHOD
    assert approx.chance_to_beat_control == pytest.approx(exact.chance_to_beat_control, abs=2e-3)
    assert approx.expected_loss == pytest.approx(exact.expected_loss, rel=0.02)
    assert approx.uplift_ci == pytest.approx(exact.uplift_ci, abs=2e-5)


def test_non_integer_prior_uses_quadrature() -> None:
    control, variant = binary(300, 12), binary(300, 20)
    jeffreys = beta_binomial(control, variant, prior=(0.5, 0.5))
    assert jeffreys.method == bayesian.QUADRATURE_METHOD
    mc = beta_binomial(control, variant, prior=(0.5, 0.5), draws=DRAWS, seed=3)
    assert jeffreys.chance_to_beat_control == pytest.approx(mc.chance_to_beat_control, abs=1.5e-3)
    assert jeffreys.expected_loss == pytest.approx(mc.expected_loss, abs=2e-5)
    assert jeffreys.uplift_ci == pytest.approx(mc.uplift_ci, abs=2e-4)


@pytest.mark.parametrize(("control", "variant"), [((10, 10), (10, 10)), ((10, 10), (50, 0))])
def test_non_integer_prior_at_the_edges_of_the_support(control, variant) -> None:  # noqa: ANN001
    # Every customer returned (or none): a support bound rounds to exactly 1 (or 0), where the
    # integrand's log used to fail with "math domain error".
    c, v = binary(*control), binary(*variant)
    jeffreys = beta_binomial(c, v, prior=(0.5, 0.5))
    mc = beta_binomial(c, v, prior=(0.5, 0.5), draws=DRAWS, seed=3)
    assert jeffreys.chance_to_beat_control == pytest.approx(mc.chance_to_beat_control, abs=2e-3)
    assert jeffreys.uplift_ci == pytest.approx(mc.uplift_ci, abs=2e-3)


def revenue(n: int, mean: float, sd: float) -> SampleStats:
    return SampleStats(n, n * mean, (n - 1) * sd * sd + n * mean * mean)


def test_normal_posterior_absolute() -> None:
    control, variant = revenue(4000, 10.0, 25.0), revenue(3800, 11.0, 27.0)
    result = normal_posterior(control, variant)
    se = math.sqrt(25.0 ** 2 / 4000 + 27.0 ** 2 / 3800)
    assert result.chance_to_beat_control == pytest.approx(stats.norm.cdf(1.0 / se), rel=1e-12)
    assert result.uplift_ci == pytest.approx((1.0 - 1.959963984540054 * se, 1.0 + 1.959963984540054 * se))
    loss, _ = integrate.quad(lambda d: max(-d, 0) * stats.norm.pdf(d, 1.0, se), -1.0 - 12 * se, 0)
    assert result.expected_loss == pytest.approx(loss, rel=1e-8)
    swapped = normal_posterior(variant, control)
    assert result.chance_to_beat_control + swapped.chance_to_beat_control == pytest.approx(1, abs=1e-14)
    assert result.expected_loss == pytest.approx(swapped.expected_loss_control, rel=1e-12)
    assert normal_posterior(control, control).chance_to_beat_control == 0.5


def test_normal_posterior_relative_matches_monte_carlo() -> None:
    control, variant = revenue(2000, 10.0, 25.0), revenue(2100, 10.6, 26.0)
    result = normal_posterior(control, variant, scale="relative")
    mu = math.log(10.6 / 10.0)
    sd = math.sqrt(25.0 ** 2 / (2000 * 100) + 26.0 ** 2 / (2100 * 10.6 ** 2))
    lift = np.expm1(np.random.default_rng(11).normal(mu, sd, DRAWS))
    assert result.chance_to_beat_control == pytest.approx(stats.norm.cdf(mu / sd), rel=1e-12)
    for value, sample in ((result.expected_loss, np.maximum(-lift, 0)), (result.expected_loss_control,
                                                                       np.maximum(lift, 0)),
                          (result.uplift, lift)):
        assert abs(value - sample.mean()) < 4 * sample.std() / math.sqrt(DRAWS)
    assert result.uplift_ci == pytest.approx((math.expm1(mu - 1.959963984540054 * sd),
                                              math.expm1(mu + 1.959963984540054 * sd)))


def test_normal_posterior_is_vectorized() -> None:
    n = np.array([1000, 2000, 3000])
    control = SampleStats(n, n * 5.0, n * 5.0 ** 2 + (n - 1) * 9.0)
    variant = SampleStats(n, n * 5.2, n * 5.2 ** 2 + (n - 1) * 10.0)
    batch = normal_posterior(control, variant)
    for i in range(3):
        one = normal_posterior(SampleStats(int(n[i]), control.sum[i], control.sum_sq[i]),
                               SampleStats(int(n[i]), variant.sum[i], variant.sum_sq[i]))
        assert batch.chance_to_beat_control[i] == pytest.approx(one.chance_to_beat_control, rel=1e-14)
        assert batch.expected_loss[i] == pytest.approx(one.expected_loss, rel=1e-14)

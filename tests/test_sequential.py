"""Sequential monitoring: O'Brien-Fleming-type boundaries against the published values and an independent
multivariate-normal computation; error rates of repeated looks by simulation (fixed seeds, vectorized
over cumulative sums, so a whole 30-day monitoring of thousands of experiments is a few array operations).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from analysis.sequential import (
    DEFAULT_PLANNED_N,
    always_valid_p_value,
    confidence_sequence,
    crossing_probabilities,
    inflation_factor,
    log_mixture_likelihood_ratio,
    mixture_boundary,
    obf_boundaries,
    obf_spending,
    optimal_rho,
    sequential_decision,
)
from analysis.sufficient import SampleStats

FIVE_LOOKS = [0.2, 0.4, 0.6, 0.8, 1.0]
REFERENCE_OBF_5 = [4.877, 3.357, 2.680, 2.290, 2.031]  # Lan-DeMets OBF, K = 5, one-sided α = 0.025


def _mc_se(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n)


def _canonical_correlation(t: np.ndarray) -> np.ndarray:
    return np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))


def _binary(successes: int, n: int) -> SampleStats:
    return SampleStats(n, float(successes), float(successes))


# --------------------------------------------------------------------------- group-sequential boundaries


def test_obf_five_equal_looks_match_reference() -> None:
    design = obf_boundaries(FIVE_LOOKS, alpha=0.025)
    np.testing.assert_allclose(design.boundaries, REFERENCE_OBF_5, atol=1e-3)
    assert design.information_fractions == tuple(FIVE_LOOKS)
    assert design.looks == 5


def test_obf_boundaries_shape_and_alpha_spent() -> None:
    design = obf_boundaries(FIVE_LOOKS, alpha=0.025)
    b = np.array(design.boundaries)
    assert np.all(np.diff(b) < 0)
    assert b[-1] > stats.norm.isf(0.025)
    assert sum(design.alpha_spent) == pytest.approx(0.025, abs=1e-12)
    assert design.cumulative_alpha[-1] == pytest.approx(0.025, abs=1e-15)
    np.testing.assert_allclose(design.cumulative_alpha, obf_spending(FIVE_LOOKS, 0.025))
    np.testing.assert_allclose(design.nominal_alphas, stats.norm.sf(b))
    assert design.boundaries[0] == pytest.approx(stats.norm.isf(design.cumulative_alpha[0]))


def test_obf_spending_function() -> None:
    alpha = 0.025
    assert obf_spending([1.0], alpha)[0] == pytest.approx(alpha, abs=1e-15)
    assert obf_spending([0.0], alpha)[0] == 0.0
    t = np.linspace(0.05, 1, 20)
    spent = obf_spending(t, alpha)
    textbook = 2 - 2 * stats.norm.cdf(stats.norm.ppf(1 - alpha / 2) / np.sqrt(t))  # cancels in the far tail
    np.testing.assert_allclose(spent, textbook, rtol=1e-6, atol=1e-14)
    assert np.all(np.diff(spent) > 0)


@pytest.mark.parametrize("fractions", [FIVE_LOOKS, [0.3, 0.5, 1.0], [0.1, 0.25, 0.7, 0.85, 1.0]])
def test_obf_total_type_one_error_by_multivariate_normal(fractions: list[float]) -> None:
    """Independent check: P(some Z_k ≥ b_k) under the canonical joint distribution equals α."""
    design = obf_boundaries(fractions, alpha=0.025)
    t = np.array(fractions)
    no_crossing = stats.multivariate_normal.cdf(np.array(design.boundaries), np.zeros(t.size),
                                                _canonical_correlation(t), maxpts=2_000_000, abseps=1e-7,
                                                releps=1e-7, rng=np.random.default_rng(0))
    assert 1 - no_crossing == pytest.approx(0.025, abs=2e-5)


def test_obf_second_boundary_by_quadrature() -> None:
    """The second boundary solved independently with adaptive quadrature of the bivariate normal."""
    spent = obf_spending([0.2, 0.4], 0.025)
    b1 = stats.norm.isf(spent[0])

    def crossing(b2: float) -> float:
        def density(z: float) -> float:
            return stats.norm.pdf(z) * stats.norm.sf((b2 * math.sqrt(0.4) - z * math.sqrt(0.2)) / math.sqrt(0.2))
        return integrate.quad(density, -12, b1, epsabs=1e-15, epsrel=1e-13, limit=200)[0] - (spent[1] - spent[0])

    b2 = optimize.brentq(crossing, 2, 5, xtol=1e-12)
    assert obf_boundaries(FIVE_LOOKS).boundaries[1] == pytest.approx(b2, abs=1e-6)


def test_single_look_is_the_fixed_horizon_test() -> None:
    design = obf_boundaries([1.0], alpha=0.025)
    assert design.boundaries[0] == pytest.approx(stats.norm.isf(0.025), abs=1e-12)
    assert inflation_factor(design, 0.8) == pytest.approx(1.0, abs=1e-8)


def test_crossing_probabilities_under_null_and_alternative() -> None:
    design = obf_boundaries(FIVE_LOOKS, alpha=0.025)
    np.testing.assert_allclose(crossing_probabilities(design, 0.0), design.alpha_spent, rtol=1e-6, atol=1e-12)
    # the canonical process simulated directly: Z_k = W(t_k)/√t_k with drift θ·√t_k
    drift = stats.norm.isf(0.025) + stats.norm.ppf(0.9)
    rng = np.random.default_rng(11)
    t = np.array(FIVE_LOOKS)
    sims = 100_000
    w = np.cumsum(rng.standard_normal((sims, t.size)) * np.sqrt(np.diff(t, prepend=0.0)), axis=1)
    z = (w + drift * t) / np.sqrt(t)
    crossed = (z >= np.array(design.boundaries)).any(axis=1).mean()
    expected = crossing_probabilities(design, drift).sum()
    assert crossed == pytest.approx(expected, abs=3 * _mc_se(expected, sims))
    assert 0.89 < expected < 0.9  # a little power is lost against the fixed-horizon 0.9
    assert 1.0 < inflation_factor(design, 0.9) < 1.05


@pytest.mark.parametrize("fractions, alpha", [([], 0.025), ([0.5, 0.4, 1.0], 0.025), ([0.5, 1.2], 0.025),
                                              ([0.0, 1.0], 0.025), ([0.5, 1.0], 0.0), ([0.5, 1.0], 0.6)])
def test_obf_rejects_bad_input(fractions: list[float], alpha: float) -> None:
    with pytest.raises(ValueError):
        obf_boundaries(fractions, alpha)


def test_group_sequential_five_looks_keeps_alpha_per_side() -> None:
    """A/A binary data, 5 equally spaced looks: FPR per side ≈ 0.025 (within 3 MC SE)."""
    design = obf_boundaries(FIVE_LOOKS, alpha=0.025)
    rng = np.random.default_rng(20240501)
    sims, per_look, p = 20_000, 600, 0.10
    counts = np.cumsum(rng.binomial(per_look, p, size=(2, sims, 5)), axis=2)
    n = per_look * np.arange(1, 6)
    means = counts / n
    var = means * (1 - means) * n / (n - 1)
    z = (means[1] - means[0]) / np.sqrt(var[1] / n + var[0] / n)
    b = np.array(design.boundaries)
    upper = (z >= b).any(axis=1).mean()
    lower = (z <= -b).any(axis=1).mean()
    band = 3 * _mc_se(0.025, sims)
    assert abs(upper - 0.025) < band
    assert abs(lower - 0.025) < band


# --------------------------------------------------------------------------- always-valid inference


def test_mixture_boundary_is_the_inverse_of_the_likelihood_ratio() -> None:
    n = np.array([10.0, 100.0, 1e4, 1e6])
    rho = 500.0
    threshold = mixture_boundary(n, rho, 0.05)
    np.testing.assert_allclose(log_mixture_likelihood_ratio(threshold, n, rho), math.log(1 / 0.05), rtol=1e-12)
    np.testing.assert_allclose(always_valid_p_value(threshold, n, rho), 0.05, rtol=1e-10)
    assert always_valid_p_value(0.0, 100.0, rho) == 1.0
    assert always_valid_p_value(math.nan, 100.0, rho) == 1.0
    # wider than the fixed-horizon interval, and the width shrinks like √(log n / n)
    assert np.all(threshold > stats.norm.isf(0.025))


def test_optimal_rho_minimizes_width_at_planned_n() -> None:
    planned, alpha = 20_000, 0.05
    rho = optimal_rho(planned, alpha)
    best = optimize.minimize_scalar(lambda r: float(mixture_boundary(planned, r, alpha)),
                                    bounds=(1, planned), method="bounded", options={"xatol": 1e-6})
    assert rho == pytest.approx(best.x, rel=1e-4)
    closed_form = planned / (-2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha)))
    assert rho == pytest.approx(closed_form, rel=0.05)


def test_confidence_sequence_from_sufficient_statistics() -> None:
    rng = np.random.default_rng(3)
    control = SampleStats.from_values(rng.normal(10, 4, 3_000))
    variant = SampleStats.from_values(rng.normal(10.6, 4, 2_000))
    est = confidence_sequence(control, variant, alpha=0.05, planned_n=5_000)
    diff = variant.mean - control.mean
    se = math.sqrt(control.variance / control.n + variant.variance / variant.n)
    rho = optimal_rho(5_000, 0.05)
    half = float(mixture_boundary(5_000, rho, 0.05)) * se
    assert est.abs_uplift == pytest.approx(diff)
    assert (est.ci_lo, est.ci_hi) == pytest.approx((diff - half, diff + half))
    assert est.rho == pytest.approx(rho)
    assert est.p_value_always_valid == pytest.approx(float(always_valid_p_value(diff / se, 5_000, rho)))
    assert est.p_value_always_valid < 0.05 and est.ci_lo > 0
    # wider than the fixed-horizon Welch/z interval
    assert half > stats.norm.isf(0.025) * se
    # defaults: ρ for DEFAULT_PLANNED_N; an explicit ρ wins
    assert confidence_sequence(control, variant).rho == pytest.approx(optimal_rho(DEFAULT_PLANNED_N, 0.05))
    assert confidence_sequence(control, variant, rho=123.0).rho == 123.0


def test_confidence_sequence_without_data() -> None:
    est = confidence_sequence(_binary(0, 50), _binary(0, 50))
    assert est.p_value_always_valid == 1.0 and est.ci_lo == -math.inf and est.ci_hi == math.inf
    assert "not enough data" in est.method
    with pytest.raises(ValueError, match="rho"):
        confidence_sequence(_binary(5, 50), _binary(7, 50), rho=0.0)


def _daily_binary_looks(rng: np.random.Generator, sims: int, days: int, per_day: int, p_control: float,
                        p_variant: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Difference, unpooled SE and total n at every daily look, shape (sims, days)."""
    c = np.cumsum(rng.binomial(per_day, p_control, size=(sims, days)), axis=1)
    v = np.cumsum(rng.binomial(per_day, p_variant, size=(sims, days)), axis=1)
    n = per_day * np.arange(1, days + 1)
    mc, mv = c / n, v / n
    se = np.sqrt(mc * (1 - mc) / (n - 1) + mv * (1 - mv) / (n - 1))  # ddof = 1 variances over n
    return mv - mc, se, np.broadcast_to(2 * n, mc.shape)


def test_daily_peeking_aa_confidence_sequence_keeps_alpha_naive_does_not() -> None:
    """A/A, a look after each of 30 days: stopping at the first 'significant' look."""
    rng = np.random.default_rng(7)
    sims, days, per_day, alpha = 2_000, 30, 150, 0.05
    diff, se, n = _daily_binary_looks(rng, sims, days, per_day, 0.08, 0.08)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, diff / se, 0.0)
    rho = optimal_rho(2 * per_day * days, alpha)
    band = 3 * _mc_se(alpha, sims)

    naive = (np.abs(z) >= stats.norm.isf(alpha / 2)).any(axis=1).mean()
    cs = (np.abs(z) >= mixture_boundary(n, rho, alpha)).any(axis=1).mean()
    p_always = always_valid_p_value(z, n, rho).min(axis=1)

    assert naive > alpha + band + 0.05  # repeated fixed-horizon tests: several times α
    assert cs <= alpha + band
    assert (p_always <= alpha).mean() == pytest.approx(cs, abs=1 / sims)  # the p-value is the dual of the CS


def test_daily_peeking_confidence_sequence_covers_at_all_looks() -> None:
    """True difference +2 points: the CS contains it at every one of 30 looks in ≥ 95 % of runs."""
    rng = np.random.default_rng(8)
    sims, days, per_day, alpha = 2_000, 30, 150, 0.05
    truth = 0.10 - 0.08
    diff, se, n = _daily_binary_looks(rng, sims, days, per_day, 0.08, 0.10)
    half = mixture_boundary(n, optimal_rho(2 * per_day * days, alpha), alpha) * se
    covered = (np.abs(diff - truth) < half).all(axis=1).mean()
    assert covered >= 1 - alpha - 3 * _mc_se(1 - alpha, sims)
    # and it does learn: by day 30 most runs exclude 0 (about 62 %)
    assert ((diff - half)[:, -1] > 0).mean() > 0.5


def test_vectorized_rule_matches_sample_stats_api() -> None:
    rng = np.random.default_rng(9)
    for _ in range(20):
        n_c, n_v = rng.integers(50, 5_000, size=2)
        c, v = rng.binomial(n_c, 0.1), rng.binomial(n_v, 0.12)
        control, variant = _binary(c, int(n_c)), _binary(v, int(n_v))
        est = confidence_sequence(control, variant, planned_n=4_000)
        decision = sequential_decision(control, variant, planned_n=4_000)
        assert decision.may_act == (est.ci_lo > 0 or est.ci_hi < 0) == (est.p_value_always_valid <= 0.05)
        assert decision.statistic == pytest.approx(est.statistic)
        assert decision.threshold == pytest.approx(float(mixture_boundary(n_c + n_v, est.rho, 0.05)))


# --------------------------------------------------------------------------- decisions


def test_sequential_decision_always_valid() -> None:
    act = sequential_decision(_binary(400, 5_000), _binary(560, 5_000), planned_n=10_000)
    assert act.may_act and act.stop and act.direction == 1
    assert "excludes 0" in act.reason and "better" in act.reason
    harm = sequential_decision(_binary(560, 5_000), _binary(400, 5_000), planned_n=10_000)
    assert harm.may_act and harm.direction == -1 and "worse" in harm.reason
    wait = sequential_decision(_binary(400, 5_000), _binary(420, 5_000), planned_n=10_000)
    assert not wait.may_act and not wait.stop and "contains 0" in wait.reason
    empty = sequential_decision(_binary(0, 1), _binary(0, 1))
    assert not empty.may_act and "not enough data" in empty.reason


def test_sequential_decision_group_sequential() -> None:
    design = obf_boundaries(FIVE_LOOKS, alpha=0.025)
    # z ≈ 2.9: not enough at look 2 (boundary 3.357), enough at look 3 (2.680)
    control, variant = _binary(400, 5_000), _binary(480, 5_000)
    z = (0.096 - 0.08) / math.sqrt(0.08 * 0.92 / 4_999 + 0.096 * 0.904 / 4_999)
    early = sequential_decision(control, variant, design=design, look=2)
    assert not early.may_act and not early.stop and "continue" in early.reason
    assert early.statistic == pytest.approx(z) and early.threshold == design.boundaries[1]
    later = sequential_decision(control, variant, design=design, look=3)
    assert later.may_act and later.stop and later.direction == 1 and "crossed" in later.reason
    final = sequential_decision(control, _binary(410, 5_000), design=design, look=5)
    assert not final.may_act and final.stop and "final look" in final.reason
    with pytest.raises(ValueError, match="look must be between 1 and 5"):
        sequential_decision(control, variant, design=design, look=6)
    with pytest.raises(ValueError, match="look"):
        sequential_decision(control, variant, design=design)

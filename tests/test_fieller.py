"""Fieller's interval of the relative uplift (analysis/frequentist.fieller_interval): equality on fixed
inputs with the roots of the pivotal quantity found numerically (numpy.roots, scipy brentq), the
unbounded and "exclusive" cases, nan where undefined, and coverage by seeded simulation of 10,000
experiments, also with a noisy control mean."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import optimize, stats

from analysis.frequentist import FIELLER_METHOD, fieller_interval, relative_interval
from analysis.sufficient import SampleStats

SIMS = 10_000
Z = stats.norm.isf(0.025)


def pivot(rho: float, m_c: float, v_c: float, m_v: float, v_v: float) -> float:
    """Fieller's pivot (m_v − ρ m_c) / √(v_v + ρ² v_c): standard normal at the true ratio ρ."""
    return (m_v - rho * m_c) / math.sqrt(v_v + rho * rho * v_c)


def moments(x: np.ndarray) -> tuple[float, float]:
    """Mean and variance of the mean, with numpy (not SampleStats)."""
    return float(np.mean(x)), float(np.var(x, ddof=1) / len(x))


def band(p: float, sims: int = SIMS) -> float:
    return 3 * math.sqrt(p * (1 - p) / sims)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_equals_the_roots_of_the_pivot(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x_c, x_v = rng.gamma(2.0, 10.0, 150), rng.gamma(2.2, 10.0, 300)
    m_c, v_c = moments(x_c)
    m_v, v_v = moments(x_v)
    lo, hi = fieller_interval(SampleStats.from_values(x_c), SampleStats.from_values(x_v))

    ratio = m_v / m_c
    spread = 50 * math.sqrt(v_v + ratio ** 2 * v_c) / m_c
    lower = optimize.brentq(lambda r: pivot(r, m_c, v_c, m_v, v_v) - Z, ratio - spread, ratio, xtol=1e-14)
    upper = optimize.brentq(lambda r: pivot(r, m_c, v_c, m_v, v_v) + Z, ratio, ratio + spread, xtol=1e-14)
    assert (float(lo), float(hi)) == pytest.approx((lower - 1, upper - 1), rel=1e-8)

    # (m_v − ρ m_c)² − z²(v_v + ρ² v_c) = 0 expanded in powers of ρ
    roots = np.sort(np.roots([m_c ** 2 - Z ** 2 * v_c, -2 * m_c * m_v, m_v ** 2 - Z ** 2 * v_v]).real)
    assert (float(lo), float(hi)) == pytest.approx((roots[0] - 1, roots[1] - 1), rel=1e-8)
    assert lo < ratio - 1 < hi


def test_vectorized_and_other_alpha() -> None:
    rng = np.random.default_rng(4)
    x_c, x_v = rng.normal(5, 4, (6, 80)), rng.normal(6, 4, (6, 120))
    lo, hi = fieller_interval(SampleStats.from_values(x_c, axis=1), SampleStats.from_values(x_v, axis=1), alpha=0.10)
    z = stats.norm.isf(0.05)
    for i in range(6):
        m_c, v_c = moments(x_c[i])
        m_v, v_v = moments(x_v[i])
        roots = np.sort(np.roots([m_c ** 2 - z ** 2 * v_c, -2 * m_c * m_v, m_v ** 2 - z ** 2 * v_v]).real)
        assert (lo[i], hi[i]) == pytest.approx((roots[0] - 1, roots[1] - 1), rel=1e-8)


def test_negative_control_mean_and_no_variance() -> None:
    rng = np.random.default_rng(5)
    x_c, x_v = rng.normal(-10, 3, 200), rng.normal(-12, 3, 200)  # a net loss per customer in both arms
    m_c, v_c = moments(x_c)
    m_v, v_v = moments(x_v)
    lo, hi = fieller_interval(SampleStats.from_values(x_c), SampleStats.from_values(x_v))
    roots = np.sort(np.roots([m_c ** 2 - Z ** 2 * v_c, -2 * m_c * m_v, m_v ** 2 - Z ** 2 * v_v]).real)
    assert (float(lo), float(hi)) == pytest.approx((roots[0] - 1, roots[1] - 1), rel=1e-8)
    assert math.isnan(relative_interval(SampleStats.from_values(x_c), SampleStats.from_values(x_v))[0])
    lo, hi = fieller_interval(SampleStats(4, 8.0, 16.0), SampleStats(4, 12.0, 36.0))  # constant 2 and 3
    assert (float(lo), float(hi)) == pytest.approx((0.5, 0.5))


def test_unbounded_when_the_control_mean_is_not_significant() -> None:
    """g = z²v_c/m_c² ≥ 1. 'Exclusive' case: the variant mean is clearly non-zero, and the ratios
    compatible with the data are two rays; 'whole line': both means are noise. Both are (−inf, inf)."""
    rng = np.random.default_rng(6)
    x_c = rng.normal(0, 1, 400)
    x_c = x_c - x_c.mean() + 0.05  # control mean 0.05 with SE 0.05: g ≈ 3.8
    m_c, v_c = moments(x_c)
    assert Z ** 2 * v_c / m_c ** 2 > 1
    for variant_mean, shape in [(1.0, "exclusive"), (0.02, "whole line")]:
        x_v = rng.normal(0, 1, 400)
        x_v = x_v - x_v.mean() + variant_mean
        m_v, v_v = moments(x_v)
        a, half_b, c = m_c ** 2 - Z ** 2 * v_c, m_c * m_v, m_v ** 2 - Z ** 2 * v_v
        if shape == "exclusive":  # real roots, and the pivot is inside ±z far out on both sides
            assert half_b ** 2 - a * c > 0
            assert abs(pivot(1e6, m_c, v_c, m_v, v_v)) < Z and abs(pivot(-1e6, m_c, v_c, m_v, v_v)) < Z
            assert abs(pivot(m_v / m_c, m_c, v_c, m_v, v_v)) < Z and abs(pivot(0.0, m_c, v_c, m_v, v_v)) > Z
        else:  # no real root: every ratio is compatible
            assert half_b ** 2 - a * c < 0
        lo, hi = fieller_interval(SampleStats.from_values(x_c), SampleStats.from_values(x_v))
        assert (float(lo), float(hi)) == (-math.inf, math.inf)
    assert "unbounded" in FIELLER_METHOD


def test_undefined_is_nan_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for control, variant in [(SampleStats(1, 3.0, 9.0), SampleStats(10, 30.0, 100.0)),
                                 (SampleStats(0, 0.0, 0.0), SampleStats(10, 30.0, 100.0)),
                                 (SampleStats(10, 30.0, 100.0), SampleStats(0, 0.0, 0.0))]:
            lo, hi = fieller_interval(control, variant)
            assert math.isnan(lo) and math.isnan(hi)
        lo, hi = fieller_interval(SampleStats(5, 0.0, 0.0), SampleStats(5, 5.0, 5.0))  # control all zeros
        assert (float(lo), float(hi)) == (-math.inf, math.inf)


def simulate(m_c: float, m_v: float, sd: float, n: int, seed: int) -> tuple[np.ndarray, ...]:
    """SIMS normal experiments of n per arm: Fieller's (lo, hi) and the pivot at the true ratio."""
    rng = np.random.default_rng(seed)
    control = SampleStats.from_values(rng.normal(m_c, sd, (SIMS, n)), axis=1)
    variant = SampleStats.from_values(rng.normal(m_v, sd, (SIMS, n)), axis=1)
    lo, hi = fieller_interval(control, variant)
    rho = m_v / m_c
    pivots = (variant.mean - rho * control.mean) / np.sqrt(variant.variance / n + rho ** 2 * control.variance / n)
    return lo, hi, pivots


def test_coverage_by_simulation() -> None:
    """10,000 experiments, 200 per arm, control mean 1 with SE 0.21 (g ≈ 0.17): coverage of the true
    relative uplift (+30%) within ±3 Monte Carlo SE of 95%."""
    lo, hi, _ = simulate(1.0, 1.3, 3.0, 200, seed=7)
    covered = float(np.mean((lo <= 0.3) & (0.3 <= hi)))
    assert abs(covered - 0.95) < band(0.95), covered
    assert np.mean(np.isinf(lo)) < 0.01


def test_coverage_with_a_noisy_control_mean() -> None:
    """Control mean 1 with SE 0.42 (g ≈ 0.7), 50 per arm: a bounded interval contains the truth exactly
    when the pivot at the truth is within ±z (it is the inversion of that test), and over all
    experiments the coverage is at least 95% (more: reporting the 'exclusive' two-ray sets as the whole
    line adds coverage)."""
    lo, hi, pivots = simulate(1.0, 1.3, 3.0, 50, seed=8)
    covered = (lo <= 0.3) & (0.3 <= hi)
    bounded = np.isfinite(lo)
    assert 0.05 < 1 - bounded.mean() < 0.5
    np.testing.assert_array_equal(covered[bounded], np.abs(pivots[bounded]) <= Z)
    assert covered.mean() > 0.95 - band(0.95) - 0.005, covered.mean()  # − the z-for-t error at 50 per arm (≈ 0.004)


def test_the_report_says_when_the_fieller_interval_is_unbounded() -> None:
    """A control mean indistinguishable from 0: (−∞, ∞), and the report's method says so."""
    from analysis.report import _estimates, _Pair

    control, variant = SampleStats(30, 1.0, 1.0), SampleStats(30, 6.0, 6.0)  # 1 and 6 of 30 returned
    pair = _Pair(variant=None, metric="returned", kind="binary", segment=None,  # type: ignore[arg-type]
                 control=control, treated=variant)
    (estimate,) = _estimates([pair], 0.05, "fieller")
    lo, hi = fieller_interval(control, variant)
    assert estimate.rel_ci == (lo, hi) == (-np.inf, np.inf)
    assert "unbounded" in estimate.method

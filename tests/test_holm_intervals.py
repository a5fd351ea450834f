"""Holm-compatible simultaneous bounds (analysis/corrections.py): equality with a brute-force projection
of the partitioning confidence region they come from, agreement with Holm's decisions from
``adjust_p_values`` on thousands of random families, and simultaneous coverage by seeded simulation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from analysis.corrections import adjust_p_values, holm_compatible_bounds, holm_compatible_intervals

ALPHA = 0.05
SIMS = 10_000


def random_family(rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Estimates of mixed sign and strength (z from about −4 to 6), standard errors from 0.1 to 3."""
    se = rng.uniform(0.1, 3.0, m)
    return rng.normal(rng.uniform(-1, 3, m), 1.0) * se * rng.uniform(0.5, 2, m), se


def holm_rejects(p: np.ndarray, alpha: float) -> np.ndarray:
    return np.array(adjust_p_values(p, "holm")) < alpha


def brute_force_bounds(est: np.ndarray, se: np.ndarray, alpha: float) -> np.ndarray:
    """Lower ends of the projection of the partitioning region (Strassburger & Bretz 2008): for each set J
    of parameters δ_j ≤ 0 (the others > 0), the Bonferroni test over J accepts the δ with
    δ_j ∈ [δ̂_j − z_{α/|J|} se_j, 0] for j ∈ J; for J = ∅, δ > 0 with δ_j ≥ δ̂_j − z_{α/m} se_j for every j."""
    m = len(est)
    lower = np.full(m, np.inf)
    for size in range(1, m + 1):
        c = stats.norm.isf(alpha / size)
        for subset in itertools.combinations(range(m), size):
            j = list(subset)
            box = est[j] - c * se[j]
            if np.all(box <= 0):  # this part of the partition is not rejected
                outside = np.setdiff1d(np.arange(m), j)
                lower[j] = np.minimum(lower[j], box)
                lower[outside] = np.minimum(lower[outside], 0.0)
    everything_positive = np.maximum(0.0, est - stats.norm.isf(alpha / m) * se)
    return np.minimum(lower, everything_positive)


@pytest.mark.parametrize("m", [1, 2, 3, 4, 6])
def test_equals_the_projection_of_the_partitioning_region(m: int) -> None:
    rng = np.random.default_rng(m)
    for _ in range(200):
        est, se = random_family(rng, m)
        np.testing.assert_allclose(holm_compatible_bounds(est, se, ALPHA), brute_force_bounds(est, se, ALPHA),
                                   rtol=1e-12, atol=1e-12)


def test_bounds_agree_with_holm_decisions_on_random_families() -> None:
    """L_i ≥ 0 exactly when Holm (adjust_p_values on one-sided p-values) rejects δ_i ≤ 0; a non-rejected
    hypothesis has L_i < 0; a rejected one has L_i = 0 unless Holm rejects all of them."""
    rng = np.random.default_rng(10)
    seen = {"none": 0, "some": 0, "all": 0}
    for _ in range(3_000):
        m = int(rng.integers(1, 13))
        est, se = random_family(rng, m)
        alpha = float(rng.choice([0.01, 0.05, 0.10]))
        lower = holm_compatible_bounds(est, se, alpha)
        rejected = holm_rejects(stats.norm.sf(est / se), alpha)
        np.testing.assert_array_equal(lower >= 0, rejected)
        assert np.all(lower[~rejected] < 0)
        if rejected.all():  # the Bonferroni bounds, floored at 0
            np.testing.assert_allclose(lower, np.maximum(0, est - stats.norm.isf(alpha / m) * se))
            seen["all"] += 1
        else:
            assert np.all(lower[rejected] == 0)
            seen["some" if rejected.any() else "none"] += 1
    assert min(seen.values()) > 100  # every branch is exercised


def test_undefined_entries_are_nan_and_not_counted() -> None:
    est, se = np.array([2.5, np.nan, -0.3, 4.0, 1.0]), np.array([1.0, 1.0, 0.5, np.nan, 0.4])
    lower = holm_compatible_bounds(est, se)
    assert np.isnan(lower[[1, 3]]).all()
    np.testing.assert_allclose(lower[[0, 2, 4]], holm_compatible_bounds(est[[0, 2, 4]], se[[0, 2, 4]]))
    assert np.isnan(holm_compatible_bounds([np.nan], [1.0])).all()
    assert holm_compatible_bounds([], []).shape == (0,)


def test_two_sided_intervals_and_holm_decisions() -> None:
    """lo ≥ 0 ⇔ Holm at α/2 rejects δ ≤ 0, hi ≤ 0 ⇔ Holm at α/2 rejects δ ≥ 0; an interval excluding 0
    implies two-sided Holm at α rejects δ = 0; with no negative estimate the two are the same decisions,
    and with estimates of both signs two-sided Holm sometimes rejects more."""
    rng = np.random.default_rng(11)
    strictly_more = 0
    for _ in range(3_000):
        m = int(rng.integers(1, 10))
        est, se = random_family(rng, m)
        z = est / se
        lo, hi = holm_compatible_intervals(est, se, ALPHA)
        assert np.all(lo <= est) and np.all(est <= hi)
        np.testing.assert_array_equal(lo >= 0, holm_rejects(stats.norm.sf(z), ALPHA / 2))
        np.testing.assert_array_equal(hi <= 0, holm_rejects(stats.norm.cdf(z), ALPHA / 2))
        excludes = (lo >= 0) | (hi <= 0)
        two_sided = holm_rejects(2 * stats.norm.sf(np.abs(z)), ALPHA)
        assert np.all(two_sided[excludes])
        if np.all(est >= 0) or np.all(est <= 0):
            np.testing.assert_array_equal(excludes, two_sided)
        strictly_more += int(np.any(two_sided & ~excludes))
    assert strictly_more > 0


def simulate(rng: np.random.Generator, delta: np.ndarray, se: np.ndarray) -> tuple[np.ndarray, ...]:
    """SIMS families of normal estimates around ``delta``: the Holm-compatible lower bounds, the
    two-sided intervals and the unadjusted lower bounds δ̂ − z_α se."""
    est = rng.normal(delta, se, (SIMS, len(delta)))
    lower = np.array([holm_compatible_bounds(e, se, ALPHA) for e in est])
    intervals = [holm_compatible_intervals(e, se, ALPHA) for e in est]
    lo, hi = np.array([i[0] for i in intervals]), np.array([i[1] for i in intervals])
    return lower, lo, hi, est - stats.norm.isf(ALPHA) * se


def band(p: float) -> float:
    return 3 * math.sqrt(p * (1 - p) / SIMS)


def test_simultaneous_coverage_at_the_global_null() -> None:
    """All five δ = 0 (independent estimates): every lower bound is below its δ (a bound of 0 means δ > 0)
    exactly when Holm rejects nothing, probability (1 − α/m)^m; the two-sided intervals likewise cover with
    probability P(every |z| < z_{α/2m}) = (1 − α/m)^m. Both within ±3 Monte Carlo SE."""
    m = 5
    delta, se = np.zeros(m), np.array([0.5, 1.0, 1.0, 2.0, 3.0])
    lower, lo, hi, _ = simulate(np.random.default_rng(12), delta, se)
    exact = (1 - ALPHA / m) ** m
    assert abs(np.mean(np.all(delta > lower, axis=1)) - exact) < band(exact)
    assert abs(np.mean(np.all((lo < delta) & (delta < hi), axis=1)) - exact) < band(exact)


def test_simultaneous_coverage_with_true_effects() -> None:
    """Two true effects, one harmful variant and two nulls: simultaneous coverage of the lower bounds and of
    the two-sided intervals is at least 1 − α (−3 Monte Carlo SE); unadjusted bounds fall far short."""
    delta = np.array([0.0, 0.0, 1.0, 3.0, -2.0])
    se = np.array([1.0, 0.5, 0.5, 1.0, 1.0])
    lower, lo, hi, naive = simulate(np.random.default_rng(13), delta, se)
    assert np.mean(np.all(delta > lower, axis=1)) > 1 - ALPHA - band(1 - ALPHA)
    assert np.mean(np.all((lo < delta) & (delta < hi), axis=1)) > 1 - ALPHA - band(1 - ALPHA)
    assert np.mean(np.all(delta > naive, axis=1)) < 1 - ALPHA - 10 * band(1 - ALPHA)
    assert np.mean(lower[:, 3] >= 0) > 0.5  # the large effect is usually found

"""Ratio metrics by the delta method (analysis/ratio.py): equality with statsmodels and with the delta
formula written as a gradient times a covariance matrix on per-customer rows, agreement with a
bootstrap, nan (never an exception) where undefined, and by seeded simulation of 10,000 experiments per
scenario: A/A false-positive rates at 50/50 and 90/10 splits and the coverage of a true effect, on
revenue per returned customer."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from analysis.frequentist import Estimate
from analysis.ratio import RATIO_METHOD, RatioStats, compare_ratio, ratio_test

SIMS = 10_000
ALPHA = 0.05


def customers(rng: np.random.Generator, shape: tuple[int, ...], value_scale: float = 25.0
              ) -> tuple[np.ndarray, np.ndarray]:
    """Per-customer (revenue, orders): a customer-level spend propensity u (mean 1) drives both the
    number of orders (Poisson 0.6u, mostly 0) and the order values (gamma, mean 2·value_scale·u), so
    numerator and denominator are correlated and orders within a customer are not independent.
    True revenue per order: 2·value_scale·E[u²]/E[u] = 3·value_scale."""
    u = rng.gamma(2.0, 0.5, shape)
    orders = rng.poisson(0.6 * u).astype(float)
    revenue = rng.gamma(2.0 * orders, value_scale * u)  # a sum of `orders` gamma(2) order values; 0 without orders
    return revenue, orders


def explicit_delta_variance(x: np.ndarray, y: np.ndarray) -> float:
    """Var(x̄/ȳ) ≈ ∇ᵀ Σ ∇ with ∇ = (1/ȳ, −x̄/ȳ²) and Σ the covariance matrix of (x̄, ȳ) (numpy, ddof = 1)."""
    gradient = np.array([1 / y.mean(), -x.mean() / y.mean() ** 2])
    return float(gradient @ (np.cov(np.vstack([x, y])) / len(x)) @ gradient)


def returners(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 50.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-customer (revenue, returned) for revenue per returned customer: 30% return, and a returner
    spends gamma(2, scale) (skewness 1.4), so the true ratio is 2·scale."""
    returned = (rng.random(shape) < 0.3).astype(float)
    return returned * rng.gamma(2.0, scale, shape), returned


def simulate_arm(rng: np.random.Generator, n: int, scale: float = 50.0, sims: int = SIMS,
                 chunk: int = 1_000) -> RatioStats:
    """``sims`` arms of ``n`` customers as one RatioStats of arrays, generated in chunks to bound memory."""
    parts = [RatioStats.from_values(*returners(rng, (min(chunk, sims - start), n), scale), axis=1)
             for start in range(0, sims, chunk)]
    return RatioStats(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                        ("n", "sum_x", "sum_x2", "sum_y", "sum_y2", "sum_xy")))


def band(p: float, sims: int = SIMS) -> float:
    return 3 * math.sqrt(p * (1 - p) / sims)


# --- fixed inputs ---------------------------------------------------------------------------------


def test_variance_equals_statsmodels_wls_hc1() -> None:
    """With every y > 0, Σx/Σy is the WLS mean of x/y with weights y, and its HC1 robust variance is
    n/(n−1)·Σ(x − R̂y)²/(Σy)², which is the delta-method variance with ddof = 1."""
    rng = np.random.default_rng(1)
    y = 1.0 + rng.poisson(1.5, 800)
    x = rng.gamma(2.0 * y, 30.0) + rng.normal(0, 5, 800)
    s = RatioStats.from_values(x, y)
    fit = sm.WLS(x / y, np.ones_like(y), weights=y).fit(cov_type="HC1")
    assert s.ratio == pytest.approx(fit.params[0], rel=1e-10)
    assert s.ratio_variance == pytest.approx(fit.bse[0] ** 2, rel=1e-8)


def test_variance_equals_the_gradient_formula_with_zero_denominators() -> None:
    rng = np.random.default_rng(2)
    x, y = customers(rng, (1_500,))
    assert (y == 0).mean() > 0.3  # most customers did not order: they count in n, not in Σy
    s = RatioStats.from_values(x, y)
    assert s.n == 1_500
    assert s.ratio == pytest.approx(x.sum() / y.sum(), rel=1e-12)
    assert s.ratio_variance == pytest.approx(explicit_delta_variance(x, y), rel=1e-8)


def test_ratio_test_equals_a_direct_computation() -> None:
    rng = np.random.default_rng(3)
    x_c, y_c = customers(rng, (900,))
    x_v, y_v = customers(rng, (1_100,), value_scale=28.0)
    r_c, r_v = x_c.sum() / y_c.sum(), x_v.sum() / y_v.sum()
    var_c, var_v = explicit_delta_variance(x_c, y_c), explicit_delta_variance(x_v, y_v)
    se = math.sqrt(var_c + var_v)
    z = (r_v - r_c) / se
    q = stats.norm.ppf(0.975)
    log_se = math.sqrt(var_v / r_v ** 2 + var_c / r_c ** 2)

    t = ratio_test(RatioStats.from_values(x_c, y_c), RatioStats.from_values(x_v, y_v))
    assert (t.control_ratio, t.variant_ratio, t.abs_uplift) == pytest.approx((r_c, r_v, r_v - r_c), rel=1e-10)
    assert t.statistic == pytest.approx(z, rel=1e-8)
    assert t.p_value == pytest.approx(2 * (1 - stats.norm.cdf(abs(z))), rel=1e-8)
    assert t.abs_ci == pytest.approx((r_v - r_c - q * se, r_v - r_c + q * se), rel=1e-8)
    assert t.rel_uplift == pytest.approx(r_v / r_c - 1, rel=1e-10)
    assert t.rel_ci == pytest.approx((r_v / r_c * math.exp(-q * log_se) - 1, r_v / r_c * math.exp(q * log_se) - 1),
                                     rel=1e-8)

    e = compare_ratio(RatioStats.from_values(x_c, y_c), RatioStats.from_values(x_v, y_v), alpha=0.10)
    assert isinstance(e, Estimate) and e.method == RATIO_METHOD
    assert isinstance(e.p_value, float) and e.p_value == pytest.approx(t.p_value, rel=1e-12)
    assert e.abs_ci[1] - e.abs_ci[0] == pytest.approx(2 * stats.norm.ppf(0.95) * se, rel=1e-8)


def test_delta_standard_error_agrees_with_the_bootstrap() -> None:
    """4,000 nonparametric bootstrap resamples of the customers: the bootstrap SD of R̂ has a Monte Carlo
    error of about 1/√(2·4000) ≈ 1.1%; the delta method's own error is O(1/n). Tolerance 5%."""
    rng = np.random.default_rng(4)
    x, y = customers(rng, (3_000,))
    idx = rng.integers(0, len(x), size=(4_000, len(x)))
    boot = RatioStats.from_values(x[idx], y[idx], axis=1).ratio
    delta_se = math.sqrt(RatioStats.from_values(x, y).ratio_variance)
    assert np.std(boot, ddof=1) == pytest.approx(delta_se, rel=0.05)
    # the covariance term matters here: leaving it out overstates the SE by far more than the tolerance
    r = x.sum() / y.sum()
    no_cov = math.sqrt((x.var(ddof=1) + r * r * y.var(ddof=1)) / (len(x) * y.mean() ** 2))
    assert no_cov > 1.3 * np.std(boot, ddof=1)


def test_from_values_along_an_axis_is_per_row() -> None:
    rng = np.random.default_rng(5)
    x, y = customers(rng, (3, 400))
    batch = RatioStats.from_values(x, y, axis=1)
    for i in range(3):
        row = RatioStats.from_values(x[i], y[i])
        assert batch.ratio[i] == pytest.approx(row.ratio, rel=1e-12)
        assert batch.ratio_variance[i] == pytest.approx(row.ratio_variance, rel=1e-10)
    transposed = RatioStats.from_values(x.T, y.T, axis=0)
    np.testing.assert_allclose(transposed.ratio_variance, batch.ratio_variance, rtol=1e-12)
    with pytest.raises(ValueError):
        RatioStats.from_values(x, y[:, :10])


# --- undefined cases ------------------------------------------------------------------------------


def test_undefined_cases_are_nan_without_warnings() -> None:
    ok = RatioStats.from_values([10.0, 0.0, 30.0, 5.0], [1.0, 0.0, 2.0, 1.0])
    no_denominator = RatioStats.from_values([0.0, 0.0, 0.0], [0.0, 0.0, 0.0])  # nobody returned: Σy = 0
    single = RatioStats.from_values([4.0], [1.0])
    empty = RatioStats(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    constant = RatioStats.from_values([10.0, 20.0], [1.0, 2.0])  # x = 10y: the ratio has no variance
    negative = RatioStats.from_values([-10.0, 5.0, -30.0], [1.0, 1.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(no_denominator.ratio) and math.isnan(no_denominator.ratio_variance)
        assert single.ratio == 4.0 and math.isnan(single.ratio_variance)
        assert math.isnan(empty.ratio) and math.isnan(empty.ratio_variance)
        assert constant.ratio == 10.0 and constant.ratio_variance == 0.0
        for control, variant in [(no_denominator, ok), (ok, no_denominator), (single, ok), (empty, empty)]:
            t = ratio_test(control, variant)
            assert math.isnan(t.statistic) and math.isnan(t.p_value)
            assert math.isnan(t.abs_ci[0]) and math.isnan(t.rel_ci[1])
        t = ratio_test(constant, constant)
        assert t.abs_uplift == 0.0 and math.isnan(t.statistic) and math.isnan(t.p_value)
        t = ratio_test(ok, negative)  # a negative ratio: the difference is defined, the log ratio is not
        assert math.isfinite(t.p_value) and math.isfinite(t.abs_ci[0])
        assert math.isnan(t.rel_ci[0]) and math.isnan(t.rel_ci[1])
        e = compare_ratio(no_denominator, ok)
        assert math.isnan(e.control_mean) and math.isnan(e.p_value)
        batch = ratio_test(RatioStats(np.array([0, 50]), np.array([0.0, 100.0]), np.array([0.0, 400.0]),
                                      np.array([0.0, 20.0]), np.array([0.0, 30.0]), np.array([0.0, 60.0])),
                           RatioStats(np.array([50, 50]), np.array([120.0, 120.0]), np.array([500.0, 500.0]),
                                      np.array([20.0, 20.0]), np.array([30.0, 30.0]), np.array([70.0, 70.0])))
        assert math.isnan(batch.p_value[0]) and math.isfinite(batch.p_value[1])


def test_tiny_p_values_do_not_underflow() -> None:
    rng = np.random.default_rng(6)
    x_c, y_c = customers(rng, (20_000,))
    x_v, y_v = customers(rng, (20_000,), value_scale=40.0)
    t = ratio_test(RatioStats.from_values(x_c, y_c), RatioStats.from_values(x_v, y_v))
    assert t.statistic > 20 and 0 < t.p_value < 1e-80
    assert 2 * (1 - stats.norm.cdf(t.statistic)) == 0.0  # what 1 − Φ would have reported


# --- simulation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("n_control", "n_variant"), [(2_500, 2_500), (500, 4_500)])
def test_aa_false_positive_rate(n_control: int, n_variant: int) -> None:
    """10,000 A/A experiments (50/50 and 90/10 splits of 5,000 customers): two-sided rejections at
    α = 0.05 within ±3 Monte Carlo SE of 0.05; ignoring Cov(x, y) would be far too conservative.
    (With 200 customers in the small arm the skewed revenue pushes the rate to ~0.07: the delta method,
    like Welch, needs a few hundred in the denominator of the small arm; see docs/statistics/ratio.md.)"""
    rng = np.random.default_rng(20 + n_control)
    control, variant = simulate_arm(rng, n_control), simulate_arm(rng, n_variant)
    t = ratio_test(control, variant, ALPHA)
    assert np.isfinite(t.p_value).all()
    rate = float(np.mean(t.p_value < ALPHA))
    assert abs(rate - ALPHA) < band(ALPHA), rate

    def no_cov_var(s: RatioStats) -> np.ndarray:
        n, r = s.n, s.ratio
        return ((s.sum_x2 - s.sum_x ** 2 / n) + r * r * (s.sum_y2 - s.sum_y ** 2 / n)) / (n - 1) / (n * (s.sum_y / n) ** 2)
    z_wrong = t.abs_uplift / np.sqrt(no_cov_var(control) + no_cov_var(variant))
    assert np.mean(2 * stats.norm.sf(np.abs(z_wrong)) < ALPHA) < ALPHA - band(ALPHA)


def test_coverage_of_a_true_effect() -> None:
    """10,000 experiments at a 90/10 split where a returner spends 10% more in the variant: the 95%
    intervals of the difference and of the relative uplift cover the truth within ±3 MC SE of 95%."""
    rng = np.random.default_rng(31)
    control, variant = simulate_arm(rng, 500, scale=50.0), simulate_arm(rng, 4_500, scale=55.0)
    true_c, true_v = 2 * 50.0, 2 * 55.0
    t = ratio_test(control, variant, ALPHA)
    assert float(np.mean(t.variant_ratio)) == pytest.approx(true_v, rel=0.002)  # consistent estimator
    covered = (t.abs_ci[0] <= true_v - true_c) & (true_v - true_c <= t.abs_ci[1])
    assert abs(covered.mean() - 0.95) < band(0.95), covered.mean()
    rel_covered = (t.rel_ci[0] <= true_v / true_c - 1) & (true_v / true_c - 1 <= t.rel_ci[1])
    assert abs(rel_covered.mean() - 0.95) < band(0.95), rel_covered.mean()
    assert np.mean(t.p_value < ALPHA) > 0.2  # the effect is detectable: the coverage is of a real difference

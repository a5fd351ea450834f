"""The pure statistics, checked against independent implementations and by simulation.

- Fixed inputs: every test statistic, p-value and interval equals statsmodels' or scipy's on the
  same data (statsmodels ``proportions_ztest`` / ``confint_proportions_2indep``, scipy
  ``ttest_ind_from_stats`` / ``ttest_ind``, ``chisquare``, ``multipletests``).
- Hillstrom's public e-mail test: published arm sizes, counts and sums, SRM χ² and the Welch test
  of spend, with Σx² taken from the project's copy of the raw file.
- Simulations with fixed seeds: A/A false-positive rates near α and interval coverage near 1 − α,
  vectorised over thousands of experiments through array-valued :class:`SampleStats`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from analysis.corrections import CORRECTIONS, adjust_p_values
from analysis.frequentist import (
    BINARY_METHOD,
    WELCH_METHOD,
    compare,
    newcombe_interval,
    relative_interval,
    two_proportion_z,
    welch,
)
from analysis.roi import roi
from analysis.srm import srm_check
from analysis.sufficient import SampleStats
from experiments.models import MetricKind

CONTROL = "No E-Mail"


def binary(successes: int, n: int) -> SampleStats:
    """A 0/1 metric: Σx = Σx² = the number of successes."""
    return SampleStats(n, float(successes), float(successes))


def sim_binary(rng: np.random.Generator, n: int, p: float, sims: int) -> SampleStats:
    x = rng.binomial(n, p, size=sims).astype(float)
    return SampleStats(np.full(sims, n), x, x)


def binomial_tolerance(p: float, sims: int, sd: float = 4.0) -> float:
    """Half-width of a ±``sd`` standard-error band for a rate estimated from ``sims`` trials."""
    return sd * math.sqrt(p * (1 - p) / sims)


# --- sufficient statistics ------------------------------------------------------------------------


def test_sample_stats_mean_and_variance_match_numpy() -> None:
    x = np.random.default_rng(1).gamma(2.0, 30.0, size=537)
    s = SampleStats.from_values(x)
    assert s.n == 537
    assert s.mean == pytest.approx(x.mean(), rel=1e-12)
    assert s.variance == pytest.approx(x.var(ddof=1), rel=1e-9)


def test_sample_stats_degenerate_sizes() -> None:
    assert math.isnan(SampleStats(0, 0.0, 0.0).mean)
    assert math.isnan(SampleStats(0, 0.0, 0.0).variance)
    assert SampleStats(1, 4.0, 16.0).mean == 4.0
    assert math.isnan(SampleStats(1, 4.0, 16.0).variance)
    assert SampleStats(3, 6.0, 12.0).variance == 0.0  # constant values: exactly no variance


def test_sample_stats_from_arrays_is_per_row() -> None:
    x = np.random.default_rng(2).normal(5, 2, size=(4, 50))
    s = SampleStats.from_values(x, axis=1)
    assert s.n.tolist() == [50] * 4
    np.testing.assert_allclose(s.mean, x.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(s.variance, x.var(axis=1, ddof=1), rtol=1e-9)


# --- binary: pooled z-test and Newcombe interval ---------------------------------------------------

BINARY_CASES = [
    # control successes, control n, variant successes, variant n
    (122, 21_306, 267, 21_307),  # Hillstrom conversion, Mens vs No E-Mail
    (40, 1_000, 55, 1_500),  # unequal n
    (0, 500, 7, 800),  # zero count in the control
    (9, 300, 0, 250),  # zero count in the variant
    (500, 1_000, 530, 1_000),
    (3, 12, 11, 15),  # small samples
]


@pytest.mark.parametrize("alpha", [0.05, 0.1])
@pytest.mark.parametrize(("x_c", "n_c", "x_v", "n_v"), BINARY_CASES)
def test_binary_matches_statsmodels(x_c: int, n_c: int, x_v: int, n_v: int, alpha: float) -> None:
    e = compare(binary(x_c, n_c), binary(x_v, n_v), MetricKind.BINARY, alpha=alpha)
    z, p = proportions_ztest([x_v, x_c], [n_v, n_c])
    lo, hi = confint_proportions_2indep(x_v, n_v, x_c, n_c, method="newcomb", compare="diff", alpha=alpha)
    assert e.method == BINARY_METHOD
    assert e.statistic == pytest.approx(z, rel=1e-10)
    assert e.p_value == pytest.approx(p, rel=1e-9)
    assert e.abs_ci == pytest.approx((lo, hi), rel=1e-9, abs=1e-15)
    assert e.control_mean == x_c / n_c
    assert e.variant_mean == x_v / n_v
    assert e.abs_uplift == pytest.approx(x_v / n_v - x_c / n_c, rel=1e-12)
    assert e.abs_ci[0] < e.abs_uplift < e.abs_ci[1]  # never zero width, even for a zero count


def test_binary_relative_interval_agrees_with_katz_log_interval() -> None:
    """For large n the delta method on log(p_v/p_c) is the Katz log interval of the risk ratio
    (statsmodels ``method="log"``), up to the n − 1 in the sample variance."""
    x_c, n_c, x_v, n_v = 1_200, 40_000, 1_450, 38_000
    e = compare(binary(x_c, n_c), binary(x_v, n_v), MetricKind.BINARY)
    lo, hi = confint_proportions_2indep(x_v, n_v, x_c, n_c, method="log", compare="ratio")
    assert e.rel_uplift == pytest.approx((x_v / n_v) / (x_c / n_c) - 1, rel=1e-12)
    assert e.rel_ci == pytest.approx((lo - 1, hi - 1), rel=1e-3)


def test_relative_interval_is_the_delta_method_on_the_log_ratio() -> None:
    rng = np.random.default_rng(3)
    c, v = rng.gamma(1.5, 40.0, 800), rng.gamma(1.5, 46.0, 650)
    e = compare(SampleStats.from_values(c), SampleStats.from_values(v), MetricKind.CONTINUOUS)
    se = math.sqrt(v.var(ddof=1) / (len(v) * v.mean() ** 2) + c.var(ddof=1) / (len(c) * c.mean() ** 2))
    z = stats.norm.ppf(0.975)
    ratio = v.mean() / c.mean()
    assert e.rel_uplift == pytest.approx(ratio - 1, rel=1e-12)
    assert e.rel_ci == pytest.approx((ratio * math.exp(-z * se) - 1, ratio * math.exp(z * se) - 1), rel=1e-9)


def test_large_effects_keep_positive_p_values() -> None:
    """Survival functions, not 1 − cdf: a z of ~30 has p ≈ 1e-200, not 0."""
    e = compare(binary(100, 50_000), binary(1_100, 50_000), MetricKind.BINARY)
    _, p = proportions_ztest([1_100, 100], [50_000, 50_000])
    assert e.statistic > 25
    assert 0 < e.p_value < 1e-100
    assert e.p_value == pytest.approx(p, rel=1e-9)
    rng = np.random.default_rng(4)
    c, v = rng.normal(0, 1, 5_000), rng.normal(0.5, 1, 5_000)
    w = compare(SampleStats.from_values(c), SampleStats.from_values(v), MetricKind.CONTINUOUS)
    assert w.statistic > 20
    assert 0 < w.p_value < 1e-80
    assert w.p_value == pytest.approx(stats.ttest_ind(v, c, equal_var=False).pvalue, rel=1e-6)


# --- continuous: Welch ----------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.05, 0.01])
@pytest.mark.parametrize(("n_c", "n_v", "shift", "scale_v"), [(40, 25, 0.3, 3.0), (1_000, 200, 2.0, 1.0),
                                                               (12, 300, -1.0, 0.5)])
def test_welch_matches_scipy(n_c: int, n_v: int, shift: float, scale_v: float, alpha: float) -> None:
    rng = np.random.default_rng(n_c + n_v)
    c = rng.gamma(2.0, 5.0, n_c)
    v = rng.gamma(2.0, 5.0 * scale_v, n_v) + shift
    e = compare(SampleStats.from_values(c), SampleStats.from_values(v), MetricKind.CONTINUOUS, alpha=alpha)
    from_stats = stats.ttest_ind_from_stats(v.mean(), v.std(ddof=1), n_v, c.mean(), c.std(ddof=1), n_c,
                                            equal_var=False)
    raw = stats.ttest_ind(v, c, equal_var=False)
    ci = raw.confidence_interval(confidence_level=1 - alpha)
    assert e.method == WELCH_METHOD
    assert e.statistic == pytest.approx(from_stats.statistic, rel=1e-8)
    assert e.p_value == pytest.approx(from_stats.pvalue, rel=1e-7)
    assert e.p_value == pytest.approx(raw.pvalue, rel=1e-7)
    assert e.abs_ci == pytest.approx((ci.low, ci.high), rel=1e-8)
    assert e.abs_uplift == pytest.approx(v.mean() - c.mean(), rel=1e-9)


# --- degenerate inputs: nan, never an exception or a warning --------------------------------------


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("kind", list(MetricKind))
def test_empty_arms_give_nan(kind: MetricKind) -> None:
    empty = SampleStats(0, 0.0, 0.0)
    for control, variant in [(empty, empty), (empty, binary(3, 10)), (binary(3, 10), empty)]:
        e = compare(control, variant, kind)
        assert math.isnan(e.p_value) and math.isnan(e.statistic)
        assert all(math.isnan(x) for x in e.abs_ci + e.rel_ci)


@pytest.mark.filterwarnings("error")
def test_no_variance_in_either_arm_gives_nan() -> None:
    e = compare(SampleStats(5, 10.0, 20.0), SampleStats(8, 24.0, 72.0), MetricKind.CONTINUOUS)  # all 2s vs all 3s
    assert (e.control_mean, e.variant_mean, e.abs_uplift) == (2.0, 3.0, 1.0)
    assert math.isnan(e.p_value) and all(math.isnan(x) for x in e.abs_ci + e.rel_ci)
    none = compare(binary(0, 200), binary(0, 300), MetricKind.BINARY)
    assert math.isnan(none.p_value) and math.isnan(none.rel_uplift)
    lo, hi = confint_proportions_2indep(0, 300, 0, 200, method="newcomb", compare="diff")
    assert none.abs_ci == pytest.approx((lo, hi), rel=1e-9)  # the score interval is still informative
    assert none.abs_ci[0] < 0 < none.abs_ci[1]


@pytest.mark.filterwarnings("error")
def test_zero_means_give_non_finite_relative_uplift() -> None:
    from_zero = compare(binary(0, 500), binary(7, 800), MetricKind.BINARY)
    assert from_zero.rel_uplift == math.inf
    assert all(math.isnan(x) for x in from_zero.rel_ci)
    to_zero = compare(binary(9, 300), binary(0, 250), MetricKind.BINARY)
    assert to_zero.rel_uplift == -1.0
    assert all(math.isnan(x) for x in to_zero.rel_ci)
    single = compare(SampleStats(1, 3.0, 9.0), SampleStats(4, 8.0, 20.0), MetricKind.CONTINUOUS)
    assert math.isnan(single.p_value) and all(math.isnan(x) for x in single.abs_ci + single.rel_ci)


# --- Hillstrom ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hillstrom(hillstrom_path: Path) -> pd.DataFrame:
    return pd.read_csv(hillstrom_path)


def _arm(frame: pd.DataFrame, segment: str, column: str) -> np.ndarray:
    return frame.loc[frame["segment"] == segment, column].to_numpy(dtype=float)


@pytest.mark.parametrize(("segment", "n", "visits", "conversions", "spend"), [
    ("Mens E-Mail", 21_307, 3_894, 267, 30_311.69),
    ("Womens E-Mail", 21_387, 3_238, 189, 23_038.11),
    ("No E-Mail", 21_306, 2_262, 122, 13_908.33),
])
def test_hillstrom_published_arm_totals(hillstrom: pd.DataFrame, segment: str, n: int, visits: int,
                                        conversions: int, spend: float) -> None:
    s = SampleStats.from_values(_arm(hillstrom, segment, "spend"))
    assert (s.n, int(_arm(hillstrom, segment, "visit").sum()), int(_arm(hillstrom, segment, "conversion").sum())
            ) == (n, visits, conversions)
    assert s.sum == pytest.approx(spend, abs=0.005)


def test_hillstrom_srm() -> None:
    result = srm_check([21_307, 21_387, 21_306], [1, 1, 1])
    assert result.chi2 == pytest.approx(0.2025, abs=5e-5)
    assert result.p_value == pytest.approx(0.904, abs=5e-4)
    assert not result.mismatch


def test_hillstrom_mens_spend_welch(hillstrom: pd.DataFrame) -> None:
    mens, control = _arm(hillstrom, "Mens E-Mail", "spend"), _arm(hillstrom, CONTROL, "spend")
    e = compare(SampleStats.from_values(control), SampleStats.from_values(mens), MetricKind.CONTINUOUS)
    raw = stats.ttest_ind(mens, control, equal_var=False)
    assert e.statistic == pytest.approx(raw.statistic, rel=1e-7)
    assert e.p_value == pytest.approx(raw.pvalue, rel=1e-6)
    assert e.statistic == pytest.approx(5.3001, abs=5e-5)
    assert e.p_value == pytest.approx(1.16e-7, abs=5e-10)


@pytest.mark.parametrize("segment", ["Mens E-Mail", "Womens E-Mail"])
@pytest.mark.parametrize("metric", ["visit", "conversion"])
def test_hillstrom_binary_metrics(hillstrom: pd.DataFrame, segment: str, metric: str) -> None:
    v, c = _arm(hillstrom, segment, metric), _arm(hillstrom, CONTROL, metric)
    e = compare(SampleStats.from_values(c), SampleStats.from_values(v), MetricKind.BINARY)
    z, p = proportions_ztest([v.sum(), c.sum()], [len(v), len(c)])
    lo, hi = confint_proportions_2indep(v.sum(), len(v), c.sum(), len(c), method="newcomb", compare="diff")
    assert (e.statistic, e.p_value) == pytest.approx((z, p), rel=1e-9)
    assert e.abs_ci == pytest.approx((lo, hi), rel=1e-9)


# --- simulations ----------------------------------------------------------------------------------

SIMS = 4_000


def test_binary_aa_false_positive_rate_is_alpha() -> None:
    rng = np.random.default_rng(20240501)
    control, variant = sim_binary(rng, 2_000, 0.08, SIMS), sim_binary(rng, 2_000, 0.08, SIMS)
    _, p = two_proportion_z(control, variant)
    for alpha in (0.05, 0.01):
        assert (p < alpha).mean() == pytest.approx(alpha, abs=binomial_tolerance(alpha, SIMS))


def test_binary_aa_with_unequal_arms() -> None:
    rng = np.random.default_rng(7)
    control, variant = sim_binary(rng, 600, 0.2, SIMS), sim_binary(rng, 3_000, 0.2, SIMS)
    _, p = two_proportion_z(control, variant)
    assert (p < 0.05).mean() == pytest.approx(0.05, abs=binomial_tolerance(0.05, SIMS))


@pytest.mark.parametrize(("p_c", "n_c", "p_v", "n_v"), [(0.05, 1_500, 0.07, 1_000), (0.03, 600, 0.045, 900)])
def test_newcombe_and_relative_interval_coverage(p_c: float, n_c: int, p_v: float, n_v: int) -> None:
    rng = np.random.default_rng(int(1e4 * p_c) + n_c)
    control, variant = sim_binary(rng, n_c, p_c, SIMS), sim_binary(rng, n_v, p_v, SIMS)
    lo, hi = newcombe_interval(control, variant)
    assert ((lo < p_v - p_c) & (p_v - p_c < hi)).mean() == pytest.approx(0.95, abs=binomial_tolerance(0.95, SIMS))
    rlo, rhi = relative_interval(control, variant)
    assert np.isfinite(rlo).all()
    truth = p_v / p_c - 1
    assert ((rlo < truth) & (truth < rhi)).mean() == pytest.approx(0.95, abs=binomial_tolerance(0.95, SIMS))


def test_welch_coverage_and_size_with_unequal_variances() -> None:
    """Small, unequal arms with unequal spreads: where a pooled-variance t-test would fail."""
    rng = np.random.default_rng(11)
    control = SampleStats.from_values(rng.normal(10.0, 1.0, (SIMS, 40)), axis=1)
    variant = SampleStats.from_values(rng.normal(10.5, 4.0, (SIMS, 15)), axis=1)
    _, _, (lo, hi) = welch(control, variant)
    assert ((lo < 0.5) & (0.5 < hi)).mean() == pytest.approx(0.95, abs=binomial_tolerance(0.95, SIMS))
    same = SampleStats.from_values(rng.normal(10.0, 4.0, (SIMS, 15)), axis=1)
    _, p, _ = welch(control, same)
    assert (p < 0.05).mean() == pytest.approx(0.05, abs=binomial_tolerance(0.05, SIMS))


def test_skewed_revenue_interval_coverage() -> None:
    """Revenue-like data (mostly zeros, gamma spend when positive): Welch and the log-ratio interval."""
    rng = np.random.default_rng(12)
    n, sims = 2_000, 2_000

    def revenue(rate: float, scale: float) -> SampleStats:
        buys = rng.random((sims, n)) < rate
        return SampleStats.from_values(np.where(buys, rng.gamma(2.0, scale, (sims, n)), 0.0), axis=1)

    control, variant = revenue(0.10, 50.0), revenue(0.12, 50.0)
    mean_c, mean_v = 0.10 * 100.0, 0.12 * 100.0
    _, _, (lo, hi) = welch(control, variant)
    assert ((lo < mean_v - mean_c) & (mean_v - mean_c < hi)).mean() == pytest.approx(
        0.95, abs=binomial_tolerance(0.95, sims))
    rlo, rhi = relative_interval(control, variant)
    truth = mean_v / mean_c - 1
    assert ((rlo < truth) & (truth < rhi)).mean() == pytest.approx(0.95, abs=binomial_tolerance(0.95, sims))


def test_vectorised_helpers_agree_with_compare() -> None:
    rng = np.random.default_rng(13)
    control, variant = sim_binary(rng, 300, 0.1, 5), sim_binary(rng, 250, 0.15, 5)
    z, p = two_proportion_z(control, variant)
    lo, hi = newcombe_interval(control, variant)
    for i in range(5):
        e = compare(binary(control.sum[i], 300), binary(variant.sum[i], 250), MetricKind.BINARY)
        assert (e.statistic, e.p_value, *e.abs_ci) == pytest.approx((z[i], p[i], lo[i], hi[i]), rel=1e-12)


# --- sample ratio mismatch ------------------------------------------------------------------------


def test_srm_detects_a_small_imbalance_on_a_large_sample() -> None:
    result = srm_check([505_000, 495_000], [0.5, 0.5])
    assert result.mismatch
    assert result.p_value < 1e-20
    assert result.chi2 == pytest.approx(100.0)  # (5000² + 5000²) / 500000


def test_srm_passes_the_exact_split() -> None:
    result = srm_check([20_000, 10_000, 10_000], [0.5, 0.25, 0.25])
    assert result.chi2 == 0.0
    assert result.p_value == 1.0
    assert not result.mismatch


@pytest.mark.parametrize(("observed", "shares"), [([1_030, 980, 2_010], [1, 1, 2]), ([480, 520], [0.5, 0.5]),
                                                  ([90, 410, 500], [0.1, 0.4, 0.5])])
def test_srm_matches_scipy_chisquare(observed: list[int], shares: list[float]) -> None:
    result = srm_check(observed, shares)
    expected = np.asarray(shares) / np.sum(shares) * np.sum(observed)
    chi2, p = stats.chisquare(observed, expected)
    assert result.chi2 == pytest.approx(chi2, rel=1e-12)
    assert result.p_value == pytest.approx(p, rel=1e-12)
    assert result.expected_shares == pytest.approx(list(np.asarray(shares) / np.sum(shares)))
    assert sum(result.expected_shares) == pytest.approx(1.0)
    assert result.observed == observed
    assert result.threshold == 0.001
    assert result.mismatch == (p < 0.001)


def test_srm_threshold_and_empty_experiment() -> None:
    observed = [1_030, 970]
    p = stats.chisquare(observed).pvalue
    assert srm_check(observed, [1, 1], threshold=p * 1.01).mismatch
    assert not srm_check(observed, [1, 1], threshold=p * 0.99).mismatch
    empty = srm_check([0, 0, 0], [1, 1, 1])
    assert math.isnan(empty.p_value)
    assert not empty.mismatch


# --- multiple-testing corrections -----------------------------------------------------------------

P_VALUES = [0.001, 0.2, 0.012, 0.04, 0.03, 0.5, 0.0049]


@pytest.mark.parametrize(("method", "statsmodels_method"), [("holm", "holm"), ("bh", "fdr_bh"),
                                                            ("bonferroni", "bonferroni")])
def test_corrections_match_multipletests(method: str, statsmodels_method: str) -> None:
    expected = multipletests(P_VALUES, method=statsmodels_method)[1]
    assert adjust_p_values(P_VALUES, method) == pytest.approx(list(expected), rel=1e-12)


@pytest.mark.parametrize(("method", "statsmodels_method"), [("holm", "holm"), ("bh", "fdr_bh"),
                                                            ("bonferroni", "bonferroni")])
def test_corrections_match_multipletests_on_many_families(method: str, statsmodels_method: str) -> None:
    rng = np.random.default_rng(17)
    for size in (1, 2, 5, 37, 200):
        p = rng.beta(0.4, 1.5, size)
        p[: size // 3] = p[0]  # ties
        expected = multipletests(p, method=statsmodels_method)[1]
        assert adjust_p_values(p, method) == pytest.approx(list(expected), rel=1e-12, abs=1e-15)


def test_no_correction_and_the_default() -> None:
    assert adjust_p_values(P_VALUES, "none") == P_VALUES
    assert adjust_p_values(P_VALUES) == pytest.approx(list(multipletests(P_VALUES, method="holm")[1]))
    assert CORRECTIONS == ("holm", "bh", "bonferroni", "none")
    assert adjust_p_values([], "holm") == []


@pytest.mark.parametrize("method", CORRECTIONS)
def test_nan_p_values_pass_through_and_are_not_counted(method: str) -> None:
    with_nan = [0.01, math.nan, 0.04, math.nan, 0.02]
    adjusted = adjust_p_values(with_nan, method)
    assert math.isnan(adjusted[1]) and math.isnan(adjusted[3])
    finite = [p for p in with_nan if not math.isnan(p)]
    assert [adjusted[i] for i in (0, 2, 4)] == pytest.approx(adjust_p_values(finite, method), rel=1e-12)
    assert all(math.isnan(p) for p in adjust_p_values([math.nan, math.nan], method))


def test_unknown_correction_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="holm.*bh.*bonferroni.*none"):
        adjust_p_values([0.1], "fdr")


# --- ROI ------------------------------------------------------------------------------------------


def _roi(**changes):  # noqa: ANN202
    """A variant of 1,000 customers (40% return, ¥30/customer) against a control (25%, ¥20)."""
    arguments = dict(
        variant="sms-coupon", n_variant=1_000,
        control_return=binary(500, 2_000), variant_return=binary(400, 1_000),
        control_revenue=SampleStats(2_000, 40_000.0, 4e6), variant_revenue=SampleStats(1_000, 30_000.0, 3e6),
        contacted=950, contact_cost=950 * 0.05, redemptions=120, coupon_value=10.0, fixed_cost=200.0,
    )
    return roi(**(arguments | changes))


def test_roi_by_hand() -> None:
    r = _roi()
    incremental_returns = (0.40 - 0.25) * 1_000
    incremental_revenue = (30.0 - 20.0) * 1_000
    cost = 950 * 0.05 + 120 * 10.0 + 200.0
    assert r.variant == "sms-coupon" and r.contacted == 950
    assert r.incremental_returns == pytest.approx(incremental_returns)
    assert r.incremental_revenue == pytest.approx(incremental_revenue)
    assert (r.contact_cost, r.coupon_cost) == pytest.approx((950 * 0.05, 120 * 10.0))
    assert r.cost == pytest.approx(cost)
    assert r.roi == pytest.approx((incremental_revenue - cost) / cost)
    assert r.cost_per_incremental_return == pytest.approx(cost / incremental_returns)


def test_roi_is_none_without_cost() -> None:
    r = _roi(contact_cost=0.0, redemptions=0, fixed_cost=0.0)
    assert r.cost == 0.0
    assert r.roi is None
    assert r.cost_per_incremental_return == 0.0


@pytest.mark.parametrize("variant_returns", [250, 200])  # as many as the control's rate, and fewer
def test_cost_per_incremental_return_is_none_without_incremental_returns(variant_returns: int) -> None:
    r = _roi(variant_return=binary(variant_returns, 1_000))
    assert r.incremental_returns <= 0
    assert r.cost_per_incremental_return is None
    assert r.roi is not None


def test_roi_intervals_and_cannibalization_follow_from_the_differences() -> None:
    control_return = SampleStats.from_values(np.r_[np.ones(70), np.zeros(930)])
    variant_return = SampleStats.from_values(np.r_[np.ones(100), np.zeros(900)])
    rng = np.random.default_rng(3)
    control_values, variant_values = np.r_[rng.lognormal(4, 0.5, 70), np.zeros(930)], np.r_[rng.lognormal(4, 0.5, 100),
                                                                                             np.zeros(900)]
    control_revenue, variant_revenue = SampleStats.from_values(control_values), SampleStats.from_values(variant_values)
    result = roi(variant="v", n_variant=1000, control_return=control_return, variant_return=variant_return,
                 control_revenue=control_revenue, variant_revenue=variant_revenue, contacted=1000,
                 contact_cost=50.0, redemptions=60, coupon_value=10.0, fixed_cost=0.0)
    welch_ci = stats.ttest_ind(variant_values, control_values, equal_var=False).confidence_interval(0.95)
    lo, hi = result.incremental_revenue_ci
    assert (lo, hi) == pytest.approx((welch_ci.low * 1000, welch_ci.high * 1000))
    assert result.roi_ci == pytest.approx(((lo - 650.0) / 650.0, (hi - 650.0) / 650.0))
    newcombe = confint_proportions_2indep(100, 1000, 70, 1000, method="newcomb")
    assert result.incremental_returns_ci == pytest.approx((newcombe[0] * 1000, newcombe[1] * 1000))
    assert result.natural_share_of_redemptions == pytest.approx(0.07 / 0.10)
    assert result.cannibalized_coupon_cost == pytest.approx(600.0 * 0.7)


def test_roi_interval_covers_the_true_roi() -> None:
    """Seeded simulation: the ROI interval (known cost, Welch on revenue) covers the true ROI ~95%."""
    rng = np.random.default_rng(11)
    n, p_c, p_v, cost = 2000, 0.06, 0.09, 400.0
    true_roi = ((p_v - p_c) * n * math.exp(4 + 0.5 ** 2 / 2) - cost) / cost
    reps, covered = 1500, 0
    for _ in range(reps):
        buyers_c, buyers_v = rng.random(n) < p_c, rng.random(n) < p_v
        rev_c = np.where(buyers_c, rng.lognormal(4, 0.5, n), 0.0)
        rev_v = np.where(buyers_v, rng.lognormal(4, 0.5, n), 0.0)
        result = roi(variant="v", n_variant=n, control_return=SampleStats.from_values(buyers_c),
                     variant_return=SampleStats.from_values(buyers_v), control_revenue=SampleStats.from_values(rev_c),
                     variant_revenue=SampleStats.from_values(rev_v), contacted=n, contact_cost=cost,
                     redemptions=0, coupon_value=0.0, fixed_cost=0.0)
        covered += result.roi_ci[0] <= true_roi <= result.roi_ci[1]
    assert abs(covered / reps - 0.95) < 3 * math.sqrt(0.95 * 0.05 / reps)

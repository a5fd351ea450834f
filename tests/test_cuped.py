"""CUPED / Lin regression adjustment (analysis/cuped.py) from sufficient statistics: equality with
statsmodels on per-customer rows, and the operating characteristics by vectorized simulation
(thousands of experiments as batch dimensions of the sums, no per-row loops)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from analysis.cuped import CovariateStats, cuped

SIMS = 2_000


def rows_fit(y_c, x_c, y_v, x_v):
    """statsmodels on the rows: the interacted OLS y ~ T + (x − x̄) + T:(x − x̄), and the same model by
    WLS with each arm weighted by 1/σ̂² of its own regression (whose SE is the per-arm CUPED variance)."""
    x_c, x_v = np.asarray(x_c, dtype=float), np.asarray(x_v, dtype=float)
    if x_c.ndim == 1:
        x_c, x_v = x_c[:, None], x_v[:, None]
    y = np.r_[y_c, y_v]
    t = np.r_[np.zeros(len(y_c)), np.ones(len(y_v))]
    x = np.vstack([x_c, x_v])
    xc = x - x.mean(axis=0)
    design = np.column_stack([np.ones_like(y), t, xc, t[:, None] * xc])
    scale = {g: sm.OLS(y[t == g], sm.add_constant(x[t == g])).fit().scale for g in (0, 1)}
    weights = np.where(t == 1, 1 / scale[1], 1 / scale[0])
    return (sm.OLS(y, design).fit(), sm.OLS(y, design).fit(cov_type="HC2"),
            sm.WLS(y, design, weights=weights).fit())


def simulate(rng, n_c, n_v, tau=0.0, rho=0.6, sims=SIMS, slope_shift=0.0):
    """Batched experiments: x ~ gamma (skewed, like pre-period spend); y = corr ρ with x in the
    control, a different slope in the variant (heterogeneous effect); true ATE = tau."""
    def arm(n, effect, shift):
        x = rng.gamma(2.0, 1.0, (sims, n))  # mean 2, sd √2
        z = (x - 2.0) / math.sqrt(2.0)
        y = 5.0 + effect + (rho + shift) * z + math.sqrt(1 - rho * rho) * rng.standard_normal((sims, n))
        return CovariateStats.from_values(y, x), y
    control, y_c = arm(n_c, 0.0, 0.0)
    variant, y_v = arm(n_v, tau, slope_shift)  # E[z] = 0, so the ATE is tau whatever the slope
    return control, variant, y_c, y_v


def test_matches_statsmodels_one_covariate() -> None:
    rng = np.random.default_rng(1)
    x_c, x_v = rng.gamma(2, 50, 700), rng.gamma(2, 50, 900)
    y_c = 10 + 0.3 * x_c + rng.normal(0, 20, 700) * (1 + x_c / 100)  # heteroskedastic
    y_v = 12 + 0.4 * x_v + rng.normal(0, 30, 900)
    result = cuped(CovariateStats.from_values(y_c, x_c), CovariateStats.from_values(y_v, x_v))
    ols, hc2, wls = rows_fit(y_c, x_c, y_v, x_v)
    assert result.abs_uplift == pytest.approx(ols.params[1], rel=1e-8)
    assert result.theta == pytest.approx((ols.params[2], ols.params[2] + ols.params[3]), rel=1e-8)
    assert result.control_mean == pytest.approx(ols.params[0], rel=1e-8)
    assert wls.params[1] == pytest.approx(ols.params[1], rel=1e-8)
    assert wls.scale == pytest.approx(1.0, rel=1e-10)  # Σ (n_g − 2) / (N − 4): the weights are exact
    assert result.se == pytest.approx(wls.bse[1], rel=1e-8)
    # the same SE as two separate per-arm regressions on (x − x̄)
    x_bar = np.r_[x_c, x_v].mean()
    per_arm = [sm.OLS(y, sm.add_constant(x - x_bar)).fit().bse[0] for y, x in ((y_c, x_c), (y_v, x_v))]
    assert result.se == pytest.approx(math.hypot(*per_arm), rel=1e-8)
    # Lin's HC2 needs third and fourth moments; with this strong heteroskedasticity it differs here by
    # ~5 %, an O(n^-1/2) term of random sign (see test_hc2_gap_shrinks_with_n)
    assert result.se == pytest.approx(hc2.bse[1], rel=0.1)
    unadjusted = stats.ttest_ind(y_v, y_c, equal_var=False)
    assert result.se < (y_v.mean() - y_c.mean()) / unadjusted.statistic


def test_hc2_gap_shrinks_with_n() -> None:
    """The per-arm variance and Lin's HC2 differ by the term 2 dᵀS⁻¹Σu e²/n, d = x̄ − x̄_g = O(n^-1/2),
    which the second-order sums cannot carry; with 60,000 customers per arm it is well under 1 %."""
    rng = np.random.default_rng(11)
    n = 60_000
    x_c, x_v = rng.gamma(2, 50, n), rng.gamma(2, 50, n)
    y_c = 10 + 0.3 * x_c + rng.normal(0, 20, n) * (1 + x_c / 100)
    y_v = 12 + 0.4 * x_v + rng.normal(0, 30, n)
    result = cuped(CovariateStats.from_values(y_c, x_c), CovariateStats.from_values(y_v, x_v))
    _, hc2, _ = rows_fit(y_c, x_c, y_v, x_v)
    assert result.abs_uplift == pytest.approx(hc2.params[1], rel=1e-8)
    assert result.se == pytest.approx(hc2.bse[1], rel=0.01)


def test_matches_statsmodels_two_covariates() -> None:
    rng = np.random.default_rng(2)
    x_c, x_v = rng.normal(3, 1, (500, 2)), rng.normal(3, 1, (650, 2))
    x_c[:, 1] += 0.5 * x_c[:, 0]
    x_v[:, 1] += 0.5 * x_v[:, 0]
    y_c = 1 + x_c @ [0.8, -0.3] + rng.normal(0, 1, 500)
    y_v = 1.4 + x_v @ [1.0, -0.2] + rng.normal(0, 1.5, 650)
    result = cuped(CovariateStats.from_values(y_c, x_c), CovariateStats.from_values(y_v, x_v))
    ols, _, wls = rows_fit(y_c, x_c, y_v, x_v)
    assert result.abs_uplift == pytest.approx(ols.params[1], rel=1e-8)
    assert result.se == pytest.approx(wls.bse[1], rel=1e-8)
    assert result.theta[0] == pytest.approx(ols.params[2:4], rel=1e-8)
    assert result.theta[1] == pytest.approx(ols.params[2:4] + ols.params[4:6], rel=1e-8)


def test_batch_equals_one_at_a_time() -> None:
    control, variant, _, _ = simulate(np.random.default_rng(3), 50, 60, tau=0.2, sims=4)
    batch = cuped(control, variant)
    for i in range(4):
        pick = lambda s: CovariateStats(*(np.asarray(getattr(s, f))[i] for f in  # noqa: E731
                                          ("n", "sum_y", "sum_y2", "sum_x", "sum_x2", "sum_xy")))
        one = cuped(pick(control), pick(variant))
        assert isinstance(one.abs_uplift, float)
        for field in ("abs_uplift", "se", "p_value", "rel_uplift", "variance_reduction"):
            assert getattr(batch, field)[i] == pytest.approx(getattr(one, field), rel=1e-12)


def test_unbiased_and_variance_reduction_is_rho_squared() -> None:
    rho, tau = 0.7, 0.15
    control, variant, y_c, y_v = simulate(np.random.default_rng(4), 300, 400, tau=tau, rho=rho,
                                          slope_shift=0.2)
    result = cuped(control, variant)
    estimates = result.abs_uplift
    mc_se = estimates.std(ddof=1) / math.sqrt(SIMS)
    assert abs(estimates.mean() - tau) < 3 * mc_se
    # reported reduction ≈ ρ²; the variant's slope is ρ + 0.2, so per arm the residual variance is
    # 1 − ρ² and the outcome variance 1 (control) and (ρ + 0.2)² + 1 − ρ² (variant)
    residual = 1 - rho ** 2
    expected = 1 - (residual / 300 + residual / 400) / (1 / 300 + ((rho + 0.2) ** 2 + residual) / 400)
    assert expected == pytest.approx(rho ** 2, abs=0.08)
    assert np.mean(result.variance_reduction) == pytest.approx(expected, abs=0.01)
    # … and it is real: the spread of the adjusted estimates over the simulations
    unadjusted = y_v.mean(axis=1) - y_c.mean(axis=1)
    assert 1 - estimates.var() / unadjusted.var() == pytest.approx(expected, abs=0.05)
    # the reported SE is the spread of the estimates
    assert np.sqrt(np.mean(result.se ** 2)) == pytest.approx(estimates.std(), rel=0.05)


def test_a_a_false_positive_rate_and_coverage() -> None:
    rng = np.random.default_rng(5)
    band = 3 * math.sqrt(0.05 * 0.95 / SIMS)
    control, variant, _, _ = simulate(rng, 400, 250, tau=0.0, rho=0.5)
    a_a = cuped(control, variant)
    assert abs(np.mean(a_a.p_value < 0.05) - 0.05) < band
    control, variant, _, _ = simulate(rng, 250, 400, tau=0.3, rho=0.5, slope_shift=-0.3)
    result = cuped(control, variant)
    covered = (result.abs_ci[0] <= 0.3) & (0.3 <= result.abs_ci[1])
    assert abs(covered.mean() - 0.95) < band


def test_uncorrelated_covariate_reduces_nothing() -> None:
    control, variant, _, _ = simulate(np.random.default_rng(6), 300, 300, tau=0.1, rho=0.0)
    reduction = cuped(control, variant).variance_reduction
    assert abs(np.mean(reduction)) < 0.01
    assert np.percentile(reduction, 99) < 0.03


def test_hillstrom_history_barely_helps_spend(hillstrom_path: Path) -> None:
    data = pd.read_csv(hillstrom_path, usecols=["segment", "history", "spend"])
    arms = {name: data[data["segment"] == name] for name in ("No E-Mail", "Mens E-Mail")}
    stats_ = {name: CovariateStats.from_values(arm["spend"].to_numpy(float), arm["history"].to_numpy(float))
              for name, arm in arms.items()}
    result = cuped(stats_["No E-Mail"], stats_["Mens E-Mail"])
    assert 0 < result.variance_reduction < 0.03
    control, variant = arms["No E-Mail"], arms["Mens E-Mail"]
    ols, hc2, wls = rows_fit(control["spend"].to_numpy(float), control["history"].to_numpy(float),
                             variant["spend"].to_numpy(float), variant["history"].to_numpy(float))
    assert result.abs_uplift == pytest.approx(ols.params[1], rel=1e-8)
    assert result.se == pytest.approx(wls.bse[1], rel=1e-6)
    assert result.se == pytest.approx(hc2.bse[1], rel=0.002)
    assert result.abs_ci[0] > 0  # the Mens e-mail raised spend

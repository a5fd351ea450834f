"""Power and planning: the same numbers as statsmodels called directly, MDE ↔ sample size round trips, and
simulations (fixed seeds, vectorized draws) that the planned n really gives the planned power.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import proportion_effectsize

import analysis.power as power


def _mc_se(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n)


# --------------------------------------------------------------------------- agreement with statsmodels


@pytest.mark.parametrize("baseline, mde_abs, mde_rel, control_share, variants, correction", [
    (0.10, 0.02, None, 0.5, 1, "bonferroni"),
    (0.05, None, 0.20, 0.5, 1, "none"),
    (0.30, -0.03, None, 0.5, 1, "bonferroni"),
    (0.08, 0.01, None, 0.1, 3, "bonferroni"),  # 10 % holdout, three contacted variants
    (0.08, 0.01, None, 0.1, 3, "none"),
    (0.02, None, 0.5, 0.25, 1, "bonferroni"),
])
def test_sample_size_proportions_matches_statsmodels(baseline: float, mde_abs: float | None,
                                                     mde_rel: float | None, control_share: float,
                                                     variants: int, correction: str) -> None:
    plan = power.sample_size_proportions(baseline, mde_abs=mde_abs, mde_rel=mde_rel, alpha=0.05, power=0.8,
                                         control_share=control_share, variants=variants, correction=correction)
    target = baseline + (mde_abs if mde_abs is not None else baseline * mde_rel)
    h = abs(proportion_effectsize(target, baseline))
    alpha = 0.05 / variants if correction == "bonferroni" else 0.05
    ratio = (1 - control_share) / variants / control_share
    n1 = NormalIndPower().solve_power(effect_size=h, nobs1=None, alpha=alpha, power=0.8, ratio=ratio,
                                      alternative="two-sided")
    assert plan.n_control_exact == pytest.approx(n1, rel=1e-8)
    assert plan.n_variant_exact == pytest.approx(n1 * ratio, rel=1e-8)
    assert plan.n_control == math.ceil(n1) and plan.n_variant == math.ceil(n1 * ratio)
    assert plan.n_total == plan.n_control + variants * plan.n_variant
    assert plan.alpha_used == pytest.approx(alpha)
    assert plan.effect_size == pytest.approx(h, rel=1e-12)
    assert plan.target == pytest.approx(target) and plan.mde_abs == pytest.approx(target - baseline)
    assert "Cohen's h" in plan.method


@pytest.mark.parametrize("mean, sd, mde_abs, mde_rel, control_share, variants", [
    (35.0, 120.0, 5.0, None, 0.5, 1),
    (35.0, 120.0, None, 0.1, 0.2, 2),
    (3.0, 1.5, -0.2, None, 0.5, 1),
])
def test_sample_size_means_matches_statsmodels(mean: float, sd: float, mde_abs: float | None,
                                               mde_rel: float | None, control_share: float, variants: int) -> None:
    plan = power.sample_size_means(mean, sd, mde_abs=mde_abs, mde_rel=mde_rel, alpha=0.05, power=0.9,
                                   control_share=control_share, variants=variants)
    diff = mde_abs if mde_abs is not None else mean * mde_rel
    ratio = (1 - control_share) / variants / control_share
    n1 = TTestIndPower().solve_power(effect_size=abs(diff) / sd, nobs1=None, alpha=0.05 / variants, power=0.9,
                                     ratio=ratio, alternative="two-sided")
    assert plan.n_control_exact == pytest.approx(n1, rel=1e-8)
    assert plan.n_variant_exact == pytest.approx(n1 * ratio, rel=1e-8)
    assert plan.effect_size == pytest.approx(abs(diff) / sd)
    assert plan.target == pytest.approx(mean + diff)


def test_mde_matches_statsmodels() -> None:
    mde = power.minimum_detectable_effect(0.06, 20_000, 60_000, alpha=0.05, power=0.8)
    # exact root of statsmodels' power function; its solve_power(effect_size=None) stops at ~1e-5
    assert NormalIndPower().power(mde.effect_size, 20_000, 0.05, ratio=3.0) == pytest.approx(0.8, abs=1e-12)
    h = NormalIndPower().solve_power(effect_size=None, nobs1=20_000, alpha=0.05, power=0.8, ratio=3.0)
    assert mde.effect_size == pytest.approx(h, rel=1e-4)
    assert proportion_effectsize(mde.target, 0.06) == pytest.approx(mde.effect_size, rel=1e-12)
    assert mde.mde_rel == pytest.approx(mde.mde_abs / 0.06)
    down = power.minimum_detectable_effect(0.06, 20_000, 60_000, direction="decrease")
    assert down.mde_abs < 0 and -down.mde_abs < mde.mde_abs  # arcsine scale: a drop is easier near 0
    mde_m = power.minimum_detectable_effect_means(40.0, 150.0, 5_000, 5_000, alpha=0.05, power=0.8, variants=2)
    assert TTestIndPower().power(mde_m.effect_size, 5_000, 0.025, ratio=1.0) == pytest.approx(0.8, abs=1e-12)
    d = TTestIndPower().solve_power(effect_size=None, nobs1=5_000, alpha=0.025, power=0.8, ratio=1.0)
    assert mde_m.effect_size == pytest.approx(d, rel=1e-4)
    assert mde_m.mde_abs == pytest.approx(mde_m.effect_size * 150.0, rel=1e-12)
    assert mde_m.alpha_used == pytest.approx(0.025)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("baseline, mde_abs, control_share, variants", [
    (0.10, 0.02, 0.5, 1), (0.04, 0.005, 0.1, 3), (0.5, 0.03, 0.3, 2), (0.10, -0.015, 0.5, 1),
])
def test_proportions_round_trip(baseline: float, mde_abs: float, control_share: float, variants: int) -> None:
    plan = power.sample_size_proportions(baseline, mde_abs=mde_abs, control_share=control_share, variants=variants)
    direction = "increase" if mde_abs > 0 else "decrease"
    exact = power.minimum_detectable_effect(baseline, plan.n_control_exact, plan.n_variant_exact,
                                            variants=variants, direction=direction)
    assert exact.mde_abs == pytest.approx(mde_abs, rel=1e-6)
    rounded = power.minimum_detectable_effect(baseline, plan.n_control, plan.n_variant, variants=variants,
                                              direction=direction)
    assert abs(rounded.mde_abs) <= abs(mde_abs)  # rounding up only helps
    back = power.sample_size_proportions(baseline, mde_abs=exact.mde_abs, control_share=control_share,
                                         variants=variants)
    assert back.n_control_exact == pytest.approx(plan.n_control_exact, rel=1e-6)


def test_means_round_trip() -> None:
    plan = power.sample_size_means(30.0, 90.0, mde_rel=0.08, control_share=0.2, variants=2, power=0.85)
    mde = power.minimum_detectable_effect_means(30.0, 90.0, plan.n_control_exact, plan.n_variant_exact,
                                                power=0.85, variants=2)
    assert mde.mde_abs == pytest.approx(30.0 * 0.08, rel=1e-6)
    assert mde.mde_rel == pytest.approx(0.08, rel=1e-6)


# --------------------------------------------------------------------------- simulation


@pytest.mark.parametrize("control_share", [0.5, 0.2])
def test_planned_n_gives_planned_power_proportions(control_share: float) -> None:
    """Pooled two-proportion z-test (the report's test) at the planned n: power 0.8 within 3 MC SE."""
    baseline, lift, sims = 0.10, 0.02, 10_000
    plan = power.sample_size_proportions(baseline, mde_abs=lift, power=0.8, control_share=control_share)
    rng = np.random.default_rng(42)
    n_c, n_v = plan.n_control, plan.n_variant
    x_c = rng.binomial(n_c, baseline, sims)
    x_v = rng.binomial(n_v, baseline + lift, sims)
    pooled = (x_c + x_v) / (n_c + n_v)
    z = (x_v / n_v - x_c / n_c) / np.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_v))
    achieved = (np.abs(z) >= stats.norm.isf(0.025)).mean()
    assert achieved == pytest.approx(0.8, abs=3 * _mc_se(0.8, sims))


def test_planned_n_gives_planned_power_means() -> None:
    """Normal data, Welch t-test at the planned n (exact sampling of mean and variance): power 0.8."""
    mean, sd, lift, sims = 30.0, 90.0, 6.0, 10_000
    plan = power.sample_size_means(mean, sd, mde_abs=lift, power=0.8, control_share=0.3)
    rng = np.random.default_rng(43)

    def draw(n: int, mu: float) -> tuple[np.ndarray, np.ndarray]:
        return rng.normal(mu, sd / math.sqrt(n), sims), sd * sd * rng.chisquare(n - 1, sims) / (n - 1)

    (m_c, v_c), (m_v, v_v) = draw(plan.n_control, mean), draw(plan.n_variant, mean + lift)
    a, b = v_v / plan.n_variant, v_c / plan.n_control
    df = (a + b) ** 2 / (a * a / (plan.n_variant - 1) + b * b / (plan.n_control - 1))
    p = 2 * stats.t.sf(np.abs(m_v - m_c) / np.sqrt(a + b), df)
    assert (p < 0.05).mean() == pytest.approx(0.8, abs=3 * _mc_se(0.8, sims))


# --------------------------------------------------------------------------- allocation and corrections


def test_unequal_allocation() -> None:
    equal = power.sample_size_proportions(0.08, mde_abs=0.01, control_share=0.5)
    holdout = power.sample_size_proportions(0.08, mde_abs=0.01, control_share=0.1)
    assert holdout.n_variant_exact == pytest.approx(9 * holdout.n_control_exact)
    assert holdout.n_control < equal.n_control  # a small holdout needs fewer controls…
    assert holdout.n_total > equal.n_total  # …but more customers overall
    assert holdout.n_control / holdout.n_total == pytest.approx(0.1, abs=1e-3)
    three = power.sample_size_proportions(0.08, mde_abs=0.01, control_share=0.1, variants=3)
    assert three.n_variant_exact == pytest.approx(3 * three.n_control_exact)
    assert three.alpha_used == pytest.approx(0.05 / 3)
    none = power.sample_size_proportions(0.08, mde_abs=0.01, control_share=0.1, variants=3, correction="none")
    assert none.alpha_used == 0.05 and none.n_control < three.n_control


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("kwargs, message", [
    ({"baseline": 0.0, "mde_abs": 0.01}, "baseline must be strictly between 0 and 1"),
    ({"baseline": 1.2, "mde_abs": 0.01}, "baseline must be strictly between 0 and 1"),
    ({"baseline": 0.1}, "give exactly one of mde_abs .* got neither"),
    ({"baseline": 0.1, "mde_abs": 0.01, "mde_rel": 0.1}, "give exactly one of mde_abs .* got both"),
    ({"baseline": 0.1, "mde_abs": 0.0}, "non-zero"),
    ({"baseline": 0.95, "mde_abs": 0.1}, "is not a proportion"),
    ({"baseline": 0.1, "mde_abs": 0.01, "alpha": 1.5}, "alpha must be strictly between 0 and 1"),
    ({"baseline": 0.1, "mde_abs": 0.01, "power": 1.0}, "power must be strictly between 0 and 1"),
    ({"baseline": 0.1, "mde_abs": 0.01, "control_share": 1.0}, "control_share must be strictly between"),
    ({"baseline": 0.1, "mde_abs": 0.01, "variants": 0}, "variants must be a positive integer"),
    ({"baseline": 0.1, "mde_abs": 0.01, "correction": "holm"}, "unknown correction 'holm'"),
])
def test_sample_size_proportions_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        power.sample_size_proportions(**kwargs)


def test_other_validation() -> None:
    with pytest.raises(ValueError, match="sd must be a positive"):
        power.sample_size_means(30.0, 0.0, mde_abs=1.0)
    with pytest.raises(ValueError, match="mde_rel needs a non-zero mean"):
        power.sample_size_means(0.0, 10.0, mde_rel=0.1)
    with pytest.raises(ValueError, match="give exactly one"):
        power.sample_size_means(30.0, 10.0)
    with pytest.raises(ValueError, match="n_control must be at least 2"):
        power.minimum_detectable_effect(0.1, 1, 100)
    with pytest.raises(ValueError, match="baseline must be strictly between 0 and 1"):
        power.minimum_detectable_effect(1.0, 100, 100)
    with pytest.raises(ValueError, match="direction"):
        power.minimum_detectable_effect(0.1, 100, 100, direction="up")
    with pytest.raises(ValueError, match="no increase from a baseline of 0.99"):
        power.minimum_detectable_effect(0.99, 10, 10, power=0.99)


# --------------------------------------------------------------------------- duration and cost


def test_duration_days() -> None:
    assert power.duration_days(10_000, 1_000) == 10
    assert power.duration_days(10_001, 1_000) == 11
    assert power.duration_days(1, 5_000) == 1
    with pytest.raises(ValueError, match="eligible_per_day must be positive"):
        power.duration_days(100, 0)
    with pytest.raises(ValueError, match="required_total"):
        power.duration_days(0, 100)


def test_experiment_cost() -> None:
    cost = power.experiment_cost(n_contacted=30_000, unit_cost=0.05, coupon_value=10.0, expected_redemption_rate=0.04)
    assert cost.messages == pytest.approx(1_500.0)
    assert cost.coupons == pytest.approx(12_000.0)
    assert cost.total == pytest.approx(13_500.0)
    assert cost.n_contacted == 30_000
    with pytest.raises(ValueError, match="expected_redemption_rate"):
        power.experiment_cost(100, 0.05, 10.0, 1.5)
    with pytest.raises(ValueError, match="non-negative"):
        power.experiment_cost(100, -0.05, 10.0, 0.1)


def test_enrolment_days_count_todays_audience_then_the_daily_arrivals() -> None:
    from analysis.power import enrolment_days

    assert enrolment_days(10_000, 1_000) == 10
    assert enrolment_days(10_000, 1_000, eligible_now=2_500) == 8  # 7,500 more at 1,000 a day
    assert enrolment_days(10_000, 1_000, eligible_now=10_000) == 0
    with pytest.raises(ValueError):
        enrolment_days(10_000, 0, eligible_now=100)


def test_recall_power_adds_todays_audience_and_the_attribution_window() -> None:
    from typer.testing import CliRunner

    from cli import app

    base = ["power", "--baseline", "0.08", "--mde-abs", "0.01", "--eligible-per-day", "1000"]
    plain = CliRunner().invoke(app, base)
    more = CliRunner().invoke(app, [*base, "--eligible-now", "5000", "--attribution-days", "14"])
    days = [int(re.search(r"duration\D+(\d+) days", r.output).group(1)) for r in (plain, more)]
    assert days[1] == days[0] - 5 + 14

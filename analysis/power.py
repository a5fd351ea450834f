"""Power and planning of a recall experiment: sample size, minimum detectable effect, duration and cost.

- Proportions (return rate…): normal approximation on Cohen's h = 2·asin√p₁ − 2·asin√p₀, the arcsine
  variance-stabilizing transform (Cohen 1988, §6), solved by statsmodels' ``NormalIndPower``.
- Means (revenue per customer…): two-sample t-test power on Cohen's d = Δ/σ (Cohen 1988, §2), solved by
  statsmodels' ``TTestIndPower`` (noncentral t).
- Several contacted variants against one control: each comparison is planned at α/variants
  (Bonferroni), which keeps the family-wise error ≤ α whatever correction the report later applies
  (Holm and BH are never stricter).
- Unequal allocation (a small no-contact holdout): ``ratio`` = variant share / control share.

All tests are two-sided. See docs/statistics/power.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # statsmodels (and scipy.stats under it) load when a plan is computed, not on import:
    # the report imports this module for its verdict and starts without them (tests/test_distributions.py)
    from statsmodels.stats.power import NormalIndPower, TTestIndPower

CORRECTIONS = ("bonferroni", "none")
PROPORTIONS_METHOD = "two-sided normal approximation on Cohen's h (as statsmodels NormalIndPower)"
MEANS_METHOD = "two-sided two-sample t-test on Cohen's d (statsmodels TTestIndPower)"


@dataclass(frozen=True)
class SampleSizePlan:
    """Customers needed per arm; ``n_variant`` is per contacted variant.

    ``baseline`` is the control's rate (or mean), ``target`` = baseline + mde_abs, ``effect_size`` Cohen's
    h (or d). ``n_total`` = n_control + variants × n_variant. ``alpha_used`` is the two-sided level of each
    variant-vs-control comparison after the split across variants. The ``*_exact`` values are the
    unrounded solutions (the integers are their ceilings).
    """

    n_control: int
    n_variant: int
    variants: int
    n_total: int
    alpha_used: float
    power: float
    effect_size: float
    baseline: float
    target: float
    mde_abs: float
    n_control_exact: float
    n_variant_exact: float
    method: str


@dataclass(frozen=True)
class MinimumDetectableEffect:
    """Smallest true difference (target − baseline) detected with the given power; ``mde_rel`` = mde_abs / baseline."""

    mde_abs: float
    mde_rel: float
    baseline: float
    target: float
    effect_size: float
    alpha_used: float
    power: float
    method: str


@dataclass(frozen=True)
class CostEstimate:
    """Expected cost of a test in ¥: messages to every contacted customer plus redeemed coupons."""

    n_contacted: int
    messages: float
    coupons: float
    total: float


# --------------------------------------------------------------------------- validation


def _check_probability(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise ValueError(f"{name} must be strictly between 0 and 1; got {value}")


def _alpha_used(alpha: float, power: float, variants: int, correction: str) -> float:
    _check_probability("alpha", alpha)
    _check_probability("power", power)
    if isinstance(variants, bool) or not isinstance(variants, int) or variants < 1:
        raise ValueError(f"variants must be a positive integer (contacted arms besides the control); got {variants!r}")
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; choose one of {', '.join(CORRECTIONS)}")
    return alpha / variants if correction == "bonferroni" else alpha


def _ratio(control_share: float, variants: int) -> float:
    """n_variant / n_control when the control gets ``control_share`` and the variants split the rest equally."""
    _check_probability("control_share", control_share)
    return (1.0 - control_share) / variants / control_share


def _difference(reference: float, mde_abs: float | None, mde_rel: float | None, reference_name: str) -> float:
    if (mde_abs is None) == (mde_rel is None):
        raise ValueError("give exactly one of mde_abs (absolute difference) and mde_rel (relative to the "
                         f"{reference_name}); got " + ("both" if mde_abs is not None else "neither"))
    if mde_rel is not None:
        if reference == 0:
            raise ValueError(f"mde_rel needs a non-zero {reference_name}; give mde_abs instead")
        mde_abs = reference * mde_rel
    if not (mde_abs != 0 and math.isfinite(mde_abs)):
        raise ValueError(f"the minimum detectable effect must be a non-zero finite difference; got {mde_abs}")
    return float(mde_abs)


def _check_n(name: str, n: float) -> None:
    if not (math.isfinite(n) and n >= 2):
        raise ValueError(f"{name} must be at least 2; got {n}")


def _plan(n1: float, ratio: float, variants: int, alpha_used: float, power: float, effect: float,
          baseline: float, target: float, method: str) -> SampleSizePlan:
    n_control, n_variant = math.ceil(n1), math.ceil(n1 * ratio)
    return SampleSizePlan(
        n_control=n_control,
        n_variant=n_variant,
        variants=variants,
        n_total=n_control + variants * n_variant,
        alpha_used=alpha_used,
        power=power,
        effect_size=effect,
        baseline=baseline,
        target=target,
        mde_abs=target - baseline,
        n_control_exact=n1,
        n_variant_exact=n1 * ratio,
        method=method,
    )


# --------------------------------------------------------------------------- sample size


def sample_size_proportions(baseline: float, mde_abs: float | None = None, mde_rel: float | None = None,
                            alpha: float = 0.05, power: float = 0.8, control_share: float = 0.5,
                            variants: int = 1, correction: str = "bonferroni") -> SampleSizePlan:
    """Per-arm sample size to detect a change of a proportion from ``baseline`` (the control's rate).

    Method: |h| = |2·asin√(baseline + mde) − 2·asin√baseline| (statsmodels ``proportion_effectsize``);
    n_control from ``NormalIndPower().solve_power(|h|, alpha=alpha_used, power=power, ratio=r)``,
    n_variant = r·n_control with r = ((1 − control_share)/variants)/control_share; Cohen (1988).
    Give exactly one of ``mde_abs`` (0.01 = one percentage point) or ``mde_rel`` (0.1 = +10 %).
    """
    _check_probability("baseline", baseline)
    alpha_used = _alpha_used(alpha, power, variants, correction)
    ratio = _ratio(control_share, variants)
    diff = _difference(baseline, mde_abs, mde_rel, "baseline")
    target = baseline + diff
    if not 0 < target < 1:
        raise ValueError(f"baseline + mde = {target:g} is not a proportion strictly between 0 and 1")
    h = abs(2 * math.asin(math.sqrt(target)) - 2 * math.asin(math.sqrt(baseline)))
    n1 = _normal_nobs1(h, alpha_used, power, ratio)
    return _plan(n1, ratio, variants, alpha_used, power, h, baseline, target, PROPORTIONS_METHOD)


def _normal_nobs1(effect: float, alpha: float, power: float, ratio: float) -> float:
    """``NormalIndPower().solve_power(effect, nobs1=None, …, alternative="two-sided")`` without statsmodels.

    Its power function is Φ(e·√m − z) + Φ(−e·√m − z) with m = nobs1·r/(1 + r) and z = Φ⁻¹(1 − α/2);
    Newton's method on √m from the one-sided solution converges in a few steps to ~1e-15. Importing
    statsmodels (and scipy.stats under it) costs a second of CPU, most of the report's start-up, for
    this one number of its verdict (tests/test_power.py compares with statsmodels itself).
    """
    normal = NormalDist()
    z = normal.inv_cdf(1 - alpha / 2)
    root = (z + normal.inv_cdf(power)) / effect  # √m solving the larger tail alone
    for _ in range(50):
        gap = normal.cdf(effect * root - z) + normal.cdf(-effect * root - z) - power
        slope = effect * (normal.pdf(effect * root - z) - normal.pdf(-effect * root - z))
        step = gap / slope
        root -= step
        if abs(step) <= 1e-15 * root:
            break
    return root * root * (1 + ratio) / ratio


def sample_size_means(mean: float, sd: float, mde_abs: float | None = None, mde_rel: float | None = None,
                      alpha: float = 0.05, power: float = 0.8, control_share: float = 0.5,
                      variants: int = 1, correction: str = "bonferroni") -> SampleSizePlan:
    """Per-arm sample size to detect a change of a mean (e.g. revenue per customer, zeros included).

    Method: d = |mde|/sd; n_control from ``TTestIndPower().solve_power(d, alpha=alpha_used, power=power,
    ratio=r)`` (noncentral t, Cohen 1988), allocation and correction as in :func:`sample_size_proportions`.
    ``sd`` is the per-customer standard deviation (from history; revenue is skewed and mostly zeros,
    so use the sd of the same metric over all customers, not over buyers only).
    """
    _check_sd(mean, sd)
    alpha_used = _alpha_used(alpha, power, variants, correction)
    ratio = _ratio(control_share, variants)
    diff = _difference(mean, mde_abs, mde_rel, "mean")
    from statsmodels.stats.power import TTestIndPower

    d = abs(diff) / sd
    n1 = float(TTestIndPower().solve_power(effect_size=d, nobs1=None, alpha=alpha_used, power=power,
                                           ratio=ratio, alternative="two-sided"))
    return _plan(n1, ratio, variants, alpha_used, power, d, mean, mean + diff, MEANS_METHOD)


def _check_sd(mean: float, sd: float) -> None:
    if not math.isfinite(mean):
        raise ValueError(f"mean must be finite; got {mean}")
    if not (sd > 0 and math.isfinite(sd)):
        raise ValueError(f"sd must be a positive finite standard deviation; got {sd}")


# --------------------------------------------------------------------------- minimum detectable effect


def _solve_effect_size(engine: NormalIndPower | TTestIndPower, nobs1: float, ratio: float, alpha: float,
                       power: float) -> float:
    """Effect size whose two-sided power is ``power``: brentq on statsmodels' own ``power`` function.

    statsmodels' ``solve_power(effect_size=None)`` stops at a relative error of ~1e-5; this is exact to
    ~1e-12, so MDE → sample size → MDE round-trips.
    """
    def gap(effect: float) -> float:
        return float(engine.power(effect, nobs1, alpha, ratio=ratio, alternative="two-sided")) - power

    # bracket from the normal approximation, growing slowly (the noncentral t is nan far in the tail)
    upper = (NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)) * math.sqrt(1 / nobs1
                                                                                             + 1 / (nobs1 * ratio))
    while (value := gap(upper)) < 0:
        upper *= 1.2
    if not math.isfinite(value):
        raise ValueError(f"could not solve for the effect size at nobs1={nobs1}, ratio={ratio}")
    from scipy import optimize

    return float(optimize.brentq(gap, 1e-12, upper, xtol=1e-15, rtol=1e-14))


def minimum_detectable_effect(baseline: float, n_control: float, n_variant: float, alpha: float = 0.05,
                              power: float = 0.8, *, variants: int = 1, correction: str = "bonferroni",
                              direction: str = "increase") -> MinimumDetectableEffect:
    """Smallest change of a proportion from ``baseline`` detected with ``power`` at these arm sizes.

    Method: solve ``NormalIndPower().power`` = power for Cohen's h at nobs1 = n_control,
    ratio = n_variant/n_control (brentq, tighter than ``solve_power``),
    then invert h: target = sin²(asin√baseline ± h/2) (+ for ``direction="increase"``, − for
    ``"decrease"``). ``n_variant`` is per variant; α is split as in :func:`sample_size_proportions`.
    """
    _check_probability("baseline", baseline)
    _check_n("n_control", n_control)
    _check_n("n_variant", n_variant)
    if direction not in ("increase", "decrease"):
        raise ValueError(f"direction must be 'increase' or 'decrease'; got {direction!r}")
    alpha_used = _alpha_used(alpha, power, variants, correction)
    from statsmodels.stats.power import NormalIndPower

    h = _solve_effect_size(NormalIndPower(), n_control, n_variant / n_control, alpha_used, power)
    angle = math.asin(math.sqrt(baseline)) + (h / 2 if direction == "increase" else -h / 2)
    if not 0 < angle < math.pi / 2:
        raise ValueError(f"no {direction} from a baseline of {baseline:g} is detectable with power {power:g} "
                         f"at these sample sizes (Cohen's h {h:.3g} needed)")
    target = math.sin(angle) ** 2
    return MinimumDetectableEffect(target - baseline, (target - baseline) / baseline, baseline, target, h,
                                   alpha_used, power, PROPORTIONS_METHOD)


def minimum_detectable_effect_means(mean: float, sd: float, n_control: float, n_variant: float,
                                    alpha: float = 0.05, power: float = 0.8, *, variants: int = 1,
                                    correction: str = "bonferroni") -> MinimumDetectableEffect:
    """Smallest increase of a mean detected with ``power``: d from ``TTestIndPower().power``, mde_abs = d·sd.

    ``mde_rel`` is mde_abs / mean (nan when the mean is 0); a decrease of the same size is equally detectable.
    """
    _check_sd(mean, sd)
    _check_n("n_control", n_control)
    _check_n("n_variant", n_variant)
    alpha_used = _alpha_used(alpha, power, variants, correction)
    from statsmodels.stats.power import TTestIndPower

    d = _solve_effect_size(TTestIndPower(), n_control, n_variant / n_control, alpha_used, power)
    mde = d * sd
    return MinimumDetectableEffect(mde, mde / mean if mean else math.nan, mean, mean + mde, d, alpha_used,
                                   power, MEANS_METHOD)


# --------------------------------------------------------------------------- duration and cost


def duration_days(required_total: float, eligible_per_day: float) -> int:
    """Whole days needed to enrol ``required_total`` customers at ``eligible_per_day`` newly eligible a day."""
    if not (required_total > 0 and math.isfinite(required_total)):
        raise ValueError(f"required_total must be a positive number of customers; got {required_total}")
    if not (eligible_per_day > 0 and math.isfinite(eligible_per_day)):
        raise ValueError(f"eligible_per_day must be positive; got {eligible_per_day}")
    return math.ceil(required_total / eligible_per_day)


def enrolment_days(required_total: float, eligible_per_day: float, eligible_now: float = 0) -> int:
    """Days until ``required_total`` customers are in: those eligible today join at launch, the rest
    arrive at ``eligible_per_day``. ``recall power --eligible-now`` and the Design page both say this."""
    if eligible_now >= required_total:
        return 0
    return duration_days(required_total - max(eligible_now, 0), eligible_per_day)


def experiment_cost(n_contacted: int, unit_cost: float, coupon_value: float,
                    expected_redemption_rate: float) -> CostEstimate:
    """Expected cost in ¥: n_contacted × unit_cost + n_contacted × redemption rate × coupon face value.

    Only contacted arms cost money (the no-contact control is free), so n_contacted = variants ×
    n_variant of a :class:`SampleSizePlan`. Same cost model as analysis/roi.py, without fixed costs.
    """
    if n_contacted < 0:
        raise ValueError(f"n_contacted must be non-negative; got {n_contacted}")
    if unit_cost < 0 or coupon_value < 0:
        raise ValueError(f"unit_cost and coupon_value must be non-negative; got {unit_cost}, {coupon_value}")
    if not 0 <= expected_redemption_rate <= 1:
        raise ValueError(f"expected_redemption_rate must be between 0 and 1; got {expected_redemption_rate}")
    messages = n_contacted * unit_cost
    coupons = n_contacted * expected_redemption_rate * coupon_value
    return CostEstimate(n_contacted, messages, coupons, messages + coupons)

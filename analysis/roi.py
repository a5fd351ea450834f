"""Return on investment of a recall variant: what it brought back beyond the natural return, per ¥.

incremental returns = (return rate − natural return rate) × n, incremental revenue likewise on
revenue per customer; cost = the touches sent × their channel's unit cost (every step of a sequence)
+ redemptions × coupon face value + the variant's share of fixed costs; ROI = (margin × incremental
revenue − cost) / cost, with margin = 1 (revenue, the default) or the gross-margin share of revenue.

Intervals. With the cost known (no per-customer redemptions given), the ROI interval is the Welch
interval of incremental revenue scaled by margin / cost, exactly. When the variant's per-customer
redemptions are given, the coupon cost is an estimate too (what the variant's customers redeem), and
the ROI interval is the delta method on

    ROI = M·n·(m̄_v − m̄_c) / (K + v·n·r̄) − 1       (K: contact + fixed cost, v: coupon value)

with the variances of both revenue means, the variance of the mean redemptions r̄ and the variant
arm's Cov(revenue, redemptions) (Σ revenue×redemptions). Redeemers are buyers, so the covariance is
large and positive and lowers the variance when the uplift is positive; without Σ revenue×redemptions
the interval takes the covariance's worst case (|ρ| = 1 in the unfavourable direction), which is
conservative. Cost per incremental return: the incremental-returns interval inverted (known cost) or
Fieller's interval of cost / returns (random cost). See docs/statistics/roi.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from analysis.distributions import norm_isf
from analysis.frequentist import compare
from analysis.sufficient import SampleStats
from experiments.models import MetricKind

ROI_KNOWN_COST_METHOD = "known cost: Welch interval of incremental revenue × margin / cost"
ROI_DELTA_METHOD = ("delta method: revenue means and coupon redemptions random, "
                    "with Cov(revenue, redemptions) in the variant arm")
ROI_DELTA_BOUND_METHOD = ("delta method: revenue means and coupon redemptions random, worst-case "
                          "Cov(revenue, redemptions) (Σ revenue×redemptions not given): conservative")


@dataclass(frozen=True)
class RoiResult:
    variant: str
    contacted: int
    incremental_returns: float
    incremental_revenue: float
    contact_cost: float
    coupon_cost: float
    cost: float
    roi: float | None
    cost_per_incremental_return: float | None
    incremental_returns_ci: tuple[float, float] = (math.nan, math.nan)
    incremental_revenue_ci: tuple[float, float] = (math.nan, math.nan)
    roi_ci: tuple[float, float] | None = None
    natural_share_of_redemptions: float | None = None
    cannibalized_coupon_cost: float = 0.0
    # appended later; stored reports without them decode to these defaults
    margin: float = 1.0
    roi_method: str = ROI_KNOWN_COST_METHOD
    cost_per_incremental_return_ci: tuple[float, float] | None = None
    acquisition_cost: float | None = None
    cheaper_than_acquisition: bool | None = None


def _covariance(sum_x: float, sum_y: float, sum_xy: float, n: int) -> float:
    """Sample covariance (ddof = 1) from Σx, Σy, Σxy; nan when n < 2."""
    return (sum_xy - sum_x * sum_y / n) / (n - 1) if n >= 2 else math.nan


def _roi_delta_se(*, margin: float, n_variant: int, cost: float, coupon_value: float, control_revenue: SampleStats,
                  variant_revenue: SampleStats, variant_redemptions: SampleStats,
                  revenue_redemptions_sum: float | None) -> float:
    """Delta-method standard error of ROI = M·n·(m̄_v − m̄_c)/(K + v·n_r·r̄) − 1 (module doc)."""
    n_r = variant_redemptions.n
    a = margin * n_variant / cost  # ∂ROI/∂m̄_v = −∂ROI/∂m̄_c
    b = -margin * n_variant * (variant_revenue.mean - control_revenue.mean) * coupon_value * n_r / cost ** 2  # ∂/∂r̄
    var_v = variant_revenue.variance / variant_revenue.n
    var_c = control_revenue.variance / control_revenue.n
    var_r = variant_redemptions.variance / n_r
    if revenue_redemptions_sum is None:  # Cauchy-Schwarz: the sign of the covariance that widens
        variance = a * a * var_c + (abs(a) * math.sqrt(var_v) + abs(b) * math.sqrt(var_r)) ** 2
    else:
        cov = _covariance(variant_revenue.sum, variant_redemptions.sum, revenue_redemptions_sum, n_r) / n_r
        variance = a * a * (var_v + var_c) + b * b * var_r + 2 * a * b * cov
    return math.sqrt(variance) if variance >= 0 else math.nan


def _cpir_ci(*, cost: float, returns_ci: tuple[float, float], cost_known: bool, z: float, n_variant: int,
             control_return: SampleStats, variant_return: SampleStats, coupon_value: float,
             variant_redemptions: SampleStats | None) -> tuple[float, float] | None:
    """Interval of cost / incremental returns; None (unbounded) unless the incremental-returns interval
    lies above 0.

    Known cost: (cost / upper, cost / lower) of the incremental-returns interval, which keeps its
    coverage exactly. Random coupon cost: Fieller's interval for θ = C/D (C cost per customer, D the
    return-rate difference), {θ ≥ 0 : (Ĉ − θD̂)² ≤ z²·Var(Ĉ − θD̂)}, with Cov(redemptions, returned)
    at its worst case (their cross-product is not an input), Var(Ĉ − θD̂) ≤ (s_C + θ s_v)² + θ² s_c²,
    so conservative; it handles the skew of 1/D̂ that a delta method on the ratio would not."""
    lo, hi = returns_ci
    if not (math.isfinite(lo) and lo > 0):
        return None
    if cost_known:
        return (cost / hi, cost / lo)
    assert variant_redemptions is not None
    n_r = variant_redemptions.n
    c_hat, d_hat = cost / n_variant, variant_return.mean - control_return.mean
    s_cost = coupon_value * n_r * math.sqrt(variant_redemptions.variance / n_r) / n_variant
    s_v = math.sqrt(variant_return.variance / variant_return.n)
    s_c = math.sqrt(control_return.variance / control_return.n)
    z2 = z * z
    a = d_hat * d_hat - z2 * (s_v * s_v + s_c * s_c)  # > 0: D̂ significantly above 0 (Wald)
    half_b = c_hat * d_hat + z2 * s_cost * s_v  # the worst case adds 2θ·s_C·s_v to the variance
    c = c_hat * c_hat - z2 * s_cost * s_cost
    if not a > 0:
        return None
    root = math.sqrt(max(half_b * half_b - a * c, 0.0))  # ≥ 0: the point estimate Ĉ/D̂ is in the set
    return (max((half_b - root) / a, 0.0), (half_b + root) / a)


def roi(
    *,
    variant: str,
    n_variant: int,
    control_return: SampleStats,
    variant_return: SampleStats,
    control_revenue: SampleStats,
    variant_revenue: SampleStats,
    contacted: int,
    contact_cost: float,
    redemptions: int,
    coupon_value: float,
    fixed_cost: float,
    alpha: float = 0.05,
    variant_redemptions: SampleStats | None = None,
    revenue_redemptions_sum: float | None = None,
    margin: float = 1.0,
    acquisition_cost: float | None = None,
) -> RoiResult:
    """Incremental outcomes over the control and ROI; None where a ratio is undefined.

    Intervals scale the 1 − α intervals of the rate and revenue differences by n while the cost is
    known (touches and redemptions counted); with ``variant_redemptions`` (per-customer redemptions in
    the variant arm, whose Σ then replaces ``redemptions``) the coupon cost is estimated and the ROI
    interval is the delta method of the module doc, with ``revenue_redemptions_sum`` (Σ revenue ×
    redemptions over the variant's customers) for their covariance. ``margin`` (0 < M ≤ 1) turns
    revenue into gross margin: ROI = (M × incremental revenue − cost) / cost.

    Cost per incremental return gets an interval (:func:`_cpir_ci`) only when the incremental-returns
    interval lies above 0 (otherwise the ratio is unbounded): None then. Against ``acquisition_cost`` (¥ per new
    customer), ``cheaper_than_acquisition`` is True when that whole interval is below it, False when
    it is above it or the incremental returns are confidently ≤ 0 (with a known cost: when even the
    interval's largest number of incremental returns costs more each), None when undecided.

    Coupon cannibalization: of the customers who came back in the variant, the share natural return
    rate / variant return rate would have come back anyway, and their redeemed coupons bought nothing.
    """
    if not 0 < margin <= 1:
        raise ValueError(f"margin is the gross-margin share of revenue, in (0, 1]; got {margin}")
    if acquisition_cost is not None and not acquisition_cost > 0:
        raise ValueError(f"acquisition_cost must be positive; got {acquisition_cost}")
    if revenue_redemptions_sum is not None and variant_redemptions is None:
        raise ValueError("revenue_redemptions_sum needs variant_redemptions")
    if variant_redemptions is not None and variant_redemptions.n != variant_revenue.n:
        raise ValueError("variant_redemptions and variant_revenue must be over the same customers")
    incremental_returns = (variant_return.mean - control_return.mean) * n_variant
    incremental_revenue = (variant_revenue.mean - control_revenue.mean) * n_variant
    redeemed = float(variant_redemptions.sum) if variant_redemptions is not None else redemptions
    coupon_cost = redeemed * coupon_value
    cost = contact_cost + coupon_cost + fixed_cost
    cost_known = variant_redemptions is None or coupon_value == 0
    z = float(norm_isf(alpha / 2))
    returns_ci = compare(control_return, variant_return, MetricKind.BINARY, alpha=alpha).abs_ci
    returns_ci = (returns_ci[0] * n_variant, returns_ci[1] * n_variant)
    revenue_ci = compare(control_revenue, variant_revenue, MetricKind.CONTINUOUS, alpha=alpha).abs_ci
    revenue_lo, revenue_hi = revenue_ci[0] * n_variant, revenue_ci[1] * n_variant
    natural_share = (min(control_return.mean / variant_return.mean, 1.0)
                     if variant_return.mean > 0 and math.isfinite(control_return.mean) else None)
    roi_value = (margin * incremental_revenue - cost) / cost if cost > 0 else None
    roi_ci: tuple[float, float] | None = None
    method = ROI_KNOWN_COST_METHOD
    if roi_value is not None and cost_known:
        roi_ci = ((margin * revenue_lo - cost) / cost, (margin * revenue_hi - cost) / cost)
    elif roi_value is not None:
        assert variant_redemptions is not None
        se = _roi_delta_se(margin=margin, n_variant=n_variant, cost=cost, coupon_value=coupon_value,
                           control_revenue=control_revenue, variant_revenue=variant_revenue,
                           variant_redemptions=variant_redemptions, revenue_redemptions_sum=revenue_redemptions_sum)
        roi_ci = (roi_value - z * se, roi_value + z * se)
        method = ROI_DELTA_METHOD if revenue_redemptions_sum is not None else ROI_DELTA_BOUND_METHOD
    cpir_ci = _cpir_ci(cost=cost, returns_ci=returns_ci, cost_known=cost_known, z=z, n_variant=n_variant,
                       control_return=control_return, variant_return=variant_return, coupon_value=coupon_value,
                       variant_redemptions=variant_redemptions)
    cheaper: bool | None = None
    if acquisition_cost is not None:
        if cpir_ci is not None and cpir_ci[1] < acquisition_cost:
            cheaper = True
        elif cpir_ci is not None and cpir_ci[0] > acquisition_cost:
            cheaper = False
        elif cpir_ci is not None:
            cheaper = None  # the interval straddles the acquisition cost
        elif cost > 0 and returns_ci[1] <= 0:
            cheaper = False  # confidently no incremental returns at all
        elif cost > 0 and cost_known and returns_ci[1] < cost / acquisition_cost:
            cheaper = False  # even the interval's most incremental returns cost more each
    return RoiResult(
        variant=variant,
        contacted=contacted,
        incremental_returns=incremental_returns,
        incremental_revenue=incremental_revenue,
        contact_cost=contact_cost,
        coupon_cost=coupon_cost,
        cost=cost,
        roi=roi_value,
        cost_per_incremental_return=cost / incremental_returns if incremental_returns > 0 else None,
        incremental_returns_ci=returns_ci,
        incremental_revenue_ci=(revenue_lo, revenue_hi),
        roi_ci=roi_ci,
        natural_share_of_redemptions=natural_share,
        cannibalized_coupon_cost=coupon_cost * natural_share if natural_share is not None else 0.0,
        margin=margin,
        roi_method=method,
        cost_per_incremental_return_ci=cpir_ci,
        acquisition_cost=acquisition_cost,
        cheaper_than_acquisition=cheaper,
    )

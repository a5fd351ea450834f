"""Return on investment of a recall variant: what it brought back beyond the natural return, per ¥.

incremental returns = (return rate − natural return rate) × n, incremental revenue likewise on
revenue per customer; cost = the touches sent × their channel's unit cost (every step of a sequence)
+ redemptions × coupon face value + the variant's share of fixed costs; ROI = (incremental revenue −
cost) / cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from analysis.frequentist import compare
from analysis.sufficient import SampleStats
from experiments.models import MetricKind


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
) -> RoiResult:
    """Incremental outcomes over the control and ROI; None where a ratio is undefined.

    Intervals scale the 1 − α intervals of the rate and revenue differences by n (the cost is known:
    touches and redemptions are counted, not estimated). Coupon cannibalization: of the customers who
    came back in the variant, the share natural return rate / variant return rate would have come
    back anyway, and their redeemed coupons bought nothing.
    """
    incremental_returns = (variant_return.mean - control_return.mean) * n_variant
    incremental_revenue = (variant_revenue.mean - control_revenue.mean) * n_variant
    coupon_cost = redemptions * coupon_value
    cost = contact_cost + coupon_cost + fixed_cost
    returns_ci = compare(control_return, variant_return, MetricKind.BINARY, alpha=alpha).abs_ci
    revenue_ci = compare(control_revenue, variant_revenue, MetricKind.CONTINUOUS, alpha=alpha).abs_ci
    revenue_lo, revenue_hi = revenue_ci[0] * n_variant, revenue_ci[1] * n_variant
    natural_share = (min(control_return.mean / variant_return.mean, 1.0)
                     if variant_return.mean > 0 and math.isfinite(control_return.mean) else None)
    return RoiResult(
        variant=variant,
        contacted=contacted,
        incremental_returns=incremental_returns,
        incremental_revenue=incremental_revenue,
        contact_cost=contact_cost,
        coupon_cost=coupon_cost,
        cost=cost,
        roi=(incremental_revenue - cost) / cost if cost > 0 else None,
        cost_per_incremental_return=cost / incremental_returns if incremental_returns > 0 else None,
        incremental_returns_ci=(returns_ci[0] * n_variant, returns_ci[1] * n_variant),
        incremental_revenue_ci=(revenue_lo, revenue_hi),
        roi_ci=((revenue_lo - cost) / cost, (revenue_hi - cost) / cost) if cost > 0 else None,
        natural_share_of_redemptions=natural_share,
        cannibalized_coupon_cost=coupon_cost * natural_share if natural_share is not None else 0.0,
    )

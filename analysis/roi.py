"""Return on investment of a recall variant: what it brought back beyond the natural return, per ¥.

incremental returns = (return rate − natural return rate) × n, incremental revenue likewise on
revenue per customer; cost = the touches sent × their channel's unit cost (every step of a sequence)
+ redemptions × coupon face value + the variant's share of fixed costs; ROI = (incremental revenue −
cost) / cost.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.sufficient import SampleStats


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
) -> RoiResult:
    """Incremental outcomes over the control and ROI; None where a ratio is undefined."""
    incremental_returns = (variant_return.mean - control_return.mean) * n_variant
    incremental_revenue = (variant_revenue.mean - control_revenue.mean) * n_variant
    coupon_cost = redemptions * coupon_value
    cost = contact_cost + coupon_cost + fixed_cost
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
    )

"""The gain from targeting itself: a targeted experiment's targeted policy against contacting everyone.

A targeted experiment (spec ``target = "MODEL"``) hashes its scored audience into two policy groups of
equal expected size. In the **targeted-policy** group only the targeted audience (top share by predicted
uplift, or the cost-optimal cutoff) is assigned, split into contacted and a holdout; the rest are not
contacted. In the **contact-everyone** group everyone is assigned, split the same way. Per customer of a
group g, the policy's incremental effect against contacting nobody is

    θ_g = q_g · (ȳ_contacted,g − ȳ_holdout,g)

where q_g is the share of the group the policy contacts (1 for contact-everyone; fixed at launch by
the scores, so taken as known) and the difference in means is over the customers it contacts: those
it leaves out are not contacted, so their incremental effect is 0 by construction. The estimand of
the gain is θ_targeted − θ_everyone per customer of the eligible audience, for incremental returns
and for net value (margin × incremental revenue − cost); the groups are independent halves, so the
variances add. Costs are the contact cost of every contacted customer plus the coupons redeemed,
taken as known, as in :mod:`analysis.roi` (so the ROI interval is the revenue interval, scaled).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from analysis.distributions import norm_isf, norm_sf


@dataclass(frozen=True)
class ArmTotals:
    """Sums over one arm (contacted or holdout) of one policy group: what the SQL aggregate returns."""

    n: int
    returned: float  # sum of 0/1
    revenue: float
    revenue_squared: float
    redeemed: float


@dataclass(frozen=True)
class PolicyValue:
    """One policy, per customer of its group: incremental returns, revenue, cost, net value and ROI."""

    policy: str  # "targeted" or "everyone"
    customers: int  # scored customers in the group
    contacted_share: float  # q: the share of the group the policy contacts
    n_contacted: int
    n_holdout: int
    incremental_returns: float  # per customer of the group
    returns_ci: tuple[float, float]
    incremental_revenue: float
    revenue_ci: tuple[float, float]
    cost: float  # ¥ per customer of the group
    net_value: float  # margin × incremental revenue − cost, ¥ per customer
    net_value_ci: tuple[float, float]
    roi: float | None
    roi_ci: tuple[float, float] | None


@dataclass(frozen=True)
class TargetingGain:
    """The targeted policy minus contact-everyone, per customer, with intervals and p-values."""

    model: str
    cutoff: str  # "top 30%" or "cost-optimal"
    targeted: PolicyValue
    everyone: PolicyValue
    returns_difference: float
    returns_difference_ci: tuple[float, float]
    returns_p_value: float
    net_value_difference: float
    net_value_difference_ci: tuple[float, float]
    net_value_p_value: float


def _mean_var(total: float, squares: float, n: int) -> tuple[float, float]:
    """Mean and variance of the mean (sample variance, ddof 1)."""
    mean = total / n
    variance = (squares - n * mean * mean) / (n - 1) if n > 1 else math.nan
    return mean, max(variance, 0.0) / n


def policy_value(policy: str, customers: int, contacted: ArmTotals, holdout: ArmTotals, *, contact_cost: float,
                 coupon: float, margin: float, alpha: float = 0.05) -> tuple[PolicyValue, float, float]:
    """:class:`PolicyValue` of one group, and the variances of its per-customer returns and net value."""
    z = float(norm_isf(alpha / 2))
    q = (contacted.n + holdout.n) / customers if customers else math.nan
    if min(contacted.n, holdout.n) < 2:
        nan = (math.nan, math.nan)
        return (PolicyValue(policy, customers, q, contacted.n, holdout.n, math.nan, nan, math.nan, nan, math.nan,
                            math.nan, nan, None, None), math.nan, math.nan)
    r1, v_r1 = _mean_var(contacted.returned, contacted.returned, contacted.n)  # 0/1: squares are the values
    r0, v_r0 = _mean_var(holdout.returned, holdout.returned, holdout.n)
    m1, v_m1 = _mean_var(contacted.revenue, contacted.revenue_squared, contacted.n)
    m0, v_m0 = _mean_var(holdout.revenue, holdout.revenue_squared, holdout.n)
    returns, var_returns = q * (r1 - r0), q * q * (v_r1 + v_r0)
    revenue, var_revenue = q * (m1 - m0), q * q * (v_m1 + v_m0)
    cost = q * (contact_cost + coupon * contacted.redeemed / contacted.n)
    net, var_net = margin * revenue - cost, margin * margin * var_revenue
    se_r, se_m, se_n = math.sqrt(var_returns), math.sqrt(var_revenue), math.sqrt(var_net)
    roi = roi_ci = None
    if cost > 0:
        roi = net / cost
        roi_ci = ((net - z * se_n) / cost, (net + z * se_n) / cost)
    value = PolicyValue(policy, customers, q, contacted.n, holdout.n, returns, (returns - z * se_r, returns + z * se_r),
                        revenue, (revenue - z * se_m, revenue + z * se_m), cost, net, (net - z * se_n, net + z * se_n),
                        roi, roi_ci)
    return value, var_returns, var_net


def targeting_gain(model: str, cutoff: str, targeted: tuple[PolicyValue, float, float],
                   everyone: tuple[PolicyValue, float, float], *, alpha: float = 0.05) -> TargetingGain:
    """The difference of two :func:`policy_value` results (independent groups: the variances add)."""
    z = float(norm_isf(alpha / 2))
    (t, vr_t, vn_t), (e, vr_e, vn_e) = targeted, everyone

    def difference(a: float, b: float, var: float) -> tuple[float, tuple[float, float], float]:
        d, se = a - b, math.sqrt(var)
        p = float(2 * norm_sf(abs(d) / se)) if se > 0 else math.nan
        return d, (d - z * se, d + z * se), p

    returns = difference(t.incremental_returns, e.incremental_returns, vr_t + vr_e)
    net = difference(t.net_value, e.net_value, vn_t + vn_e)
    return TargetingGain(model, cutoff, t, e, *returns, *net)

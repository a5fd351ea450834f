"""Fixed-horizon tests of one variant against the no-contact control, from sufficient statistics.

- Binary metrics (returned, ordered…): the pooled two-proportion z-test; the interval of the
  difference is Newcombe's hybrid score interval (Newcombe 1998, method 10), built from Wilson
  intervals, so a zero count never yields a zero-width interval.
- Continuous metrics (revenue): Welch's t-test with Satterthwaite degrees of freedom (Welch 1947).
- Relative uplift (variant mean / control mean − 1): delta method on the log ratio of means,
  which accounts for the variance of the control mean as well as the variant's.

p-values come from survival functions, so very small ones do not underflow to 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from analysis.sufficient import SampleStats
from experiments.models import MetricKind

BINARY_METHOD = "two-proportion z-test (pooled); Newcombe hybrid score CI"
WELCH_METHOD = "Welch t-test"


@dataclass(frozen=True)
class Estimate:
    """One comparison's point estimates, intervals and test."""

    method: str
    control_mean: float
    variant_mean: float
    abs_uplift: float
    abs_ci: tuple[float, float]
    rel_uplift: float
    rel_ci: tuple[float, float]
    statistic: float
    p_value: float


def wilson_interval(successes: float, n: float, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of a proportion (Wilson 1927); the same as statsmodels' ``wilson``."""
    if n <= 0:
        return math.nan, math.nan
    z = stats.norm.isf(alpha / 2)
    p = successes / n
    denominator = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return center - half, center + half


def newcombe_interval(control: SampleStats, variant: SampleStats, alpha: float = 0.05) -> tuple[float, float]:
    """Newcombe's hybrid score interval of ``p_variant − p_control`` (Newcombe 1998, method 10)."""
    p_v, p_c = variant.mean, control.mean
    lo_v, hi_v = wilson_interval(variant.sum, variant.n, alpha)
    lo_c, hi_c = wilson_interval(control.sum, control.n, alpha)
    diff = p_v - p_c
    return (diff - math.sqrt((p_v - lo_v) ** 2 + (hi_c - p_c) ** 2),
            diff + math.sqrt((hi_v - p_v) ** 2 + (p_c - lo_c) ** 2))


def two_proportion_z(control: SampleStats, variant: SampleStats) -> tuple[float, float]:
    """Pooled two-proportion z statistic and two-sided p-value (as statsmodels' ``proportions_ztest``)."""
    pooled = (control.sum + variant.sum) / (control.n + variant.n)
    se = math.sqrt(pooled * (1 - pooled) * (1 / control.n + 1 / variant.n))
    if se == 0:
        return math.nan, math.nan
    z = (variant.mean - control.mean) / se
    return z, float(2 * stats.norm.sf(abs(z)))


def welch(control: SampleStats, variant: SampleStats, alpha: float = 0.05
          ) -> tuple[float, float, tuple[float, float]]:
    """Welch's t statistic, two-sided p-value and interval of the difference of means."""
    a, b = variant.variance / variant.n, control.variance / control.n
    se = math.sqrt(a + b)
    if not se > 0:
        return math.nan, math.nan, (math.nan, math.nan)
    df = (a + b) ** 2 / (a * a / (variant.n - 1) + b * b / (control.n - 1))
    diff = variant.mean - control.mean
    t = diff / se
    half = stats.t.isf(alpha / 2, df) * se
    return t, float(2 * stats.t.sf(abs(t), df)), (diff - half, diff + half)


def relative_interval(control: SampleStats, variant: SampleStats, alpha: float = 0.05) -> tuple[float, float]:
    """Delta-method interval of ``mean_v / mean_c − 1`` on the log scale (both means' variances)."""
    m_v, m_c = variant.mean, control.mean
    if not (m_v > 0 and m_c > 0):
        return -math.inf if m_c > 0 else math.nan, math.inf if m_c > 0 else math.nan
    se = math.sqrt(variant.variance / (variant.n * m_v * m_v) + control.variance / (control.n * m_c * m_c))
    z = stats.norm.isf(alpha / 2)
    log_ratio = math.log(m_v / m_c)
    return float(np.expm1(log_ratio - z * se)), float(np.expm1(log_ratio + z * se))


def compare(control: SampleStats, variant: SampleStats, kind: MetricKind, alpha: float = 0.05) -> Estimate:
    """Variant against control on one metric: the test chosen by the metric's kind."""
    if control.n < 2 or variant.n < 2:
        nan2 = (math.nan, math.nan)
        return Estimate("not enough data", control.mean, variant.mean, variant.mean - control.mean, nan2,
                        math.nan, nan2, math.nan, math.nan)
    if kind == MetricKind.BINARY:
        method = BINARY_METHOD
        statistic, p_value = two_proportion_z(control, variant)
        abs_ci = newcombe_interval(control, variant, alpha)
    else:
        method = WELCH_METHOD
        statistic, p_value, abs_ci = welch(control, variant, alpha)
    rel = variant.mean / control.mean - 1 if control.mean else math.nan
    return Estimate(
        method=method,
        control_mean=control.mean,
        variant_mean=variant.mean,
        abs_uplift=variant.mean - control.mean,
        abs_ci=abs_ci,
        rel_uplift=rel,
        rel_ci=relative_interval(control, variant, alpha),
        statistic=statistic,
        p_value=p_value,
    )

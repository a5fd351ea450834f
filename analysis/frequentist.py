"""Fixed-horizon tests of one variant against the no-contact control, from sufficient statistics.

- Binary metrics (returned, ordered…): the pooled two-proportion z-test; the interval of the
  difference is Newcombe's hybrid score interval (Newcombe 1998, method 10), built from Wilson
  intervals, so a zero count never yields a zero-width interval.
- Continuous metrics (revenue): Welch's t-test with Satterthwaite degrees of freedom (Welch 1947).
- Relative uplift (variant mean / control mean − 1): delta method on the log ratio of means,
  which accounts for the variance of the control mean as well as the variant's; or, as an option,
  Fieller's (1954) interval (:func:`fieller_interval`), exact for normal means of known variance
  and honest (unbounded) when the control mean is too noisy to divide by.

p-values come from survival functions, so very small ones do not underflow to 0. Undefined
quantities (an empty arm, no variance in either arm, a zero mean under a log) are nan, never an
exception. The helpers work element-wise on :class:`SampleStats` whose fields are numpy arrays;
:func:`compare` is the scalar entry point the report uses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from analysis.distributions import norm_isf, norm_sf, t_cdf, t_isf, t_sf
from analysis.sufficient import SampleStats
from experiments.models import MetricKind

BINARY_METHOD = "two-proportion z-test (pooled); Newcombe hybrid score CI"
WELCH_METHOD = "Welch t-test"
SKEW_METHOD = "Welch t-test with Hall-Johnson skewness correction"
FIELLER_METHOD = ("Fieller (1954) interval of the relative uplift, independent arms "
                  "(unbounded when the control mean is not significantly different from 0)")

Interval = tuple[np.ndarray, np.ndarray]


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


def _z(alpha: float) -> float:
    return float(norm_isf(alpha / 2))


def _arrays(s: SampleStats) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """n, Σx, mean and variance as float arrays."""
    return (np.asarray(s.n, dtype=float), np.asarray(s.sum, dtype=float),
            np.asarray(s.mean, dtype=float), np.asarray(s.variance, dtype=float))


def wilson_interval(successes: ArrayLike, n: ArrayLike, alpha: float = 0.05) -> Interval:
    """Wilson score interval of a proportion (Wilson 1927); the same as statsmodels' ``wilson``."""
    x, n = np.asarray(successes, dtype=float), np.asarray(n, dtype=float)
    z = _z(alpha)
    z2 = z * z
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.where(n > 0, n, np.nan)
        p = x / n
        denominator = 1 + z2 / n
        center = (p + z2 / (2 * n)) / denominator
        half = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return center - half, center + half


def newcombe_interval(control: SampleStats, variant: SampleStats, alpha: float = 0.05) -> Interval:
    """Newcombe's hybrid score interval of ``p_variant − p_control`` (Newcombe 1998, method 10)."""
    n_c, x_c, p_c, _ = _arrays(control)
    n_v, x_v, p_v, _ = _arrays(variant)
    lo_v, hi_v = wilson_interval(x_v, n_v, alpha)
    lo_c, hi_c = wilson_interval(x_c, n_c, alpha)
    diff = p_v - p_c
    return (diff - np.sqrt((p_v - lo_v) ** 2 + (hi_c - p_c) ** 2),
            diff + np.sqrt((hi_v - p_v) ** 2 + (p_c - lo_c) ** 2))


def two_proportion_z(control: SampleStats, variant: SampleStats) -> tuple[np.ndarray, np.ndarray]:
    """Pooled two-proportion z statistic and two-sided p-value (as statsmodels' ``proportions_ztest``)."""
    n_c, x_c, p_c, _ = _arrays(control)
    n_v, x_v, p_v, _ = _arrays(variant)
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (x_c + x_v) / (n_c + n_v)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_v))
        z = np.where(se > 0, (p_v - p_c) / se, np.nan)
    return z, 2 * norm_sf(np.abs(z))


def welch(control: SampleStats, variant: SampleStats, alpha: float = 0.05
          ) -> tuple[np.ndarray, np.ndarray, Interval]:
    """Welch's t statistic, two-sided p-value and interval of the difference of means, with
    Welch–Satterthwaite degrees of freedom (Welch 1947; as scipy's ``ttest_ind(equal_var=False)``)."""
    n_c, _, m_c, v_c = _arrays(control)
    n_v, _, m_v, v_v = _arrays(variant)
    with np.errstate(divide="ignore", invalid="ignore"):
        a, b = v_v / n_v, v_c / n_c
        se = np.where(a + b > 0, np.sqrt(a + b), np.nan)
        df = (a + b) ** 2 / (a * a / (n_v - 1) + b * b / (n_c - 1))
        diff = m_v - m_c
        t = diff / se
        half = t_isf(alpha / 2, df) * se
    return t, 2 * t_sf(np.abs(t), df), (diff - half, diff + half)


def skewness_lambda(control: SampleStats, variant: SampleStats) -> np.ndarray:
    """Skewness of the mean difference's sampling distribution, λ = κ₃(x̄_v − x̄_c) / se³ =
    (μ₃ᵥ/nᵥ² − μ₃꜀/n꜀²) / se³. Large |λ| (a small arm of skewed revenue) is when Welch's tails are wrong."""
    n_c, _, _, v_c = _arrays(control)
    n_v, _, _, v_v = _arrays(variant)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(v_v / n_v + v_c / n_c)
        return (np.asarray(variant.third_moment) / n_v ** 2 - np.asarray(control.third_moment) / n_c ** 2) / se ** 3


def pooled_skewness_lambda(control: SampleStats, variant: SampleStats) -> np.ndarray:
    """λ with the third moment and variance pooled over both arms: μ₃ (1/nᵥ² − 1/n꜀²) / (s² (1/nᵥ + 1/n꜀))^{3/2}.

    What decides whether Welch can be trusted. Unlike :func:`skewness_lambda` of the arms' own
    moments, it does not depend on whether a small holdout happened to draw a large order (under
    the null both arms share one distribution, so the pooled moments estimate it); a rule on the
    arms' own λ left Welch in charge exactly in the A/A experiments where it errs (tests/test_validation.py).
    """
    pooled = SampleStats(np.asarray(control.n) + np.asarray(variant.n), np.asarray(control.sum) + variant.sum,
                         np.asarray(control.sum_sq) + variant.sum_sq,
                         None if control.sum_cu is None or variant.sum_cu is None
                         else np.asarray(control.sum_cu) + variant.sum_cu)
    n_c, n_v = np.asarray(control.n, dtype=float), np.asarray(variant.n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(np.asarray(pooled.variance) * (1 / n_v + 1 / n_c))
        return np.asarray(pooled.third_moment) * (1 / n_v ** 2 - 1 / n_c ** 2) / se ** 3


def _hall(t: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Hall's (1992) monotone version of Johnson's (1978) skewness-corrected t."""
    return t + lam / 6 + lam * t * t / 3 + lam * lam * t ** 3 / 27


def _hall_inverse(z: np.ndarray, lam: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = 3 / lam * (np.cbrt(1 + lam * (z - lam / 6)) - 1)
    return np.where(np.abs(lam) > 1e-12, inverse, z)


def skew_corrected_welch(control: SampleStats, variant: SampleStats, alpha: float = 0.05
                         ) -> tuple[np.ndarray, np.ndarray, Interval]:
    """Welch's t with the skewness correction of Johnson (1978) in Hall's (1992) monotone form:
    g(t) = t + λ/6 + λt²/3 + λ²t³/27 is referred to Welch's t distribution, and the interval inverts
    g. Needs Σx³; with λ = 0 it is exactly Welch."""
    n_c, _, m_c, v_c = _arrays(control)
    n_v, _, m_v, v_v = _arrays(variant)
    lam = skewness_lambda(control, variant)
    with np.errstate(divide="ignore", invalid="ignore"):
        a, b = v_v / n_v, v_c / n_c
        se = np.where(a + b > 0, np.sqrt(a + b), np.nan)
        df = (a + b) ** 2 / (a * a / (n_v - 1) + b * b / (n_c - 1))
        diff = m_v - m_c
        g = _hall(diff / se, lam)
        p = 2 * np.minimum(t_sf(g, df), t_cdf(g, df))
        q = t_isf(alpha / 2, df)
        interval = (diff - se * _hall_inverse(q, lam), diff - se * _hall_inverse(-q, lam))
    return g, p, interval


def relative_uplift(control: SampleStats, variant: SampleStats) -> np.ndarray:
    """``mean_v / mean_c − 1``: ±inf when only the control mean is 0, nan when both are."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(variant.mean, dtype=float) / np.asarray(control.mean, dtype=float) - 1


def relative_interval(control: SampleStats, variant: SampleStats, alpha: float = 0.05) -> Interval:
    """Delta-method interval of ``mean_v / mean_c − 1`` on the log scale, with both means' variances:
    var(log ratio) ≈ s_v²/(n_v m_v²) + s_c²/(n_c m_c²). nan unless both means are
    positive and the log ratio has a positive variance."""
    n_c, _, m_c, v_c = _arrays(control)
    n_v, _, m_v, v_v = _arrays(variant)
    with np.errstate(divide="ignore", invalid="ignore"):
        positive = (m_c > 0) & (m_v > 0)
        m_c, m_v = np.where(positive, m_c, np.nan), np.where(positive, m_v, np.nan)
        var = v_v / (n_v * m_v * m_v) + v_c / (n_c * m_c * m_c)
        se = np.where(var > 0, np.sqrt(var), np.nan)
        log_ratio = np.log(m_v / m_c)
        z = _z(alpha)
    return np.expm1(log_ratio - z * se), np.expm1(log_ratio + z * se)


def fieller_interval(control: SampleStats, variant: SampleStats, alpha: float = 0.05) -> Interval:
    """Fieller's (1954) interval of ``mean_v / mean_c − 1`` for independent arms: the ratios ρ whose
    pivot (m_v − ρ m_c) / √(v_v + ρ² v_c) lies within ±z (v = s²/n, z the normal quantile), i.e. the
    roots of (m_c² − z²v_c)ρ² − 2 m_c m_v ρ + (m_v² − z²v_v) ≤ 0.

    Unlike the delta method it needs no positive means and is not symmetric on any scale; it keeps
    its coverage when the control mean is noisy. When g = z²v_c/m_c² ≥ 1 (the control mean is not
    significantly different from 0) the set of ratios is the whole line or two rays excluding an
    interval ("exclusive"); both are reported as (−inf, inf): the data bound the ratio on neither side.
    nan when a mean or variance is undefined (an arm with fewer than 2 customers)."""
    _, _, m_c, v_c = _arrays(control)
    n_c = np.asarray(control.n, dtype=float)
    _, _, m_v, v_v = _arrays(variant)
    n_v = np.asarray(variant.n, dtype=float)
    z2 = _z(alpha) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        a_c, a_v = v_c / n_c, v_v / n_v  # variances of the two means
        a = m_c * m_c - z2 * a_c  # > 0 ⇔ g < 1
        half_b = m_c * m_v
        # b'² − ac with c = m_v² − z²a_v, in the form without cancellation (≥ 0 when a > 0)
        root = np.sqrt(np.maximum(z2 * (a * a_v + m_v * m_v * a_c), 0.0))
        bounded = a > 0
        lo = np.where(bounded, (half_b - root) / a, -np.inf)
        hi = np.where(bounded, (half_b + root) / a, np.inf)
    defined = np.isfinite(m_c) & np.isfinite(m_v) & np.isfinite(a_c) & np.isfinite(a_v)
    return np.where(defined, lo - 1, np.nan), np.where(defined, hi - 1, np.nan)


def _test(control: SampleStats, variant: SampleStats, kind: MetricKind, skew_corrected: bool, alpha: float
          ) -> tuple[str, np.ndarray, np.ndarray, Interval]:
    """(default method, statistic, two-sided p-value, interval of the difference) for one kind."""
    if kind == MetricKind.BINARY:
        statistic, p_value = two_proportion_z(control, variant)
        return BINARY_METHOD, statistic, p_value, newcombe_interval(control, variant, alpha)
    if skew_corrected:
        return (SKEW_METHOD, *skew_corrected_welch(control, variant, alpha))
    return (WELCH_METHOD, *welch(control, variant, alpha))


def _stack(stats: Sequence[SampleStats]) -> SampleStats:
    """Many SampleStats as one whose fields are arrays (what every test here accepts)."""
    cubes = [s.sum_cu for s in stats]
    return SampleStats(np.array([s.n for s in stats]), np.array([s.sum for s in stats], dtype=float),
                       np.array([s.sum_sq for s in stats], dtype=float),
                       None if any(c is None for c in cubes) else np.array(cubes, dtype=float))


def compare_many(controls: Sequence[SampleStats], variants: Sequence[SampleStats], kinds: Sequence[MetricKind],
                 alpha: float = 0.05, *, skew_corrected: Sequence[bool] | None = None,
                 methods: Sequence[str | None] | None = None) -> list[Estimate]:
    """:func:`compare` for many pairs at once: one vectorized call per kind of test, so a report of
    10 variants × 20 metrics costs a handful of numpy operations rather than 200 scipy calls."""
    skew_corrected = skew_corrected or [False] * len(kinds)
    methods = methods or [None] * len(kinds)
    groups: dict[tuple[MetricKind, bool], list[int]] = {}
    for i, key in enumerate(zip(kinds, skew_corrected, strict=True)):
        groups.setdefault((MetricKind(key[0]), bool(key[1])), []).append(i)
    out: list[Estimate | None] = [None] * len(kinds)
    for (kind, skew), idx in groups.items():
        control, variant = _stack([controls[i] for i in idx]), _stack([variants[i] for i in idx])
        method, statistic, p_value, (lo, hi) = _test(control, variant, kind, skew, alpha)
        control_mean, variant_mean = np.atleast_1d(control.mean), np.atleast_1d(variant.mean)
        rel = relative_uplift(control, variant)
        rel_lo, rel_hi = relative_interval(control, variant, alpha)
        for j, i in enumerate(idx):
            out[i] = Estimate(
                method=methods[i] or method,
                control_mean=float(control_mean[j]),
                variant_mean=float(variant_mean[j]),
                abs_uplift=float(variant_mean[j] - control_mean[j]),
                abs_ci=(float(lo[j]), float(hi[j])),
                rel_uplift=float(rel[j]),
                rel_ci=(float(rel_lo[j]), float(rel_hi[j])),
                statistic=float(statistic[j]),
                p_value=float(p_value[j]),
            )
    return out  # type: ignore[return-value]


def compare(control: SampleStats, variant: SampleStats, kind: MetricKind, alpha: float = 0.05, *,
            skew_corrected: bool = False, method: str | None = None) -> Estimate:
    """Variant against control on one metric: the test chosen by the metric's kind (see module doc);
    ``skew_corrected`` uses :func:`skew_corrected_welch` for a continuous metric."""
    return compare_many([control], [variant], [kind], alpha, skew_corrected=[skew_corrected], methods=[method])[0]


@dataclass(frozen=True)
class OneSided:
    """Is the variant's rate worse (higher) than the control's by more than ``margin``?"""

    control_mean: float
    variant_mean: float
    difference: float
    upper_bound: float
    p_value: float
    worse: bool


def worse_than(control: SampleStats, variant: SampleStats, *, margin: float = 0.0, alpha: float = 0.05) -> OneSided:
    """One-sided z-test of H0: p_v − p_c ≤ margin against H1: p_v − p_c > margin (a guardrail).

    Unpooled standard error (the hypotheses are not "equal rates" unless the margin is 0); the upper
    bound is the one-sided 1 − α confidence bound of the difference.
    """
    n_c, _, m_c, v_c = _arrays(control)
    n_v, _, m_v, v_v = _arrays(variant)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(v_v / n_v + v_c / n_c)
        diff = m_v - m_c
        z = np.where(se > 0, (diff - margin) / se, np.nan)
        p = norm_sf(z)
        upper = diff + norm_isf(alpha) * se
    p_value = float(p)
    return OneSided(float(m_c), float(m_v), float(diff), float(upper), p_value,
                    bool(p_value < alpha) if math.isfinite(p_value) else False)

"""Ratio metrics by the delta method: Σx / Σy per arm, e.g. revenue per returned customer.

The unit of randomization is the customer, but a ratio metric divides two per-customer sums
(revenue / returned, orders / visits), so its denominator is random and correlated with the
numerator. Treating the ratio's parts as independent observations (one row per order) understates
its variance; the delta method on the ratio of two means does not (Deng, Knoblich & Lu 2018):

    R̂ = x̄ / ȳ,   Var(R̂) ≈ (s_x² − 2 R̂ s_xy + R̂² s_y²) / (n ȳ²)

with s_x², s_y², s_xy the (ddof = 1) sample variances and covariance over the arm's customers.
The bracket is the sample variance of the residual x − R̂ y, so it is computed in that form and
clipped at 0 against rounding. Everything needs only n, Σx, Σx², Σy, Σy², Σxy per arm
(:class:`RatioStats`), which SQL computes.

:func:`ratio_test` compares two independent arms: a z-test and interval on R̂_v − R̂_c, and the
relative uplift R̂_v / R̂_c − 1 with a delta-method interval on the log scale (both arms' variances).
Undefined quantities (Σy = 0, fewer than 2 customers, no variance, a non-positive ratio under a log)
are nan, never an exception. Fields may be numpy arrays of one shape (one entry per simulated
experiment) and every result is then element-wise.

Reference: A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric Analytics: A Practical
Guide with Novel Ideas", KDD 2018.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from analysis.distributions import norm_isf, norm_sf
from analysis.frequentist import Estimate

RATIO_METHOD = "delta-method z-test on a ratio metric (Deng et al. 2018)"


def _scalar_or_array(x: np.ndarray) -> float | np.ndarray:
    return float(x) if np.ndim(x) == 0 else x


@dataclass(frozen=True)
class RatioStats:
    """n, Σx, Σx², Σy, Σy², Σxy of a numerator x and denominator y over one arm's customers.

    SQL: ``COUNT(*), SUM(x), SUM(x*x), SUM(y), SUM(y*y), SUM(x*y)``; each customer contributes one
    row even when y = 0 (a customer who did not return still counts in n).
    """

    n: int
    sum_x: float
    sum_x2: float
    sum_y: float
    sum_y2: float
    sum_xy: float

    @classmethod
    def from_values(cls, x: ArrayLike, y: ArrayLike, axis: int | None = None) -> RatioStats:
        """From per-customer values of one shape; with ``axis``, one statistic per slice along the
        other axes (arrays), as :meth:`analysis.sufficient.SampleStats.from_values`."""
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if x.shape != y.shape:
            raise ValueError(f"x and y must have one shape, got {x.shape} and {y.shape}")
        if axis is None:
            return cls(int(x.size), float(x.sum()), float((x * x).sum()), float(y.sum()), float((y * y).sum()),
                       float((x * y).sum()))
        return cls(np.full(np.delete(x.shape, axis), x.shape[axis]), x.sum(axis=axis), (x * x).sum(axis=axis),
                   y.sum(axis=axis), (y * y).sum(axis=axis), (x * y).sum(axis=axis))

    @property
    def ratio(self) -> float:
        """Σx / Σy; nan when Σy = 0 (or n = 0)."""
        sum_y = np.asarray(self.sum_y, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(sum_y != 0, np.divide(self.sum_x, sum_y), np.nan)
        return _scalar_or_array(r)

    @property
    def ratio_variance(self) -> float:
        """Delta-method variance of x̄/ȳ: Var(x − R̂y) / (n ȳ²) with the ddof = 1 sample variance of the
        residual; nan when the ratio is undefined or n < 2."""
        n = np.asarray(self.n, dtype=float)
        sx, sy = np.asarray(self.sum_x, dtype=float), np.asarray(self.sum_y, dtype=float)
        r = np.asarray(self.ratio, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            sxx = np.asarray(self.sum_x2) - sx * sx / n  # centred sums of squares and products
            syy = np.asarray(self.sum_y2) - sy * sy / n
            sxy = np.asarray(self.sum_xy) - sx * sy / n
            residual = np.maximum((sxx - 2 * r * sxy + r * r * syy) / (n - 1), 0.0)
            v = residual / (n * (sy / n) ** 2)
        return _scalar_or_array(np.where((n >= 2) & np.isfinite(r), v, np.nan))


@dataclass(frozen=True)
class RatioTest:
    """Variant against control on a ratio metric (arrays when the inputs are arrays)."""

    control_ratio: float | np.ndarray
    variant_ratio: float | np.ndarray
    abs_uplift: float | np.ndarray
    abs_ci: tuple[float | np.ndarray, float | np.ndarray]
    rel_uplift: float | np.ndarray
    rel_ci: tuple[float | np.ndarray, float | np.ndarray]
    statistic: float | np.ndarray
    p_value: float | np.ndarray


def ratio_test(control: RatioStats, variant: RatioStats, alpha: float = 0.05) -> RatioTest:
    """Delta-method z-test of R_v − R_c with independent arms (Deng et al. 2018): z = (R̂_v − R̂_c) / se,
    se² = Var(R̂_v) + Var(R̂_c); two-sided p from the normal survival function (no underflow). The
    relative uplift's interval is exp(log(R̂_v/R̂_c) ± z·√(Var(R̂_v)/R̂_v² + Var(R̂_c)/R̂_c²)) − 1, nan
    unless both ratios are positive."""
    r_c, r_v = np.asarray(control.ratio, dtype=float), np.asarray(variant.ratio, dtype=float)
    v_c, v_v = np.asarray(control.ratio_variance, dtype=float), np.asarray(variant.ratio_variance, dtype=float)
    z_crit = float(norm_isf(alpha / 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = r_v - r_c
        var = v_v + v_c
        se = np.where(var > 0, np.sqrt(var), np.nan)
        z = diff / se
        p = 2 * norm_sf(np.abs(z))
        positive = (r_c > 0) & (r_v > 0)
        rel = np.where(r_c != 0, r_v / r_c - 1, np.nan)
        log_var = np.where(positive, v_v / (r_v * r_v) + v_c / (r_c * r_c), np.nan)
        log_se = np.where(log_var > 0, np.sqrt(log_var), np.nan)
        log_ratio = np.log(np.where(positive, r_v / r_c, np.nan))
        rel_lo, rel_hi = np.expm1(log_ratio - z_crit * log_se), np.expm1(log_ratio + z_crit * log_se)
    s = _scalar_or_array
    return RatioTest(
        control_ratio=s(r_c), variant_ratio=s(r_v), abs_uplift=s(diff),
        abs_ci=(s(diff - z_crit * se), s(diff + z_crit * se)),
        rel_uplift=s(rel), rel_ci=(s(rel_lo), s(rel_hi)), statistic=s(z), p_value=s(p),
    )


def compare_ratio(control: RatioStats, variant: RatioStats, alpha: float = 0.05) -> Estimate:
    """:func:`ratio_test` for one pair of scalar arms, as the :class:`Estimate` the report uses
    (``control_mean``/``variant_mean`` are the two ratios)."""
    t = ratio_test(control, variant, alpha)
    return Estimate(
        method=RATIO_METHOD,
        control_mean=float(t.control_ratio),
        variant_mean=float(t.variant_ratio),
        abs_uplift=float(t.abs_uplift),
        abs_ci=(float(t.abs_ci[0]), float(t.abs_ci[1])),
        rel_uplift=float(t.rel_uplift),
        rel_ci=(float(t.rel_ci[0]), float(t.rel_ci[1])),
        statistic=float(t.statistic),
        p_value=float(t.p_value),
    )

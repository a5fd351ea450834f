"""CUPED / regression adjustment of a variant-vs-control difference, from sufficient statistics.

The estimator is Lin's (2013) fully interacted regression, ``y ~ T + (x − x̄) + T:(x − x̄)`` with the
covariate(s) centred at the pooled mean x̄ of both arms. Fully interacted OLS is the same as a
separate regression of y on x in each arm, so the uplift is

    τ̂ = â_v − â_c,   â_g = ȳ_g + θ_gᵀ (x̄ − x̄_g),   θ_g = S_xx,g⁻¹ S_xy,g

(â_g: arm g's fitted mean at the pooled covariate mean). This is CUPED (Deng, Xu, Kohavi & Walker
2013) with a θ per arm; with a common θ and equal arms the two coincide. Everything needs only
n, Σy, Σy², Σx, Σxxᵀ and Σxy per arm (:class:`CovariateStats`), which SQL computes.

Variance: the standard CUPED variance in its exact finite-sample OLS form, each arm with its own
residual variance (homoskedastic within an arm, not across arms):

    Var(â_g) = σ̂_g² (1/n_g + d_gᵀ S_xx,g⁻¹ d_g),   σ̂_g² = SSR_g / (n_g − 1 − k),   d_g = x̄ − x̄_g

which is exactly the (non-robust) OLS standard error of the intercept of arm g's own regression
on (x − x̄), and equally that of the interaction model fitted by WLS with weights 1/σ̂_g². Lin's
HC-robust variance of the pooled interacted OLS needs third and fourth moments (Σe²x, Σe²x²),
which sufficient statistics of order two do not carry; the two variances differ only through d_g,
which is O(n^{-1/2}), so they agree asymptotically (within ~1 % at a few thousand per arm).
Intervals and p-values use Student's t with Welch–Satterthwaite degrees of freedom.

The relative uplift â_v / â_c − 1 has a delta-method interval on the log scale (as in
:mod:`analysis.frequentist`). ``variance_reduction`` is 1 − Var(τ̂)/Var(ȳ_v − ȳ_c), the unadjusted
variance being s_v²/n_v + s_c²/n_c; it is about ρ² for a covariate correlated at ρ with y, and about 0
(slightly negative: k degrees of freedom are spent) for a useless one.

All fields may carry leading batch dimensions (one entry per simulated experiment), and the
results are then arrays.

References: W. Lin, "Agnostic notes on regression adjustments to experimental data: reexamining
Freedman's critique", Annals of Applied Statistics 7(1), 2013; A. Deng, Y. Xu, R. Kohavi, T. Walker,
"Improving the sensitivity of online controlled experiments by utilizing pre-experiment data",
WSDM 2013.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from analysis.distributions import norm_isf, t_isf, t_sf

CUPED_METHOD = ("regression adjustment (Lin 2013 interacted OLS = CUPED with per-arm θ); "
                "per-arm OLS variance, Welch-Satterthwaite t")


@dataclass(frozen=True)
class CovariateStats:
    """Sufficient statistics of an outcome y and covariate(s) x in one arm.

    One covariate: every field is a number (or an array of one shape, one entry per experiment).
    k covariates: ``sum_x`` and ``sum_xy`` end in a dimension of length k and ``sum_x2`` (Σ x xᵀ) in
    two, (k, k). SQL: ``COUNT(*), SUM(y), SUM(y*y), SUM(x), SUM(x*x), SUM(x*y)`` (and SUM(x_i*x_j)).
    """

    n: int
    sum_y: float
    sum_y2: float
    sum_x: float | np.ndarray
    sum_x2: float | np.ndarray
    sum_xy: float | np.ndarray

    @classmethod
    def from_values(cls, y: ArrayLike, x: ArrayLike) -> CovariateStats:
        """From rows: ``y`` of shape (*batch, n); ``x`` of shape (*batch, n) for one covariate or
        (*batch, n, k) for k covariates. Sums over the n axis."""
        y = np.asarray(y, dtype=float)
        x = np.asarray(x, dtype=float)
        axis = y.ndim - 1
        n = np.full(y.shape[:-1], y.shape[-1]) if y.ndim > 1 else int(y.shape[-1])
        if x.ndim == y.ndim:
            return cls(n, y.sum(axis), (y * y).sum(axis), x.sum(axis), (x * x).sum(axis), (x * y).sum(axis))
        return cls(n, y.sum(axis), (y * y).sum(axis), x.sum(axis), np.einsum("...ni,...nj->...ij", x, x),
                   np.einsum("...ni,...n->...i", x, y))


@dataclass(frozen=True)
class AdjustedEstimate:
    """The regression-adjusted comparison of one variant with the control."""

    method: str
    control_mean: float  # adjusted means: each arm's fitted mean at the pooled covariate mean
    variant_mean: float
    abs_uplift: float
    abs_ci: tuple[float, float]
    se: float
    p_value: float
    rel_uplift: float
    rel_ci: tuple[float, float]
    variance_reduction: float  # 1 − Var(adjusted τ̂) / Var(unadjusted difference of means)
    theta: tuple[float | np.ndarray, float | np.ndarray]  # (control, variant) slopes on x


@dataclass(frozen=True)
class _Arm:
    n: np.ndarray  # batch
    mean_y: np.ndarray  # batch
    mean_x: np.ndarray  # batch + (k,)
    sxx: np.ndarray  # batch + (k, k), centred at the arm mean
    theta: np.ndarray  # batch + (k,)
    ssr: np.ndarray  # residual sum of squares
    syy: np.ndarray  # total (centred) sum of squares


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a⁻¹ b for stacks of (k, k) matrices and (k,) vectors; the pseudo-inverse if a is singular."""
    try:
        return np.linalg.solve(a, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return np.einsum("...ij,...j->...i", np.linalg.pinv(a), b)


def _arm(s: CovariateStats) -> _Arm:
    n = np.asarray(s.n, dtype=float)
    sum_x, sum_x2, sum_xy = (np.asarray(v, dtype=float) for v in (s.sum_x, s.sum_x2, s.sum_xy))
    if sum_x.ndim == n.ndim:  # one covariate
        sum_x, sum_x2, sum_xy = sum_x[..., None], sum_x2[..., None, None], sum_xy[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_y = np.asarray(s.sum_y, dtype=float) / n
        mean_x = sum_x / n[..., None]
        sxx = sum_x2 - n[..., None, None] * mean_x[..., :, None] * mean_x[..., None, :]
        sxy = sum_xy - n[..., None] * mean_x * mean_y[..., None]
        syy = np.maximum(np.asarray(s.sum_y2, dtype=float) - n * mean_y * mean_y, 0.0)
        theta = _solve(sxx, sxy)
        ssr = np.maximum(syy - np.einsum("...i,...i->...", theta, sxy), 0.0)
    return _Arm(n, mean_y, mean_x, sxx, theta, ssr, syy)


def _out(x: np.ndarray) -> float | np.ndarray:
    return float(x) if np.ndim(x) == 0 else x


def cuped(control: CovariateStats, variant: CovariateStats, alpha: float = 0.05) -> AdjustedEstimate:
    """Regression-adjusted (CUPED / Lin 2013) uplift of the variant's mean outcome over the control's;
    see the module docstring for the estimator and its variance."""
    c, v = _arm(control), _arm(variant)
    k = c.theta.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled_x = (c.mean_x * c.n[..., None] + v.mean_x * v.n[..., None]) / (c.n + v.n)[..., None]

        def adjusted(arm: _Arm) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
            d = pooled_x - arm.mean_x
            mean = arm.mean_y + np.einsum("...i,...i->...", arm.theta, d)
            df = arm.n - 1 - k
            var = arm.ssr / df * (1 / arm.n + np.einsum("...i,...i->...", d, _solve(arm.sxx, d)))
            unadjusted = arm.syy / (arm.n - 1) / arm.n
            return mean, var, df, unadjusted

        m_c, var_c, df_c, un_c = adjusted(c)
        m_v, var_v, df_v, un_v = adjusted(v)
        tau = m_v - m_c
        var = var_c + var_v
        se = np.where(var > 0, np.sqrt(var), np.nan)
        df = var * var / (var_c * var_c / df_c + var_v * var_v / df_v)
        t = tau / se
        p_value = 2 * t_sf(np.abs(t), df)
        half = t_isf(alpha / 2, df) * se
        reduction = 1 - var / (un_c + un_v)

        positive = (m_c > 0) & (m_v > 0)
        log_ratio = np.log(np.where(positive, m_v / m_c, np.nan))
        rel_se = np.sqrt(var_v / (m_v * m_v) + var_c / (m_c * m_c))
        z = norm_isf(alpha / 2)
        rel_uplift = m_v / m_c - 1

    theta_c, theta_v = (arm.theta[..., 0] if k == 1 and np.ndim(control.sum_x) == np.ndim(control.n)
                        else arm.theta for arm in (c, v))
    return AdjustedEstimate(
        method=CUPED_METHOD,
        control_mean=_out(m_c),
        variant_mean=_out(m_v),
        abs_uplift=_out(tau),
        abs_ci=(_out(tau - half), _out(tau + half)),
        se=_out(se),
        p_value=_out(p_value),
        rel_uplift=_out(rel_uplift),
        rel_ci=(_out(np.expm1(log_ratio - z * rel_se)), _out(np.expm1(log_ratio + z * rel_se))),
        variance_reduction=_out(reduction),
        theta=(_out(theta_c), _out(theta_v)),
    )

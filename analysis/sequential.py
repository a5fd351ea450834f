"""Sequential monitoring: results that may be looked at before the planned end without inflating α.

Looking at a fixed-horizon test every day and stopping at the first p < 0.05 makes the false-positive
rate several times α (Armitage, McPherson & Rowe 1969). Two remedies, both from sufficient statistics:

- **Group-sequential design** (a few planned looks). Lan & DeMets (1983) α-spending with the
  O'Brien–Fleming-type spending function; boundaries by exact recursive numerical integration over
  the canonical joint distribution of the z-statistics, Corr(Z_i, Z_j) = √(t_i / t_j)
  (Armitage, McPherson & Rowe 1969; Jennison & Turnbull 2000, ch. 19).
- **Always-valid inference** (look whenever you like). The two-sided normal-mixture confidence
  sequence (Howard, Ramdas, McAuliffe & Sekhon 2021, Annals of Statistics 49(2); asymptotic form:
  Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas 2024, "Time-uniform central limit theory and
  asymptotic confidence sequences") and its dual, the mSPRT always-valid p-value p = min(1, 1/Λ)
  (Johari, Koomen, Pekelis & Walsh 2017/2022, "Always valid inference", Operations Research 70(3)).

See docs/statistics/sequential.md for the formulas and when to use which.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from analysis.distributions import norm_isf, norm_pdf, norm_ppf, norm_sf
from analysis.sufficient import SampleStats

OBF_METHOD = "group-sequential, Lan-DeMets O'Brien-Fleming-type alpha spending (recursive integration)"
MIXTURE_METHOD = "normal-mixture confidence sequence / mSPRT (Howard et al. 2021; Johari et al. 2022)"

#: Total sample size (both arms) the mixture is tuned for when neither ``rho`` nor ``planned_n`` is given.
DEFAULT_PLANNED_N = 10_000

_GRID_R = 32  # Jennison & Turnbull's grid parameter r; 16 already gives ~6 correct decimals


# --------------------------------------------------------------------------- group-sequential


@dataclass(frozen=True)
class GroupSequentialDesign:
    """Upper z-boundaries of a one-sided group-sequential test, one per look.

    ``alpha`` is the one-sided level; for a two-sided test use ±boundaries with α per side
    (the chance of crossing both is negligible). ``nominal_alphas[k]`` = 1 − Φ(boundary[k]), the
    one-sided fixed-horizon p-value that the look's z must beat; ``cumulative_alpha[k]`` = α*(t_k),
    the type-I error spent up to and including look k.
    """

    information_fractions: tuple[float, ...]
    boundaries: tuple[float, ...]
    nominal_alphas: tuple[float, ...]
    cumulative_alpha: tuple[float, ...]
    alpha: float
    method: str = OBF_METHOD

    @property
    def alpha_spent(self) -> tuple[float, ...]:
        """Type-I error spent at each look (the increments of ``cumulative_alpha``)."""
        return tuple(np.diff(np.concatenate([[0.0], self.cumulative_alpha])).tolist())

    @property
    def looks(self) -> int:
        return len(self.boundaries)


def obf_spending(t: ArrayLike, alpha: float = 0.025) -> np.ndarray:
    """Lan-DeMets O'Brien-Fleming-type spending function α*(t) = 2 − 2Φ(z_{1−α/2} / √t), one-sided α.

    α*(0) = 0 and α*(1) = α; vectorized over the information fractions ``t``.
    """
    t = np.asarray(t, dtype=float)
    with np.errstate(divide="ignore"):
        spent = 2.0 * norm_sf(norm_isf(alpha / 2.0) / np.sqrt(t))
    return np.where(t > 0, spent, 0.0)


def _grid(mean: float, upper: float, r: int = _GRID_R) -> tuple[np.ndarray, np.ndarray]:
    """Jennison & Turnbull (2000, §19.2.1) grid on (−∞, upper] for a N(mean, 1) variable, with Simpson weights."""
    i = np.arange(1, 6 * r, dtype=float)
    x = np.where(i < r, mean - 3.0 - 4.0 * np.log(r / i),
                 np.where(i <= 5 * r, mean - 3.0 + 3.0 * (i - r) / (2.0 * r),
                          mean + 3.0 + 4.0 * np.log(r / np.maximum(6 * r - i, 1.0))))
    if np.isfinite(upper):
        x = np.append(x[x < upper], upper)
    if x.size < 2:  # the whole grid lies above the boundary: integrate one short interval below it
        x = np.array([upper - 1e-9 - 40.0, upper])
    mid = (x[:-1] + x[1:]) / 2.0
    points = np.empty(2 * x.size - 1)
    points[0::2], points[1::2] = x, mid
    width = np.diff(x)
    weights = np.zeros_like(points)
    weights[0::2][:-1] += width / 6.0
    weights[0::2][1:] += width / 6.0
    weights[1::2] = 4.0 * width / 6.0
    return points, weights


def _upper_crossing(z: np.ndarray, wh: np.ndarray, s_prev: float, s_now: float, step: float,
                    boundary: float, drift: float) -> float:
    """P(continue up to the previous look, Z_now ≥ boundary), given the weighted sub-density ``wh``."""
    if not np.isfinite(boundary):
        return 0.0
    return float(wh @ norm_sf((boundary * s_now - z * s_prev - drift * step) / math.sqrt(step)))


def _next_density(z_prev: np.ndarray, wh: np.ndarray, s_prev: float, s_now: float, step: float,
                  boundary: float, drift: float) -> tuple[np.ndarray, np.ndarray]:
    """Grid and weighted sub-density of Z_now on {no crossing so far}: one step of the recursion."""
    z, w = _grid(drift * s_now, boundary)
    sd = math.sqrt(step)
    kernel = norm_pdf((z[:, None] * s_now - z_prev[None, :] * s_prev - drift * step) / sd) * (s_now / sd)
    return z, w * (kernel @ wh)


def _check_fractions(information_fractions: Sequence[float]) -> np.ndarray:
    t = np.asarray(information_fractions, dtype=float)
    if t.ndim != 1 or t.size == 0:
        raise ValueError("information_fractions must be a non-empty sequence")
    if not (np.all(t > 0) and np.all(t <= 1) and np.all(np.diff(t) > 0)):
        raise ValueError(f"information fractions must be strictly increasing in (0, 1]; got {t.tolist()}")
    return t


def obf_boundaries(information_fractions: Sequence[float], alpha: float = 0.025) -> GroupSequentialDesign:
    """Lan-DeMets O'Brien-Fleming-type boundaries at the given information fractions.

    Method: α-spending (Lan & DeMets 1983, Biometrika 70) with α*(t) = 2 − 2Φ(z_{1−α/2}/√t);
    each boundary b_k solves P(Z_1 < b_1, …, Z_{k−1} < b_{k−1}, Z_k ≥ b_k) = α*(t_k) − α*(t_{k−1})
    under H0, computed by recursive numerical integration (Simpson's rule on the Jennison & Turnbull
    grid, 2000, ch. 19) of the canonical joint distribution Corr(Z_i, Z_j) = √(t_i/t_j).
    ``alpha`` is one-sided. Reference: K = 5 equal looks, α = 0.025 gives
    4.877, 3.357, 2.680, 2.290, 2.031. Fractions need not be equally spaced; if the actual looks
    drift from the plan, recompute with the fractions actually observed (that is what spending allows).
    """
    from scipy import optimize  # here, not at the top: keeps the CLI's start-up light

    if not 0 < alpha < 0.5:
        raise ValueError(f"one-sided alpha must be in (0, 0.5); got {alpha}")
    t = _check_fractions(information_fractions)
    cumulative = obf_spending(t, alpha)
    increments = np.diff(np.concatenate([[0.0], cumulative]))
    boundaries: list[float] = []
    z = wh = None
    s_prev = 0.0
    for k, (tk, target) in enumerate(zip(t, increments)):
        s_now = math.sqrt(tk)
        if target <= 0:
            b = math.inf
        elif k == 0:
            b = float(norm_isf(target))
        else:
            step = tk - t[k - 1]
            hi = float(norm_isf(target))  # P_k(b) ≤ P(Z_k ≥ b), so P_k(hi) ≤ target
            lo = -12.0
            crossing = lambda b: _upper_crossing(z, wh, s_prev, s_now, step, b, 0.0) - target  # noqa: E731
            b = hi if crossing(hi) >= 0 else float(optimize.brentq(crossing, lo, hi, xtol=1e-12, rtol=1e-14))
        boundaries.append(b)
        if k == 0:
            z, w = _grid(0.0, b)
            wh = w * norm_pdf(z)
        else:
            z, wh = _next_density(z, wh, s_prev, s_now, tk - t[k - 1], b, 0.0)
        s_prev = s_now
    bounds = np.array(boundaries)
    return GroupSequentialDesign(
        information_fractions=tuple(t.tolist()),
        boundaries=tuple(bounds.tolist()),
        nominal_alphas=tuple(norm_sf(bounds).tolist()),
        cumulative_alpha=tuple(cumulative.tolist()),
        alpha=alpha,
    )


def crossing_probabilities(design: GroupSequentialDesign, drift: float = 0.0) -> np.ndarray:
    """P(first crossing of the upper boundary at look k), k = 1..K, when E[Z_k] = drift·√t_k.

    ``drift`` is the expected z at full information (t = 1) of a fixed-horizon test; drift 0 gives
    the α spent, drift z_{1−α} + z_{1−β} the power of a design sized for a fixed-horizon test.
    Same recursive integration as :func:`obf_boundaries`.
    """
    t = np.asarray(design.information_fractions)
    out = np.empty(t.size)
    s_prev = 0.0
    z = wh = None
    for k, (tk, b) in enumerate(zip(t, design.boundaries)):
        s_now = math.sqrt(tk)
        if k == 0:
            out[0] = float(norm_sf(b - drift * s_now))
            z, w = _grid(drift * s_now, b)
            wh = w * norm_pdf(z - drift * s_now)
        else:
            step = tk - t[k - 1]
            out[k] = _upper_crossing(z, wh, s_prev, s_now, step, b, drift)
            z, wh = _next_density(z, wh, s_prev, s_now, step, b, drift)
        s_prev = s_now
    return out


def inflation_factor(design: GroupSequentialDesign, power: float = 0.8) -> float:
    """Maximum sample size of the design relative to the fixed-horizon test of the same α and power.

    Solves Σ_k crossing_probabilities(drift) = power for the drift, then R = (drift / (z_{1−α} + z_{power}))²
    (Jennison & Turnbull 2000, §2.5 and ch. 7). Multiply a fixed-horizon n (analysis/power.py, planned
    with one-sided α, i.e. two-sided 2α) by R; assumes the final information fraction is 1.
    """
    from scipy import optimize  # here, not at the top: keeps the CLI's start-up light

    if not design.alpha < power < 1:
        raise ValueError(f"power must be in (alpha, 1); got {power}")
    fixed = float(norm_isf(design.alpha) + norm_ppf(power))
    drift = optimize.brentq(lambda d: crossing_probabilities(design, d).sum() - power, 0.0, 3.0 * fixed + 5.0,
                            xtol=1e-12)
    return (drift / fixed) ** 2


# --------------------------------------------------------------------------- always-valid inference


@dataclass(frozen=True)
class AlwaysValidEstimate:
    """Difference of means (variant − control) with a time-uniform (1 − α) confidence sequence.

    ``p_value_always_valid`` = min(1, 1/Λ), Λ the mixture likelihood ratio of H0: difference = 0;
    it is ≤ α exactly when the interval excludes 0. Both stay valid at any (data-dependent) look.
    ``rho`` is the mixture parameter in units of total sample size (both arms).
    """

    abs_uplift: float
    ci_lo: float
    ci_hi: float
    p_value_always_valid: float
    method: str
    rho: float = math.nan
    statistic: float = math.nan
    threshold: float = math.nan


def optimal_rho(planned_n: float, alpha: float = 0.05) -> float:
    """Mixture parameter ρ that makes the confidence sequence narrowest at total sample size ``planned_n``.

    Minimizing (n + ρ)·log((n + ρ)/(ρα²)) at n = planned_n gives ρ = planned_n / x with
    x = 2 log(1/α) + log(1 + x) (solved by fixed point). The first iterate,
    ρ ≈ n / (−2 log α + log(1 − 2 log α)), is the closed form of Howard et al. (2021, §3.5) and
    Waudby-Smith et al. (2024). The width is flat near the optimum: a guess within ×2–×4 costs little.
    """
    if not planned_n > 0:
        raise ValueError(f"planned_n must be positive; got {planned_n}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1); got {alpha}")
    big_l = -2.0 * math.log(alpha)
    x = big_l + math.log1p(big_l)
    for _ in range(50):
        x = big_l + math.log1p(x)
    return planned_n / x


def mixture_boundary(n: ArrayLike, rho: float, alpha: float = 0.05) -> np.ndarray:
    """|z| threshold of the two-sided normal-mixture confidence sequence at total sample size ``n``.

    |S_n| < √((n + ρ) log((n + ρ)/(ρ α²))) for the standardized sum S_n = z·√n (Howard et al. 2021,
    eq. (14), two-sided normal mixture), i.e. |z| < √((n + ρ)/n · log((n + ρ)/(ρ α²))). Vectorized.
    """
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((n + rho) / n * np.log((n + rho) / (rho * alpha * alpha)))


def log_mixture_likelihood_ratio(z: ArrayLike, n: ArrayLike, rho: float) -> np.ndarray:
    """log Λ_n of the mSPRT with a N(0, σ²/ρ) mixture over the effect: ½ log(ρ/(n+ρ)) + n z² / (2(n+ρ)).

    Johari et al. (2022), eq. for normal data with a normal mixing distribution; σ² is the variance of
    one observation's contribution, so the prior sd of the effect is τ = σ/√ρ. Vectorized.
    """
    z = np.asarray(z, dtype=float)
    n = np.asarray(n, dtype=float)
    return 0.5 * np.log(rho / (n + rho)) + n * z * z / (2.0 * (n + rho))


def always_valid_p_value(z: ArrayLike, n: ArrayLike, rho: float) -> np.ndarray:
    """min(1, 1/Λ_n): P(it is ever ≤ α) ≤ α under H0 (Ville's inequality). Vectorized.

    Over a series of looks the running minimum is also valid (Johari et al. 2022); nan z gives 1.
    """
    log_lr = log_mixture_likelihood_ratio(z, n, rho)
    return np.where(np.isfinite(log_lr), np.exp(-np.maximum(log_lr, 0.0)), 1.0)


def _difference(control: SampleStats, variant: SampleStats) -> tuple[float, float]:
    """Difference of means and its unpooled standard error (√(s_v²/n_v + s_c²/n_c)); nan when undefined."""
    diff = variant.mean - control.mean
    if control.n < 2 or variant.n < 2:
        return diff, math.nan
    return diff, math.sqrt(variant.variance / variant.n + control.variance / control.n)


def _resolve_rho(rho: float | None, planned_n: float | None, alpha: float) -> float:
    if rho is not None:
        if not rho > 0:
            raise ValueError(f"rho must be positive; got {rho}")
        return float(rho)
    return optimal_rho(planned_n if planned_n is not None else DEFAULT_PLANNED_N, alpha)


def confidence_sequence(control: SampleStats, variant: SampleStats, alpha: float = 0.05,
                        rho: float | None = None, *, planned_n: float | None = None) -> AlwaysValidEstimate:
    """Always-valid (1 − α) interval and p-value for mean_variant − mean_control, from sufficient statistics.

    Method: asymptotic two-sided normal-mixture confidence sequence (Howard et al. 2021; Waudby-Smith
    et al. 2024) on the z-statistic of the difference with the unpooled standard error,
    time = total sample size n = n_c + n_v:

        diff ± se · √((n + ρ)/n · log((n + ρ)/(ρ α²))),    p = min(1, 1/Λ_n)  (mSPRT, Johari et al. 2022)

    The guarantee holds simultaneously over all looks for a ρ fixed before the data are seen:
    pass ``rho`` directly, or ``planned_n`` (the total sample size at which the interval should be
    tightest, usually the planned end); default tuned for ``DEFAULT_PLANNED_N``. Never re-tune ρ from
    the data being monitored. Assumes a stable allocation ratio and enough data for the CLT.

    The fields of ``control`` and ``variant`` may be numpy arrays of one shape (one entry per simulated
    experiment or look, as in :mod:`analysis.sufficient`); the estimate's numeric fields are then arrays
    of that shape, element-wise the same as the scalar call (an element without enough data has
    the interval (−inf, inf) and p = 1). ``rho`` and ``method`` stay single values.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1); got {alpha}")
    r = _resolve_rho(rho, planned_n, alpha)
    if any(np.ndim(f) > 0 for s in (control, variant) for f in (s.n, s.sum, s.sum_sq)):
        return _confidence_sequence_arrays(control, variant, alpha, r)
    diff, se = _difference(control, variant)
    if not se > 0:
        return AlwaysValidEstimate(diff, -math.inf, math.inf, 1.0, MIXTURE_METHOD + " (not enough data)", r)
    n = control.n + variant.n
    threshold = float(mixture_boundary(n, r, alpha))
    z = diff / se
    return AlwaysValidEstimate(
        abs_uplift=diff,
        ci_lo=diff - threshold * se,
        ci_hi=diff + threshold * se,
        p_value_always_valid=float(always_valid_p_value(z, n, r)),
        method=MIXTURE_METHOD,
        rho=r,
        statistic=z,
        threshold=threshold,
    )


def _confidence_sequence_arrays(control: SampleStats, variant: SampleStats, alpha: float, rho: float
                                ) -> AlwaysValidEstimate:
    """:func:`confidence_sequence` element-wise on array-valued statistics (the simulations' batch form)."""
    n_c, n_v = np.asarray(control.n, dtype=float), np.asarray(variant.n, dtype=float)
    diff = np.asarray(variant.mean, dtype=float) - np.asarray(control.mean, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(np.asarray(variant.variance, dtype=float) / n_v + np.asarray(control.variance, dtype=float) / n_c)
        ok = (n_c >= 2) & (n_v >= 2) & (se > 0)  # nan se compares False, as `not se > 0` in the scalar path
        n = n_c + n_v
        threshold = np.where(ok, mixture_boundary(n, rho, alpha), np.nan)
        z = np.where(ok, diff / se, np.nan)
        half = threshold * se
    return AlwaysValidEstimate(
        abs_uplift=diff,
        ci_lo=np.where(ok, diff - half, -np.inf),
        ci_hi=np.where(ok, diff + half, np.inf),
        p_value_always_valid=np.where(ok, always_valid_p_value(z, n, rho), 1.0),
        method=MIXTURE_METHOD,
        rho=rho,
        statistic=z,
        threshold=threshold,
    )


# --------------------------------------------------------------------------- decision


@dataclass(frozen=True)
class SequentialDecision:
    """Whether a result may be acted on at this look, and why.

    ``direction`` is +1 (variant better), −1 (variant worse) or 0. ``stop`` is True when the monitoring
    is over: a boundary was crossed, or the final planned look of a group-sequential design was reached.
    """

    may_act: bool
    reason: str
    method: str
    direction: int = 0
    statistic: float = math.nan
    threshold: float = math.nan
    stop: bool = False


def sequential_decision(control: SampleStats, variant: SampleStats, *, alpha: float = 0.05,
                        rho: float | None = None, planned_n: float | None = None,
                        design: GroupSequentialDesign | None = None, look: int | None = None
                        ) -> SequentialDecision:
    """May the variant − control difference be acted on now?

    Without ``design``: the always-valid rule — act when the (1 − α) confidence sequence excludes 0
    (equivalently the mSPRT p-value ≤ α); may be checked at any time, as often as wanted.
    With ``design`` and ``look`` (1-based): the group-sequential rule — act when |z| ≥ the look's
    boundary (two-sided, the design's α per side); only at the planned looks. z uses the unpooled
    standard error.
    """
    diff, se = _difference(control, variant)
    if design is not None:
        if look is None or not 1 <= look <= design.looks:
            raise ValueError(f"look must be between 1 and {design.looks} for this design; got {look}")
        if not se > 0:
            return SequentialDecision(False, "not enough data to compute a z-statistic", design.method)
        z = diff / se
        b = design.boundaries[look - 1]
        final = look == design.looks
        if abs(z) >= b:
            direction = 1 if z > 0 else -1
            word = "better" if direction > 0 else "worse"
            return SequentialDecision(True, f"look {look}/{design.looks}: |z| = {abs(z):.3f} crossed the boundary "
                                      f"{b:.3f}; the variant is significantly {word} than the control",
                                      design.method, direction, z, b, True)
        if final:
            reason = (f"final look {look}/{design.looks}: |z| = {abs(z):.3f} < {b:.3f}; no significant "
                      f"difference at the planned alpha - stop, do not roll out on this metric")
        else:
            reason = (f"look {look}/{design.looks}: |z| = {abs(z):.3f} < boundary {b:.3f}; continue to the "
                      f"next planned look")
        return SequentialDecision(False, reason, design.method, 0, z, b, final)
    estimate = confidence_sequence(control, variant, alpha, rho, planned_n=planned_n)
    if not se > 0:
        return SequentialDecision(False, "not enough data to compute a confidence sequence", estimate.method)
    if estimate.ci_lo > 0 or estimate.ci_hi < 0:
        direction = 1 if estimate.ci_lo > 0 else -1
        word = "better" if direction > 0 else "worse"
        return SequentialDecision(True, f"the {1 - alpha:.0%} confidence sequence [{estimate.ci_lo:.4g}, "
                                  f"{estimate.ci_hi:.4g}] excludes 0 (always-valid p = "
                                  f"{estimate.p_value_always_valid:.3g}); the variant is {word} than the control",
                                  estimate.method, direction, estimate.statistic, estimate.threshold, True)
    return SequentialDecision(False, f"the {1 - alpha:.0%} confidence sequence [{estimate.ci_lo:.4g}, "
                              f"{estimate.ci_hi:.4g}] contains 0 (always-valid p = "
                              f"{estimate.p_value_always_valid:.3g}); keep collecting data",
                              estimate.method, 0, estimate.statistic, estimate.threshold, False)

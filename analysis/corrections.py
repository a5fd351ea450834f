"""Multiple-testing control across variants × metrics (× segments).

Eight variants and six metrics are 48 chances to be fooled; adjusted p-values keep the
family-wise error (Holm 1979, the default; Bonferroni) or the false discovery rate
(Benjamini & Hochberg 1995) at α. The step-up/step-down formulas are a few numpy lines, checked
against statsmodels' ``multipletests`` in the tests; ``multipletests`` itself runs a full garbage
collection on every call (about 60 ms), more than the whole rest of a report's statistics.

Adjusted p-values say *whether*; :func:`holm_compatible_bounds` and :func:`holm_compatible_intervals`
say *how much* with bounds that agree with Holm's decisions (Strassburger & Bretz 2008): the
simultaneous intervals of the family, not α/m Bonferroni intervals that may contradict a Holm rejection.

References: S. Holm (1979), A simple sequentially rejective multiple test procedure, Scand. J. Stat.
6:65-70. K. Strassburger, F. Bretz (2008), Compatible simultaneous lower confidence bounds for the
Holm procedure and other Bonferroni-based closed tests, Stat. Med. 27:4914-4927. G. Guilbaud (2008),
Simultaneous confidence regions corresponding to Holm's step-down procedure and other closed-testing
procedures, Biometrical J. 50:678-692.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from analysis.distributions import norm_isf, norm_sf

CORRECTIONS = ("holm", "bh", "bonferroni", "none")


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down: max over j ≤ i of (m − j + 1)·p₍ⱼ₎, capped at 1."""
    m = len(p)
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg step-up: min over j ≥ i of m/j·p₍ⱼ₎, capped at 1."""
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = m / np.arange(1, m + 1) * p[order]
    stepped = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


_METHODS = {"holm": _holm, "bh": _bh, "bonferroni": lambda p: np.minimum(len(p) * p, 1.0)}


def adjust_p_values(p_values: Sequence[float], method: str = "holm") -> list[float]:
    """Adjusted p-values in the input order; nan (an undefined test) stays nan and is not counted."""
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; choose one of {', '.join(CORRECTIONS)}")
    p = np.asarray(p_values, dtype=float)
    adjusted = p.copy()
    finite = np.isfinite(p)
    if method != "none" and finite.any():
        adjusted[finite] = _METHODS[method](p[finite])
    return [float(x) if math.isfinite(x) else math.nan for x in adjusted]


def holm_compatible_bounds(estimates: Sequence[float], standard_errors: Sequence[float],
                           alpha: float = 0.05) -> np.ndarray:
    """Simultaneous one-sided lower confidence bounds compatible with Holm's step-down test of
    H_i: δ_i ≤ 0 on normal statistics z_i = δ̂_i / se_i (Strassburger & Bretz 2008, Guilbaud 2008).

    With R the hypotheses Holm rejects at α (one-sided p_i = Φ̄(z_i), rejected when the Holm-adjusted
    p < α, as in :func:`adjust_p_values`) and m the number of defined hypotheses:

    - i not rejected: L_i = δ̂_i − z_{α/(m − |R|)}·se_i, the Bonferroni bound over the hypotheses
      still open, and L_i < 0;
    - i rejected, some hypothesis not: L_i = 0, read as δ_i > 0 (the bound cannot say more);
    - every hypothesis rejected: L_i = max(0, δ̂_i − z_{α/m}·se_i).

    So L_i ≥ 0 exactly when Holm rejects H_i, L_i > 0 only when Holm rejects all of them, and
    P(δ_i > L_i for every i) ≥ 1 − α. nan estimates or standard errors give nan and are not
    counted in m (as nan p-values in :func:`adjust_p_values`).
    """
    est = np.asarray(estimates, dtype=float)
    se = np.asarray(standard_errors, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = norm_sf(est / se)
    defined = np.isfinite(est) & np.isfinite(se) & (se >= 0) & np.isfinite(p)
    bounds = np.full(est.shape, np.nan)
    m = int(defined.sum())
    if m == 0:
        return bounds
    rejected = np.zeros(est.shape, dtype=bool)
    rejected[defined] = _holm(p[defined]) < alpha
    k = int(rejected.sum())
    if k == m:
        bounds[defined] = np.maximum(0.0, est[defined] - norm_isf(alpha / m) * se[defined])
    else:
        bounds[rejected] = 0.0
        open_ = defined & ~rejected
        bounds[open_] = est[open_] - norm_isf(alpha / (m - k)) * se[open_]
    return bounds


def holm_compatible_intervals(estimates: Sequence[float], standard_errors: Sequence[float],
                              alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Simultaneous two-sided intervals (lo, hi) from two Holm-compatible one-sided families, each at
    α/2: lo from :func:`holm_compatible_bounds` on H_i: δ_i ≤ 0, hi mirrored on H_i: δ_i ≥ 0.

    By the union bound P(lo_i < δ_i < hi_i for every i) ≥ 1 − α. lo_i ≥ 0 exactly when Holm at α/2
    rejects δ_i ≤ 0 on the one-sided p-values Φ̄(z_i) (hi_i ≤ 0 likewise for Φ(z_i)). Against Holm at α
    on the two-sided p-values 2Φ̄(|z_i|): an interval excluding 0 implies that Holm rejects H_i: δ_i = 0
    (in that direction); when no estimate is negative (or none is positive) the two coincide, and
    otherwise two-sided Holm may reject a few more, since it pools both directions in one step-down.
    """
    est = np.asarray(estimates, dtype=float)
    lo = holm_compatible_bounds(est, standard_errors, alpha / 2)
    hi = -holm_compatible_bounds(-est, standard_errors, alpha / 2)
    return lo, hi


def interval_alpha(adjusted: list[float], alpha: float, correction: str) -> float:
    """The level of intervals that agree with the family's decisions where the method allows:
    Bonferroni and Holm: simultaneous Bonferroni intervals at α/m (an interval excluding 0 implies the
    rejection; Holm may reject more); Benjamini-Hochberg: false-coverage-rate intervals at α·R/m for R
    rejections (Benjamini & Yekutieli 2005); no correction: α."""
    m = sum(1 for p in adjusted if math.isfinite(p))
    if correction == "none" or m == 0:
        return alpha
    if correction == "bh":
        rejected = sum(1 for p in adjusted if math.isfinite(p) and p < alpha)
        return alpha * max(rejected, 1) / m
    return alpha / m

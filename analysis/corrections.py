"""Multiple-testing control across variants × metrics (× segments).

Eight variants and six metrics are 48 chances to be fooled; adjusted p-values keep the
family-wise error (Holm 1979, the default; Bonferroni) or the false discovery rate
(Benjamini & Hochberg 1995) at α. The step-up/step-down formulas are a few numpy lines, checked
against statsmodels' ``multipletests`` in the tests; ``multipletests`` itself runs a full garbage
collection on every call (about 60 ms), more than the whole rest of a report's statistics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

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

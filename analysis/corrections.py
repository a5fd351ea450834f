"""Multiple-testing control across variants × metrics (× segments).

Eight variants and six metrics are 48 chances to be fooled; adjusted p-values keep the
family-wise error (Holm 1979, the default; Bonferroni) or the false discovery rate
(Benjamini & Hochberg 1995) at α. Computed by statsmodels' ``multipletests``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from statsmodels.stats.multitest import multipletests

CORRECTIONS = ("holm", "bh", "bonferroni", "none")
_STATSMODELS_METHOD = {"holm": "holm", "bh": "fdr_bh", "bonferroni": "bonferroni"}


def adjust_p_values(p_values: Sequence[float], method: str = "holm") -> list[float]:
    """Adjusted p-values in the input order; nan (an undefined test) stays nan and is not counted."""
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; choose one of {', '.join(CORRECTIONS)}")
    p = np.asarray(p_values, dtype=float)
    adjusted = p.copy()
    finite = np.isfinite(p)
    if method != "none" and finite.any():
        adjusted[finite] = multipletests(p[finite], method=_STATSMODELS_METHOD[method])[1]
    return [float(x) if math.isfinite(x) else math.nan for x in adjusted]

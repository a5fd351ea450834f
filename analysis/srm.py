"""Sample ratio mismatch: is the observed split the one the design asked for?

A split that is off (a bug in assignment, in logging, in the import) biases every comparison,
so a mismatch blocks any decision. Pearson's χ² goodness-of-fit test, flagged at p < 0.001
(the threshold used by Fabijan et al. 2019, "Diagnosing Sample Ratio Mismatch").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analysis.distributions import chi2_sf

SRM_THRESHOLD = 0.001


@dataclass(frozen=True)
class SrmResult:
    observed: list[int]
    expected_shares: list[float]
    chi2: float
    p_value: float
    threshold: float
    mismatch: bool
    reason: str = ""  # a mismatch flagged for another reason than the test (an arm of a handful of customers)


def srm_check(observed: Sequence[int], shares: Sequence[float], threshold: float = SRM_THRESHOLD) -> SrmResult:
    """χ² goodness of fit of ``observed`` counts against designed ``shares`` (normalised to sum 1)."""
    counts = np.asarray(observed, dtype=float)
    expected_shares = np.asarray(shares, dtype=float) / float(np.sum(shares))
    total = counts.sum()
    if total == 0:
        chi2, p = math.nan, math.nan
    else:
        expected = expected_shares * total
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        p = float(chi2_sf(chi2, df=len(counts) - 1))
    return SrmResult(
        observed=[int(c) for c in observed],
        expected_shares=[float(s) for s in expected_shares],
        chi2=chi2,
        p_value=p,
        threshold=threshold,
        mismatch=bool(p < threshold) if math.isfinite(p) else False,
    )

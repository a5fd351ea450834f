"""Sufficient statistics: what the database hands to the statistics, per variant and metric.

A mean, its variance and every test below need only n, Σx and Σx², so SQL computes those three
numbers for each arm and Python never sees a customer row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class SampleStats:
    """n, Σx and Σx² of one metric in one arm."""

    n: int
    sum: float
    sum_sq: float

    @classmethod
    def from_values(cls, values: ArrayLike) -> SampleStats:
        x = np.asarray(values, dtype=float)
        return cls(int(x.size), float(x.sum()), float((x * x).sum()))

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Sample variance (ddof = 1), clipped at 0 against rounding in Σx² − (Σx)²/n."""
        if self.n < 2:
            return math.nan
        return max((self.sum_sq - self.sum * self.sum / self.n) / (self.n - 1), 0.0)

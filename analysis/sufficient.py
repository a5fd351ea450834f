"""Sufficient statistics: what the database hands to the statistics, per variant and metric.

A mean, its variance and every test below need only n, Σx and Σx², so SQL computes those three
numbers for each arm and Python never sees a customer row.

The fields are normally scalars. They may also be numpy arrays of one shape (one entry per
simulated experiment); ``mean``, ``variance`` and the tests in :mod:`analysis.frequentist` then work
element-wise, which is how the simulations in the tests run thousands of experiments at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


def _scalar_or_array(x: np.ndarray) -> float | np.ndarray:
    return float(x) if np.ndim(x) == 0 else x


@dataclass(frozen=True)
class SampleStats:
    """n, Σx and Σx² (and optionally Σx³) of one metric in one arm."""

    n: int
    sum: float
    sum_sq: float
    sum_cu: float | None = None  # Σx³, for the skewness of revenue-like metrics (optional)

    @classmethod
    def from_values(cls, values: ArrayLike, axis: int | None = None) -> SampleStats:
        """From raw values; with ``axis``, one statistic per slice along the other axes (arrays)."""
        x = np.asarray(values, dtype=float)
        if axis is None:
            return cls(int(x.size), float(x.sum()), float((x * x).sum()), float((x * x * x).sum()))
        return cls(np.full(np.delete(x.shape, axis), x.shape[axis]), x.sum(axis=axis), (x * x).sum(axis=axis),
                   (x * x * x).sum(axis=axis))

    @property
    def third_moment(self) -> float:
        """Central third moment E[(x − mean)³] (the 1/n form); nan without Σx³."""
        if self.sum_cu is None:
            return float("nan")
        n = np.asarray(self.n, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            m = np.divide(self.sum, n)
            mu3 = np.asarray(self.sum_cu) / n - 3 * m * np.asarray(self.sum_sq) / n + 2 * m ** 3
        return _scalar_or_array(mu3)

    @property
    def mean(self) -> float:
        """Σx / n; nan when n = 0."""
        with np.errstate(divide="ignore", invalid="ignore"):
            m = np.where(np.asarray(self.n) > 0, np.divide(self.sum, self.n, dtype=float), np.nan)
        return _scalar_or_array(m)

    @property
    def variance(self) -> float:
        """Sample variance (ddof = 1), clipped at 0 against rounding in Σx² − (Σx)²/n; nan when n < 2."""
        n = np.asarray(self.n, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.maximum((self.sum_sq - np.square(self.sum) / n) / (n - 1), 0.0)
        return _scalar_or_array(np.where(n >= 2, v, np.nan))

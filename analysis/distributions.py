"""Normal, Student-t and chi-square distribution functions, without importing ``scipy.stats``.

``scipy.stats`` takes most of a second to import (it pulls in scipy.optimize, scipy.integrate,
scipy.sparse…), which the ``recall`` CLI pays on every start although the report needs only these
few functions. Each one calls the ``scipy.special`` function that ``scipy.stats`` (1.17) itself
calls, with the same handling of the edges (q = 0 or 1, x outside the support, df ≤ 0 or nan), so
the numbers are the same; tests/test_distributions.py checks that against ``scipy.stats``.

Arguments are converted to float64 and broadcast as in numpy; a scalar call returns a numpy float,
an array call an array.

``scipy.special`` itself is imported by the first call, not with this module: its import (SciPy
1.17's array-API layer loads numpy.testing and numpy.f2py) is about a sixth of ``recall report``'s
start-up, which a report read back from a stored run (analysis.runs) or only rendered never needs.
"""

from __future__ import annotations

import functools
import math
from types import ModuleType

import numpy as np
from numpy.typing import ArrayLike

Result = float | np.ndarray  # numpy float64 (a float) for scalar arguments, else an array

_SQRT_2PI = math.sqrt(2 * math.pi)


@functools.cache
def _special() -> ModuleType:
    from scipy import special

    return special


def _floats(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _result(x: np.ndarray) -> Result:
    """A 0-d array as a numpy scalar, as scipy.stats returns it."""
    return x[()] if x.ndim == 0 else x


# --------------------------------------------------------------------------- standard normal


def norm_pdf(x: ArrayLike) -> Result:
    x = _floats(x)
    return np.exp(-x**2 / 2.0) / _SQRT_2PI


def norm_cdf(x: ArrayLike) -> Result:
    return _special().ndtr(_floats(x))


def norm_sf(x: ArrayLike) -> Result:
    """1 − Φ(x), accurate in the upper tail (no underflow to 0 until x ≈ 38)."""
    return _special().ndtr(-_floats(x))


def norm_ppf(q: ArrayLike) -> Result:
    return _special().ndtri(_floats(q))


def norm_isf(q: ArrayLike) -> Result:
    """The z with 1 − Φ(z) = q, e.g. ``norm_isf(alpha / 2)`` for a two-sided critical value."""
    return -_special().ndtri(_floats(q))


# --------------------------------------------------------------------------- Student's t


def t_cdf(x: ArrayLike, df: ArrayLike) -> Result:
    return _special().stdtr(_floats(df), _floats(x))


def t_sf(x: ArrayLike, df: ArrayLike) -> Result:
    return _special().stdtr(_floats(df), -_floats(x))


def t_isf(q: ArrayLike, df: ArrayLike) -> Result:
    """The t with P(T > t) = q. ``−stdtrit`` is −inf at q = 0, where scipy.stats (rightly) gives +inf."""
    q, df = _floats(q), _floats(df)
    x = np.where(q == 0, np.inf, -_special().stdtrit(df, q))
    return _result(np.where(df > 0, x, np.nan))


# --------------------------------------------------------------------------- chi-square


def chi2_sf(x: ArrayLike, df: ArrayLike) -> Result:
    """P(χ²_df > x). ``chdtrc`` gives nan below 0 and a number at df = 0; scipy.stats gives 1 and nan."""
    x, df = _floats(x), _floats(df)
    p = np.where(x <= 0, 1.0, _special().chdtrc(df, x))
    return _result(np.where(df > 0, p, np.nan))

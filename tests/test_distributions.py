"""analysis.distributions gives exactly scipy.stats' numbers (it calls the same scipy.special
functions), at the edges too: tails, q = 0 and 1, x outside the support, bad degrees of freedom."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from analysis import distributions as d

INF, NAN = np.inf, np.nan

X = np.array([-INF, -40.0, -38.5, -12.0, -1.96, -1.0, -1e-300, -0.0, 0.0, 1e-300, 0.3, 1.0, 1.6448536269514722,
              5.0, 8.3, 37.5, 38.5, 40.0, 1e300, INF, NAN])
Q = np.array([0.0, 5e-324, 1e-300, 1e-200, 1e-15, 1e-8, 0.0005, 0.025, 0.3, 0.5, 0.7, 0.975, 1 - 1e-8,
              1 - 1e-15, np.nextafter(1.0, 0.0), 1.0, -0.1, 1.1, NAN])
T_DF = np.array([0.05, 0.5, 1.0, 2.0, 3.7, 10.0, 30.0, 1e3, 1e6, 1e12, INF, 0.0, -1.0, NAN])
CHI2_X = np.array([-INF, -1.0, -0.0, 0.0, 1e-300, 1e-5, 0.5, 1.0, 3.84, 10.8, 100.0, 1e4, 1e6, INF, NAN])
CHI2_DF = np.array([0.5, 1.0, 2.0, 3.0, 7.0, 100.0, 1e5, 1e9, 0.0, -2.0, NAN])


def assert_same(ours: object, theirs: object) -> None:
    """Equal values (nan where scipy has nan), and a scalar where scipy returns a scalar."""
    assert type(ours) is type(theirs)
    assert np.shape(ours) == np.shape(theirs)
    np.testing.assert_array_equal(ours, theirs, strict=True)


def quietly(f: Callable[..., object], *args: object) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy.stats may warn where it returns nan
        return f(*args)


NORMAL = [
    (d.norm_pdf, stats.norm.pdf, X),
    (d.norm_cdf, stats.norm.cdf, X),
    (d.norm_sf, stats.norm.sf, X),
    (d.norm_ppf, stats.norm.ppf, Q),
    (d.norm_isf, stats.norm.isf, Q),
]
WITH_DF = [
    (d.t_cdf, stats.t.cdf, X, T_DF),
    (d.t_sf, stats.t.sf, X, T_DF),
    (d.t_isf, stats.t.isf, Q, T_DF),
    (d.chi2_sf, stats.chi2.sf, CHI2_X, CHI2_DF),
]


@pytest.mark.filterwarnings("ignore:overflow encountered in square:RuntimeWarning")  # pdf(1e300), as scipy
@pytest.mark.parametrize(("ours", "scipy_", "points"), NORMAL, ids=lambda x: getattr(x, "__name__", ""))
def test_normal_functions_equal_scipy_stats(ours, scipy_, points):
    assert_same(ours(points), quietly(scipy_, points))
    assert_same(ours(points.reshape(-1, 1)), quietly(scipy_, points.reshape(-1, 1)))
    for x in points:
        assert_same(ours(float(x)), quietly(scipy_, float(x)))
        assert_same(ours(x), quietly(scipy_, x))


@pytest.mark.parametrize(("ours", "scipy_", "points", "dfs"), WITH_DF, ids=lambda x: getattr(x, "__name__", ""))
def test_functions_with_degrees_of_freedom_equal_scipy_stats(ours, scipy_, points, dfs):
    grid_x, grid_df = points[:, None], dfs[None, :]
    assert_same(ours(grid_x, grid_df), quietly(scipy_, grid_x, grid_df))
    for df in dfs:
        assert_same(ours(points, df), quietly(scipy_, points, df))
        for x in points:
            assert_same(ours(float(x), float(df)), quietly(scipy_, float(x), float(df)))
    for x in points:
        assert_same(ours(x, dfs), quietly(scipy_, x, dfs))


def test_integer_arguments():
    assert_same(d.norm_sf(np.arange(-3, 4)), stats.norm.sf(np.arange(-3, 4)))
    assert_same(d.norm_pdf(np.arange(-3, 4)), stats.norm.pdf(np.arange(-3, 4)))
    assert_same(d.t_sf(2, 3), stats.t.sf(2, 3))
    assert_same(d.t_isf(np.array([0, 1]), 3), stats.t.isf(np.array([0, 1]), 3))
    assert_same(d.chi2_sf(np.array([0, 1, 5]), 2), stats.chi2.sf(np.array([0, 1, 5]), 2))


def test_random_points_equal_scipy_stats():
    rng = np.random.default_rng(20240611)
    x = np.concatenate([rng.normal(0, 3, 2000), rng.uniform(-40, 40, 2000)])
    q = np.concatenate([rng.uniform(0, 1, 2000), 10.0 ** rng.uniform(-300, 0, 2000)])
    df = np.concatenate([10.0 ** rng.uniform(-1, 7, 2000), rng.integers(1, 50, 2000)])
    chi = np.abs(x) * 10.0 ** rng.uniform(-2, 3, x.size)
    for ours, theirs in [(d.norm_pdf(x), stats.norm.pdf(x)), (d.norm_cdf(x), stats.norm.cdf(x)),
                         (d.norm_sf(x), stats.norm.sf(x)), (d.norm_ppf(q), stats.norm.ppf(q)),
                         (d.norm_isf(q), stats.norm.isf(q)), (d.t_cdf(x, df), stats.t.cdf(x, df)),
                         (d.t_sf(x, df), stats.t.sf(x, df)), (d.t_isf(q, df), stats.t.isf(q, df)),
                         (d.chi2_sf(chi, df), stats.chi2.sf(chi, df))]:
        assert_same(ours, theirs)



def test_report_path_does_not_import_scipy_stats():
    """The point of analysis.distributions: `recall report` starts without scipy.stats (~0.8 s)."""
    heavy = ("scipy.stats", "scipy.optimize", "scipy.integrate")
    code = f"import sys, analysis.report; print([m for m in sys.modules if m.startswith({heavy!r})])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.stdout.strip() == "[]"


def test_the_verdicts_sample_size_does_not_import_statsmodels():
    """The report's verdict plans the customers still needed (analysis.power.sample_size_proportions):
    solved without statsmodels, whose import (scipy.stats under it) cost a second of every report."""
    heavy = ("statsmodels", "scipy.stats", "scipy.optimize")
    code = ("import sys, analysis.report\nfrom analysis.power import sample_size_proportions\n"
            "plan = sample_size_proportions(0.08, mde_abs=0.01, control_share=0.1, variants=3)\n"
            f"print(plan.n_control > 0, [m for m in sys.modules if m.startswith({heavy!r})])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.stdout.strip() == "True []"

"""Small holdouts and skewed revenue: Welch's tails drift, capping + Hall-Johnson holds the level.

The scenario of the statistics issue: an A/A test with a 90/10 split where 5% of customers buy,
with lognormal order values. Welch's one-sided "variant wins" rate is far above 0.025; the report's
method (cap at the 90th percentile of positive values, computed in SQL, then Welch with Hall's
monotone form of Johnson's skewness correction) keeps both tails within ±3 Monte Carlo SE of 0.025.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from analysis.aggregates import capped_statistics
from analysis.frequentist import skew_corrected_welch, skewness_lambda, welch
from analysis.report import CAP_QUANTILE, SKEW_THRESHOLD, build_report
from analysis.sufficient import SampleStats
from experiments.db import session_scope
from experiments.access import cli_actor
from experiments.importer import import_results
from experiments.store import get_experiment

R, N_VARIANT, N_CONTROL = 10_000, 3_600, 400


def spend(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return (rng.random(shape) < 0.05) * rng.lognormal(4, 1.2, shape)


def positive_percentile(values: np.ndarray, q: float) -> np.ndarray:
    """Row-wise nearest-rank quantile of the positive values (what the SQL computes)."""
    positive = np.where(values > 0, values, np.inf)
    ranked = np.sort(positive, axis=1)
    k = np.maximum(np.ceil(q * (values > 0).sum(axis=1)).astype(int) - 1, 0)
    return ranked[np.arange(len(values)), k]


@pytest.fixture(scope="module")
def aa() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20261123)
    return spend(rng, (R, N_VARIANT)), spend(rng, (R, N_CONTROL))


def tails(p: np.ndarray, statistic: np.ndarray) -> tuple[float, float]:
    significant = p < 0.05
    return float(np.mean(significant & (statistic > 0))), float(np.mean(significant & (statistic < 0)))


def test_welch_fails_on_a_small_skewed_holdout(aa) -> None:  # noqa: ANN001
    variant, control = aa
    t, p, _ = welch(SampleStats.from_values(control, axis=1), SampleStats.from_values(variant, axis=1))
    variant_wins, control_wins = tails(p, t)
    assert variant_wins > 0.08 and control_wins < 0.01
    lam = skewness_lambda(SampleStats.from_values(control, axis=1), SampleStats.from_values(variant, axis=1))
    assert np.median(np.abs(lam)) > SKEW_THRESHOLD  # the case the report detects


def test_capping_and_skewness_correction_hold_the_level_per_tail(aa) -> None:  # noqa: ANN001
    variant, control = aa
    cap = positive_percentile(np.concatenate([variant, control], axis=1), CAP_QUANTILE)[:, None]
    g, p, _ = skew_corrected_welch(SampleStats.from_values(np.minimum(control, cap), axis=1),
                                   SampleStats.from_values(np.minimum(variant, cap), axis=1))
    band = 3 * math.sqrt(0.025 * 0.975 / R)
    for rate in tails(p, g):
        assert abs(rate - 0.025) < band, rate


def test_the_correction_is_welch_when_there_is_no_skew() -> None:
    def unskewed(n: int, total: float, total_sq: float) -> SampleStats:
        # Σx³ chosen so that the third central moment is exactly 0
        mean = total / n
        return SampleStats(n, total, total_sq, 3 * mean * total_sq - 2 * n * mean ** 3)

    control, variant = unskewed(500, 240.0, 610.0), unskewed(1000, 530.0, 1290.0)
    assert float(skewness_lambda(control, variant)) == pytest.approx(0, abs=1e-12)
    t, p, ci = welch(control, variant)
    g, p_corrected, ci_corrected = skew_corrected_welch(control, variant)
    assert float(g) == pytest.approx(float(t)) and float(p_corrected) == pytest.approx(float(p))
    assert (float(ci_corrected[0]), float(ci_corrected[1])) == pytest.approx((float(ci[0]), float(ci[1])))


def test_sql_caps_match_numpy_and_the_report_switches_method(engine, tmp_path: Path) -> None:  # noqa: ANN001
    rng = np.random.default_rng(5)
    n = 4000
    arm = np.where(rng.random(n) < 0.1, "holdout", "sms")
    values = np.round(spend(rng, (1, n))[0], 2)
    path = tmp_path / "skewed.csv"
    path.write_text("arm,returned,revenue\n" + "".join(
        f"{a},{int(v > 0)},{v:.2f}\n" for a, v in zip(arm, values, strict=True)), encoding="utf-8")
    import_results(engine, path, actor=cli_actor(), experiment="skewed", variant_column="arm", control="holdout",
                   metrics=["returned", "revenue"], shares={"holdout": 0.1, "sms": 0.9})
    with session_scope(engine) as session:
        experiment = get_experiment(session, "skewed")
        cap, stats = capped_statistics(session.connection(), experiment, "revenue", CAP_QUANTILE)
        ids = {v.name: v.id for v in experiment.variants}
    expected_cap = positive_percentile(values[None, :], CAP_QUANTILE)[0]
    assert cap == pytest.approx(expected_cap)
    for name in ("holdout", "sms"):
        capped = np.minimum(values[arm == name], expected_cap)
        s = stats[ids[name]]
        assert (s.n, s.sum, s.sum_sq, s.sum_cu) == pytest.approx(
            (len(capped), capped.sum(), (capped ** 2).sum(), (capped ** 3).sum()), rel=1e-9)

    report = build_report(engine, "skewed")
    revenue = report.comparison("sms", "revenue")
    assert "capped at the 90% percentile of positive values" in revenue.method and "λ =" in revenue.method
    assert revenue.control_mean == pytest.approx(np.minimum(values[arm == "holdout"], expected_cap).mean())
    assert report.comparison("sms", "returned").method.startswith("two-proportion")


def test_capping_as_the_analysts_option_equals_capping_the_raw_file(hillstrom_path: Path, engine) -> None:  # noqa: ANN001
    """``cap=0.99``: Hillstrom's spend capped at the 99% nearest-rank percentile of positive spend,
    tested as capped values (skew-corrected only if still skewed); equal to the same from the raw file."""
    import pandas as pd

    from analysis.frequentist import pooled_skewness_lambda

    import_results(engine, hillstrom_path, actor=cli_actor(), experiment="hillstrom", variant_column="segment", control="No E-Mail",
                   metrics=["visit", "conversion", "spend"])
    report = build_report(engine, "hillstrom", cap=0.99)
    raw = pd.read_csv(hillstrom_path)
    cap = float(positive_percentile(raw.spend.to_numpy()[None, :], 0.99)[0])
    capped = raw.spend.clip(upper=cap)
    control = SampleStats.from_values(capped[raw.segment == "No E-Mail"])
    for variant in ("Mens E-Mail", "Womens E-Mail"):
        treated = SampleStats.from_values(capped[raw.segment == variant])
        corrected = abs(float(pooled_skewness_lambda(control, treated))) >= SKEW_THRESHOLD
        _, p, (lo, hi) = (skew_corrected_welch if corrected else welch)(control, treated)
        c = report.comparison(variant, "spend")
        assert "as requested" in c.method and f"{cap:,.2f}" in c.method
        assert c.p_value == pytest.approx(float(p), rel=1e-8)
        assert c.abs_ci == pytest.approx((float(lo), float(hi)), rel=1e-8)
    assert report.comparison("Mens E-Mail", "visit").method == build_report(engine, "hillstrom").comparison(
        "Mens E-Mail", "visit").method  # rates are never capped
    with pytest.raises(ValueError, match="quantile"):
        build_report(engine, "hillstrom", cap=1.5)

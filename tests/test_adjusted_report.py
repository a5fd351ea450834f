"""--cuped and --bayesian in the report: database sums feed the same statistics as raw rows would."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine

from analysis.aggregates import covariate_statistics
from analysis.bayesian import beta_binomial
from analysis.cuped import CovariateStats, cuped
from analysis.report import build_report
from analysis.sufficient import SampleStats
from experiments.db import session_scope
from experiments.access import cli_actor
from experiments.importer import import_results
from experiments.store import get_experiment


@pytest.fixture
def hillstrom(engine: Engine, hillstrom_path) -> Engine:  # noqa: ANN001
    import_results(engine, hillstrom_path, experiment="hillstrom", variant_column="segment", control="No E-Mail",
                   metrics=["visit", "spend"], covariates=["history", "recency"], actor=cli_actor())
    return engine


def test_covariate_sums_from_sql_equal_numpy(hillstrom: Engine, hillstrom_path) -> None:  # noqa: ANN001
    frame = pd.read_csv(hillstrom_path)
    with session_scope(hillstrom) as session:
        experiment = get_experiment(session, "hillstrom")
        stats = covariate_statistics(session.connection(), experiment, "spend", ["history", "recency"])
        names = {v.id: v.name for v in experiment.variants}
    for variant_id, got in stats.items():
        rows = frame[frame.segment == names[variant_id]]
        expected = CovariateStats.from_values(rows.spend.to_numpy(), rows[["history", "recency"]].to_numpy())
        assert got.n == expected.n
        for field in ("sum_y", "sum_y2", "sum_x", "sum_x2", "sum_xy"):
            assert np.asarray(getattr(got, field)) == pytest.approx(np.asarray(getattr(expected, field)), rel=1e-9)


def test_report_cuped_and_bayesian(hillstrom: Engine, hillstrom_path) -> None:  # noqa: ANN001
    frame = pd.read_csv(hillstrom_path)
    report = build_report(hillstrom, "hillstrom", cuped=True, bayesian=True)
    mens = next(a for a in report.cuped if a.variant == "Mens E-Mail" and a.metric == "spend")
    rows = {s: frame[frame.segment == s] for s in ("Mens E-Mail", "No E-Mail")}
    expected = cuped(*(CovariateStats.from_values(rows[s].spend.to_numpy(), rows[s][["history", "recency"]].to_numpy())
                       for s in ("No E-Mail", "Mens E-Mail")))
    assert mens.abs_uplift == pytest.approx(float(expected.abs_uplift), rel=1e-9)
    assert 0 <= mens.variance_reduction < 0.03  # small on Hillstrom: no more than the data gives
    visit = next(b for b in report.bayesian if b.variant == "Womens E-Mail" and b.metric == "visit")
    exact = beta_binomial(SampleStats.from_values(rows["No E-Mail"].visit.to_numpy()),
                          SampleStats.from_values(frame[frame.segment == "Womens E-Mail"].visit.to_numpy()))
    assert visit.chance_to_beat_control == pytest.approx(exact.chance_to_beat_control)
    assert report.to_dict()["cuped"] and report.to_dict()["bayesian"]
    assert build_report(hillstrom, "hillstrom").cuped == []  # only when asked


def test_designed_experiments_adjust_for_spend_and_orders_before(engine: Engine) -> None:
    from experiments.assignment import assign
    from tests.helpers import AS_OF, add_customers, example_spec, store_spec

    add_customers(engine, [f"C{i:03d}" for i in range(300)])
    store_spec(engine, example_spec())
    assign(engine, "winback-coupon-2026-12", as_of=AS_OF)
    report = build_report(engine, "winback-coupon-2026-12", cuped=True)
    assert {a.covariates[0] for a in report.cuped} == {"spend_before"}
    assert {a.metric for a in report.cuped} >= {"returned", "revenue"}

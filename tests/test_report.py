"""The significance report end to end: database aggregates → statistics → one Report.

The Hillstrom numbers are recomputed here independently, from the raw file with pandas, statsmodels
and scipy; the report gets them from SQL sufficient statistics. They must agree.
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sqlalchemy import Engine, insert
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from analysis.report import build_report
from experiments.assignment import assign
from experiments.db import session_scope
from experiments.models import Assignment, Event, EventType, Send
from experiments.store import get_experiment
from tests.helpers import AS_OF, add_customers, example_spec, store_spec

CONTROL = "No E-Mail"
METRICS = ["visit", "conversion", "spend"]


@pytest.fixture(scope="module")
def hillstrom_frame(hillstrom_path: Path) -> pd.DataFrame:
    return pd.read_csv(hillstrom_path)


def test_hillstrom_arms_and_srm(hillstrom_report, hillstrom_frame: pd.DataFrame) -> None:  # noqa: ANN001
    report = hillstrom_report
    assert report.control == CONTROL
    sizes = hillstrom_frame["segment"].value_counts()
    assert {v.name: v.n for v in report.variants} == sizes.to_dict()
    assert [v.name for v in report.variants if v.is_control] == [CONTROL]
    observed = [v.n for v in report.variants]
    chi2, p = stats.chisquare(observed)
    assert report.srm.chi2 == pytest.approx(chi2, rel=1e-9)
    assert report.srm.p_value == pytest.approx(p, rel=1e-9)
    assert report.srm.chi2 == pytest.approx(0.2025, abs=1e-4)
    assert not report.srm.mismatch


@pytest.mark.parametrize("variant", ["Mens E-Mail", "Womens E-Mail"])
@pytest.mark.parametrize("metric", ["visit", "conversion"])
def test_hillstrom_binary_metrics_match_statsmodels(hillstrom_report, hillstrom_frame, variant, metric) -> None:  # noqa: ANN001
    treated = hillstrom_frame.loc[hillstrom_frame["segment"] == variant, metric]
    control = hillstrom_frame.loc[hillstrom_frame["segment"] == CONTROL, metric]
    c = hillstrom_report.comparison(variant, metric)
    assert c.kind == "binary"
    assert (c.n, c.control_n) == (len(treated), len(control))
    assert c.control_mean == pytest.approx(control.mean(), rel=1e-12)
    assert c.variant_mean == pytest.approx(treated.mean(), rel=1e-12)
    _, p = proportions_ztest([treated.sum(), control.sum()], [len(treated), len(control)])
    assert c.p_value == pytest.approx(p, rel=1e-6)
    lo, hi = confint_proportions_2indep(treated.sum(), len(treated), control.sum(), len(control), method="newcomb")
    assert c.abs_ci == pytest.approx((lo, hi), rel=1e-9)
    assert c.abs_ci[0] < c.abs_uplift < c.abs_ci[1]
    assert c.rel_uplift == pytest.approx(treated.mean() / control.mean() - 1, rel=1e-12)


@pytest.mark.parametrize("variant", ["Mens E-Mail", "Womens E-Mail"])
def test_hillstrom_spend_matches_scipy_welch(hillstrom_report, hillstrom_frame, variant) -> None:  # noqa: ANN001
    treated = hillstrom_frame.loc[hillstrom_frame["segment"] == variant, "spend"].to_numpy()
    control = hillstrom_frame.loc[hillstrom_frame["segment"] == CONTROL, "spend"].to_numpy()
    c = hillstrom_report.comparison(variant, "spend")
    assert c.kind == "continuous"
    result = stats.ttest_ind(treated, control, equal_var=False)
    assert c.p_value == pytest.approx(result.pvalue, rel=1e-6)
    ci = result.confidence_interval(0.95)
    assert c.abs_ci == pytest.approx((ci.low, ci.high), rel=1e-6)
    assert c.abs_uplift == pytest.approx(treated.mean() - control.mean(), rel=1e-9)
    if variant == "Mens E-Mail":
        assert result.statistic == pytest.approx(5.3001, abs=1e-4)
        assert c.p_value == pytest.approx(1.16e-7, rel=0.01)


def test_hillstrom_relative_ci_is_delta_method_on_log_ratio(hillstrom_report, hillstrom_frame) -> None:  # noqa: ANN001
    treated = hillstrom_frame.loc[hillstrom_frame["segment"] == "Mens E-Mail", "visit"].to_numpy(float)
    control = hillstrom_frame.loc[hillstrom_frame["segment"] == CONTROL, "visit"].to_numpy(float)
    se = np.sqrt(treated.var(ddof=1) / (len(treated) * treated.mean() ** 2)
                 + control.var(ddof=1) / (len(control) * control.mean() ** 2))
    log_ratio = np.log(treated.mean() / control.mean())
    z = stats.norm.ppf(0.975)
    expected = (np.exp(log_ratio - z * se) - 1, np.exp(log_ratio + z * se) - 1)
    assert hillstrom_report.comparison("Mens E-Mail", "visit").rel_ci == pytest.approx(expected, rel=1e-9)


def test_hillstrom_holm_adjustment_across_variants_and_metrics(hillstrom_report) -> None:  # noqa: ANN001
    comparisons = hillstrom_report.comparisons
    assert len(comparisons) == 2 * 3
    _, expected, _, _ = multipletests([c.p_value for c in comparisons], method="holm")
    assert [c.p_value_adjusted for c in comparisons] == pytest.approx(list(expected), rel=1e-12)
    assert all(c.significant == (c.p_value_adjusted < 0.05) for c in comparisons)


def test_json_has_the_documented_fields(hillstrom_report) -> None:  # noqa: ANN001
    data = json.loads(hillstrom_report.to_json())
    assert data["experiment"] == "hillstrom" and data["control"] == CONTROL
    assert set(data["srm"]) >= {"p_value", "mismatch"}
    assert {"name", "n", "is_control"} <= set(data["variants"][0])
    fields = {"variant", "metric", "n", "control_mean", "variant_mean", "abs_uplift", "abs_ci", "rel_uplift",
              "rel_ci", "p_value", "p_value_adjusted"}
    for c in data["comparisons"]:
        assert fields <= set(c)
        assert len(c["abs_ci"]) == 2 and len(c["rel_ci"]) == 2
    documented = Path(__file__).resolve().parents[1].joinpath("docs", "report-json.md").read_text(encoding="utf-8")
    for key in list(data) + list(data["comparisons"][0]):
        assert f"`{key}" in documented, f"{key} is not documented in docs/report-json.md"


# A designed experiment: outcomes come from events inside each customer's attribution window.

NAME = "winback-coupon-2026-12"


def _designed(engine: Engine, n: int = 300) -> dict[str, str]:
    """Customers assigned at AS_OF; returns customer id → variant name."""
    add_customers(engine, [f"C{i:04d}" for i in range(n)])
    store_spec(engine, example_spec())
    assign(engine, NAME, as_of=AS_OF)
    with session_scope(engine) as session:
        experiment = get_experiment(session, NAME)
        names = {v.id: v.name for v in experiment.variants}
        rows = session.query(Assignment.customer_id, Assignment.variant_id).all()
    return {customer: names[variant] for customer, variant in rows}


def _events(engine: Engine, rows: list[tuple[str, EventType, timedelta, float]]) -> None:
    with session_scope(engine) as session:
        session.execute(insert(Event), [
            dict(customer_id=c, event_type=kind, occurred_at=AS_OF + after, value=value) for c, kind, after, value in rows
        ])


def test_designed_outcomes_count_only_inside_the_attribution_window(engine: Engine) -> None:
    variant_of = _designed(engine)
    by_variant: dict[str, list[str]] = {}
    for customer, variant in sorted(variant_of.items()):
        by_variant.setdefault(variant, []).append(customer)
    control = by_variant["holdout"][:4]
    treated = by_variant["coupon10_sms_10h"][:6]
    _events(engine, [
        (control[0], EventType.VISIT, timedelta(days=1), 0),                 # natural return
        (control[1], EventType.ORDER, timedelta(days=13, hours=23), 50),     # last hour of the 14-day window
        (control[2], EventType.ORDER, timedelta(days=14), 70),               # just outside: not counted
        (control[3], EventType.VISIT, timedelta(hours=-1), 0),               # before assignment: not counted
        (treated[0], EventType.ORDER, timedelta(days=2), 80),
        (treated[0], EventType.ORDER, timedelta(days=3), 20),                # two orders: revenue 100, one return
        (treated[0], EventType.COUPON_REDEEMED, timedelta(days=2), 0),
        (treated[1], EventType.VISIT, timedelta(days=5), 0),
        (treated[2], EventType.UNSUBSCRIBE, timedelta(days=1), 0),
    ])
    report = build_report(engine, NAME)
    returned = report.comparison("coupon10_sms_10h", "returned")
    n_control, n_treated = len(by_variant["holdout"]), len(by_variant["coupon10_sms_10h"])
    assert (returned.control_n, returned.n) == (n_control, n_treated)
    assert returned.control_mean == pytest.approx(2 / n_control)
    assert returned.variant_mean == pytest.approx(2 / n_treated)
    revenue = report.comparison("coupon10_sms_10h", "revenue")
    assert revenue.control_mean == pytest.approx(50 / n_control)
    assert revenue.variant_mean == pytest.approx(100 / n_treated)
    assert report.comparison("coupon10_sms_10h", "unsubscribed").variant_mean == pytest.approx(1 / n_treated)
    assert report.comparison("coupon5_sms_10h", "returned").variant_mean == 0


def test_designed_roi_uses_sends_redemptions_and_costs(engine: Engine, tmp_path: Path) -> None:
    from experiments.access import cli_actor
    from experiments.sendlist import write_send_lists

    variant_of = _designed(engine)
    write_send_lists(engine, NAME, tmp_path, actor=cli_actor(), now=AS_OF)
    treated = sorted(c for c, v in variant_of.items() if v == "coupon10_sms_10h")
    _events(engine, [
        (treated[0], EventType.ORDER, timedelta(days=2), 80),
        (treated[0], EventType.COUPON_REDEEMED, timedelta(days=2), 0),
        (treated[1], EventType.COUPON_REDEEMED, timedelta(days=3), 0),
    ])
    report = build_report(engine, NAME)
    with session_scope(engine) as session:
        contacted = session.query(Send).filter(Send.customer_id.in_(treated)).count()
    assert contacted == len(treated)
    result = next(r for r in report.roi if r.variant == "coupon10_sms_10h")
    assert result.contacted == len(treated)
    assert result.contact_cost == pytest.approx(0.05 * len(treated))
    assert result.coupon_cost == pytest.approx(2 * 10)
    assert result.cost == pytest.approx(result.contact_cost + result.coupon_cost)
    assert result.incremental_revenue == pytest.approx(80.0)  # the control has no revenue
    assert result.roi == pytest.approx((80.0 - result.cost) / result.cost)
    assert {v.name: v.contacted for v in report.variants}["holdout"] == 0


def test_sequences_cost_every_touch_at_its_channel_price(engine: Engine, tmp_path: Path) -> None:
    from experiments.access import cli_actor
    from experiments.sendlist import write_send_lists

    spec = example_spec()
    variants = [v.model_dump() for v in spec.variants]
    variants[2]["channel"] = "mms"
    variants[2]["touches"] = [dict(day=4, channel="sms", template="【好物商城】礼金3天后过期 回TD退订", send_hour=10)]
    add_customers(engine, [f"C{i:04d}" for i in range(300)], inactive_days=50)
    store_spec(engine, example_spec(variants=variants, costs={"channels": {"sms": 0.05, "mms": 0.15}, "fixed": 30}))
    assign(engine, NAME, as_of=AS_OF)
    for due in (date(2026, 12, 1), date(2026, 12, 5)):  # each touch is listed on its own day
        write_send_lists(engine, NAME, tmp_path / str(due), actor=cli_actor(), due=due, now=AS_OF)
    report = build_report(engine, NAME)
    by_name = {r.variant: r for r in report.roi}
    n5, n10 = by_name["coupon5_sms_10h"].contacted, by_name["coupon10_sms_10h"].contacted
    assert by_name["coupon10_sms_10h"].contact_cost == pytest.approx(n10 * (0.15 + 0.05))  # MMS, then an SMS
    assert by_name["coupon5_sms_10h"].contact_cost == pytest.approx(n5 * 0.05)
    assert by_name["coupon10_sms_10h"].cost == pytest.approx(n10 * 0.20 + 30 * n10 / (n5 + n10))


@pytest.mark.parametrize("correction", ["bonferroni", "holm", "bh", "none"])
def test_adjusted_intervals_follow_the_family_level(engine: Engine, hillstrom_path: Path, correction: str) -> None:
    from analysis.report import interval_alpha
    from experiments.access import cli_actor
    from experiments.importer import import_results

    import_results(engine, hillstrom_path, actor=cli_actor(), experiment="h", variant_column="segment", control=CONTROL,
                   metrics=METRICS)
    report = build_report(engine, "h", correction=correction)
    level = interval_alpha([c.p_value_adjusted for c in report.comparisons], 0.05, correction)
    expected = {"bonferroni": 0.05 / 6, "holm": 0.05 / 6, "none": 0.05,
                "bh": 0.05 * sum(c.significant for c in report.comparisons) / 6}[correction]
    assert level == pytest.approx(expected)
    frame = pd.read_csv(hillstrom_path)
    for c in report.comparisons:
        if c.metric != "spend":
            continue
        treated = frame.loc[frame.segment == c.variant, "spend"]
        control = frame.loc[frame.segment == CONTROL, "spend"]
        ci = stats.ttest_ind(treated, control, equal_var=False).confidence_interval(1 - level)
        assert c.abs_ci_adjusted == pytest.approx((ci.low, ci.high), rel=1e-6)
        if correction == "bonferroni":  # Welch: the interval excludes 0 exactly when the test rejects
            assert (c.abs_ci_adjusted[0] > 0 or c.abs_ci_adjusted[1] < 0) == c.significant


def test_a_partial_experiment_says_why_a_number_is_missing(engine: Engine) -> None:
    """An arm without customers (3 customers over a 10/45/45 split leave the holdout empty here): no
    comparison can be made, the Markdown shows no nan/inf and the JSON says why each null is null."""
    from analysis.render import render_markdown

    variant_of = _designed(engine, n=3)
    assert "holdout" not in variant_of.values()  # the partial state this test is about
    report = build_report(engine, NAME)
    data = json.loads(report.to_json())
    assert data["srm"]["p_value"] is not None  # customers are assigned: the split can be tested
    for c in data["comparisons"]:
        assert c["p_value"] is None and c["null_reason"] == "no customers in this variant or in the control yet"
    for lang, no_data in (("zh", "暂无数据"), ("en", "No data yet")):
        text = render_markdown(report, lang=lang)
        assert no_data in text and not re.search(r"\b(nan|inf)\b", text, re.IGNORECASE)
    assert report.verdict.decision in ("not_analysable", "keep_running")

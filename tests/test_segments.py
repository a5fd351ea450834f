"""Segments and guardrails in the report."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sqlalchemy import Engine, insert, select
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from analysis.frequentist import worse_than
from analysis.report import build_report
from analysis.sufficient import SampleStats
from experiments.assignment import assign
from experiments.db import session_scope
from experiments.models import Assignment, Customer, Event, EventType, Variant
from tests.helpers import AS_OF, example_spec, store_spec


def test_hillstrom_segments_match_pandas_and_are_adjusted_together(hillstrom_report, hillstrom_path) -> None:  # noqa: ANN001
    frame = pd.read_csv(hillstrom_path)
    segments = hillstrom_report.segments
    assert len(segments) == 2 * (3 + 3 + 2)  # variants × (channel, zip_code, newbie values)
    web = next(c for c in segments if c.segment == "channel=Web" and c.variant == "Mens E-Mail")
    rows = frame[frame["channel"] == "Web"]
    treated, control = rows[rows.segment == "Mens E-Mail"].visit, rows[rows.segment == "No E-Mail"].visit
    assert (web.n, web.control_n) == (len(treated), len(control))
    assert web.variant_mean == pytest.approx(treated.mean()) and web.control_mean == pytest.approx(control.mean())
    assert web.p_value == pytest.approx(proportions_ztest([treated.sum(), control.sum()],
                                                          [len(treated), len(control)])[1], rel=1e-6)
    _, expected, _, _ = multipletests([c.p_value for c in segments], method="holm")
    assert [c.p_value_adjusted for c in segments] == pytest.approx(list(expected))
    assert hillstrom_report.guardrails == []  # no unsubscribe or complaint metrics in an import


def test_designed_segments_by_lifecycle_stage_at_assignment(engine: Engine) -> None:
    stages = {"dormant_30d": 35, "lapsed_1_3m": 60, "silent_3m": 120}
    with session_scope(engine) as session:
        session.execute(insert(Customer), [
            dict(customer_id=f"{stage}-{i:03d}", last_active_at=AS_OF - timedelta(days=days), signup_at=AS_OF
                 - timedelta(days=400), first_order_at=AS_OF - timedelta(days=390), orders_before=1,
                 spend_before=i)
            for stage, days in stages.items() for i in range(150)
        ])
    store_spec(engine, example_spec(cohort="all"))
    assign(engine, "winback-coupon-2026-12", as_of=AS_OF)
    with session_scope(engine) as session:
        assigned = session.execute(select(Assignment.customer_id, Variant.name)
                                   .join(Variant, Variant.id == Assignment.variant_id)).all()
        returners = [c for c, v in assigned if c.startswith("dormant") and v == "coupon10_sms_10h"][:20]
        session.execute(insert(Event), [dict(customer_id=c, event_type=EventType.VISIT,
                                             occurred_at=AS_OF + timedelta(days=2), value=0) for c in returners])
    report = build_report(engine, "winback-coupon-2026-12")
    cohorts = {c.segment for c in report.segments if c.segment.startswith("cohort=")}
    assert cohorts == {f"cohort={s}" for s in stages}
    dormant = next(c for c in report.segments if c.segment == "cohort=dormant_30d" and c.variant == "coupon10_sms_10h")
    expected_n = sum(1 for c, v in assigned if c.startswith("dormant") and v == "coupon10_sms_10h")
    assert dormant.n == expected_n and dormant.variant_mean == pytest.approx(20 / expected_n)
    silent = next(c for c in report.segments if c.segment == "cohort=silent_3m" and c.variant == "coupon10_sms_10h")
    assert silent.variant_mean == 0
    tiers = {c.segment for c in report.segments if c.segment.startswith("value_tier=")}
    assert tiers == {"value_tier=low", "value_tier=mid", "value_tier=high"}
    rfm = [c for c in report.segments if c.segment.startswith("rfm_tier=") and c.variant == "coupon10_sms_10h"]
    assert {c.segment for c in rfm} <= {"rfm_tier=low", "rfm_tier=mid", "rfm_tier=high"}
    assert sum(c.n for c in rfm) == sum(1 for _, v in assigned if v == "coupon10_sms_10h")


def test_guardrail_one_sided_test_against_a_margin() -> None:
    control = SampleStats.from_values(np.r_[np.ones(5), np.zeros(995)])
    variant = SampleStats.from_values(np.r_[np.ones(25), np.zeros(975)])
    result = worse_than(control, variant, margin=0.01)
    se = np.sqrt(variant.variance / 1000 + control.variance / 1000)
    assert result.difference == pytest.approx(0.02)
    assert result.p_value == pytest.approx(stats.norm.sf((0.02 - 0.01) / se))
    assert result.upper_bound == pytest.approx(0.02 + stats.norm.isf(0.05) * se)
    assert result.worse == (result.p_value < 0.05)
    assert not worse_than(control, variant, margin=0.03).worse
    assert worse_than(control, variant, margin=0.0).worse


def test_report_flags_a_breached_guardrail(engine: Engine) -> None:
    from tests.helpers import add_customers

    add_customers(engine, [f"C{i:04d}" for i in range(1000)])
    store_spec(engine, example_spec())
    assign(engine, "winback-coupon-2026-12", as_of=AS_OF)
    with session_scope(engine) as session:
        loud = session.scalars(select(Assignment.customer_id).join(Variant, Variant.id == Assignment.variant_id)
                               .where(Variant.name == "coupon10_sms_10h")).all()[:40]
        session.execute(insert(Event), [dict(customer_id=c, event_type=EventType.UNSUBSCRIBE,
                                             occurred_at=AS_OF + timedelta(hours=3), value=0) for c in loud])
    report = build_report(engine, "winback-coupon-2026-12")
    flags = {(g.variant, g.metric): g.breached for g in report.guardrails}
    assert flags == {("coupon5_sms_10h", "unsubscribed"): False, ("coupon5_sms_10h", "complained"): False,
                     ("coupon10_sms_10h", "unsubscribed"): True, ("coupon10_sms_10h", "complained"): False}
    lenient = build_report(engine, "winback-coupon-2026-12", guardrail_margins={"unsubscribed": 0.2})
    assert not any(g.breached for g in lenient.guardrails)

"""Recall quality: retention, repeat orders and spend after the return, against natural returners."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, insert, select

from analysis.quality import recall_quality, verdict
from experiments.assignment import assign
from experiments.db import session_scope
from experiments.models import Assignment, Event, EventType, Variant
from experiments.store import get_experiment
from tests.helpers import AS_OF, add_customers, example_spec, store_spec

NAME = "winback-coupon-2026-12"


@pytest.fixture
def returners(engine: Engine) -> Engine:
    add_customers(engine, [f"C{i:03d}" for i in range(200)])
    store_spec(engine, example_spec())
    assign(engine, NAME, as_of=AS_OF)
    with session_scope(engine) as session:
        by_variant: dict[str, list[str]] = {}
        for customer, variant in session.execute(select(Assignment.customer_id, Variant.name)
                                                 .join(Variant, Variant.id == Assignment.variant_id)
                                                 .order_by(Assignment.customer_id)):
            by_variant.setdefault(variant, []).append(customer)
        c, t = by_variant["holdout"], by_variant["coupon10_sms_10h"]
        day = lambda n: AS_OF + timedelta(days=n)  # noqa: E731
        rows = [
            (c[0], EventType.VISIT, day(1), 0), (c[0], EventType.VISIT, day(5), 0),        # back within 7 days
            (c[1], EventType.VISIT, day(2), 0), (c[1], EventType.ORDER, day(20), 40),      # back within 30 days
            (c[2], EventType.VISIT, day(3), 0),                                            # one visit only
            (c[2], EventType.VISIT, day(3, ) + timedelta(hours=5), 0),                    # same day: not a retention
            (t[0], EventType.ORDER, day(1), 50), (t[0], EventType.ORDER, day(10), 30),     # one repeat order
            (t[1], EventType.VISIT, day(2), 0),
            (t[2], EventType.VISIT, day(20), 0),                                           # returned after the window
        ]
        session.execute(insert(Event), [dict(customer_id=a, event_type=k, occurred_at=at, value=v)
                                        for a, k, at, v in rows])
    return engine


def quality(engine: Engine, days_after: int) -> dict[tuple[str, str], object]:
    with session_scope(engine) as session:
        result = recall_quality(session.connection(), get_experiment(session, NAME), AS_OF + timedelta(days=days_after))
    return {(q.variant, q.measure): q for q in result}


def test_retention_orders_and_spend_after_the_return(returners: Engine) -> None:
    q = quality(returners, 60)
    assert q["coupon10_sms_10h", "retained_7d"].control_returned == 3
    assert q["coupon10_sms_10h", "retained_7d"].returned == 2
    assert q["coupon10_sms_10h", "retained_7d"].control_mean == pytest.approx(1 / 3)
    assert q["coupon10_sms_10h", "retained_30d"].control_mean == pytest.approx(2 / 3)
    assert q["coupon10_sms_10h", "retained_7d"].variant_mean == 0
    assert q["coupon10_sms_10h", "retained_30d"].variant_mean == pytest.approx(1 / 2)
    assert q["coupon10_sms_10h", "repeat_orders_30d"].variant_mean == pytest.approx(1 / 2)
    assert q["coupon10_sms_10h", "spend_30d"].variant_mean == pytest.approx(30 / 2)
    assert q["coupon10_sms_10h", "spend_30d"].control_mean == pytest.approx(40 / 3)
    assert q["coupon5_sms_10h", "retained_30d"].returned == 0


def test_only_customers_whose_follow_up_has_passed_count(returners: Engine) -> None:
    q = quality(returners, 10)  # day 10: 7-day follow-up passed for returns on days 1-3; 30-day for none
    assert (q["coupon10_sms_10h", "retained_7d"].n, q["coupon10_sms_10h", "retained_7d"].control_n) == (2, 3)
    assert (q["coupon10_sms_10h", "retained_30d"].n, q["coupon10_sms_10h", "retained_30d"].control_n) == (0, 0)
    assert verdict(list(q.values()), "coupon10_sms_10h") == "too_early"


def test_the_report_carries_recall_quality(returners: Engine) -> None:
    from analysis.render import render_markdown
    from analysis.report import build_report

    report = build_report(returners, NAME)
    assert {q.measure for q in report.quality} == {"retained_7d", "retained_30d", "repeat_orders_30d", "spend_30d"}
    assert "Recall quality" in render_markdown(report, lang="en")
    assert "回流质量" in render_markdown(report, lang="zh")

"""Cohorts from customer data at a reference date: lifecycle stages, declining frequency, RFM, value tiers."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import Engine, insert, select

from experiments.cohorts import COHORTS, LIFECYCLE_STAGES, cohort_filter, lifecycle_stage, rfm_scores
from experiments.db import session_scope
from experiments.models import Customer, Event, EventType
from tests.helpers import AS_OF


def members(engine: Engine, cohort: str) -> list[str]:
    with session_scope(engine) as session:
        return sorted(session.scalars(select(Customer.customer_id).where(cohort_filter(cohort, AS_OF))))


def test_lifecycle_stages_are_exclusive_and_match_their_definitions(engine: Engine) -> None:
    days = lambda n: AS_OF - timedelta(days=n)  # noqa: E731
    people = {  # id: (signup, first order, last active), expected stage
        "new3": ((days(3), None, days(3)), "new_inactive"),
        "new7": ((days(7), None, days(7)), "new_inactive"),
        "new2": ((days(2), None, days(2)), None),          # too new
        "new8": ((days(8), None, days(8)), None),          # past the 3-7 day window, never ordered, not dormant yet
        "act": ((days(400), days(390), days(29)), None),
        "d30": ((days(400), days(390), days(30)), "dormant_30d"),
        "d44": ((days(400), days(390), days(44)), "dormant_30d"),
        "l45": ((days(400), days(390), days(45)), "lapsed_1_3m"),
        "l89": ((days(400), days(390), days(89)), "lapsed_1_3m"),
        "s90": ((days(400), days(390), days(90)), "silent_3m"),
    }
    with session_scope(engine) as session:
        session.execute(insert(Customer), [
            dict(customer_id=c, signup_at=s, first_order_at=f, last_active_at=la, orders_before=0, spend_before=0)
            for c, ((s, f, la), _) in people.items()
        ])
    for stage in LIFECYCLE_STAGES:
        expected = sorted(c for c, (_, st) in people.items() if st == stage)
        assert members(engine, stage) == expected, stage
    for c, ((s, f, la), stage) in people.items():
        assert lifecycle_stage(s, f, la, AS_OF) == stage, c
    assert members(engine, "all") == sorted(people)
    assert set(LIFECYCLE_STAGES) < set(COHORTS)


def test_high_frequency_declining(engine: Engine) -> None:
    # Orders in the 150 days before the last 30 (prior average per 30 days = prior / 5) and in the last 30.
    history = {"steady": (10, 2), "declined": (10, 0), "edge": (10, 1), "rare": (5, 0), "new": (0, 0)}
    with session_scope(engine) as session:
        session.execute(insert(Customer), [dict(customer_id=c, orders_before=0, spend_before=0) for c in history])
        events = []
        for c, (prior, recent) in history.items():
            events += [dict(customer_id=c, event_type=EventType.ORDER, occurred_at=AS_OF - timedelta(days=31 + 14 * i),
                            value=Decimal(50 + i)) for i in range(prior)]
            events += [dict(customer_id=c, event_type=EventType.ORDER, occurred_at=AS_OF - timedelta(days=1 + 7 * i),
                            value=Decimal(60 + i)) for i in range(recent)]
        session.execute(insert(Event), events)
    # prior average 2 per 30 days: below half (< 1) in the last 30 days means 0 orders
    assert members(engine, "declining") == ["declined"]


def test_rfm_quintiles_and_value_tiers(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.execute(insert(Customer), [
            dict(customer_id=f"C{i:02d}", last_active_at=AS_OF - timedelta(days=100 - i), orders_before=i,
                 spend_before=Decimal(15 - i) * 10)
            for i in range(15)
        ])
        rows = {r.customer_id: r for r in session.execute(rfm_scores(AS_OF))}
    assert [rows[f"C{i:02d}"].recency for i in range(15)] == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5]
    assert [rows[f"C{i:02d}"].frequency for i in range(15)] == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5]
    assert [rows[f"C{i:02d}"].monetary for i in range(15)] == [5, 5, 5, 4, 4, 4, 3, 3, 3, 2, 2, 2, 1, 1, 1]
    assert [rows[f"C{i:02d}"].value_tier for i in range(15)] == ["high"] * 5 + ["mid"] * 5 + ["low"] * 5

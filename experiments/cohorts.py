"""Lifecycle cohorts: who a recall experiment targets, as SQL filters over ``customers``.

The stages are mutually exclusive so that a customer belongs to exactly one, which keeps
segment breakdowns additive. Days are counted back from a reference date (the experiment's start).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, func, or_, select, true

from experiments.models import Customer, Event, EventType


@dataclass(frozen=True)
class Cohort:
    name: str
    label_zh: str
    label_en: str
    description: str


COHORTS: dict[str, Cohort] = {
    c.name: c
    for c in (
        Cohort("all", "全部客户", "All customers", "every customer"),
        Cohort("new_inactive", "新客未转化", "New but inactive", "signed up 3-7 days ago, no order yet"),
        Cohort("dormant_30d", "沉睡30天", "Dormant 30 days", "last active 30-44 days ago"),
        Cohort("lapsed_1_3m", "流失1-3个月", "Lapsed 1-3 months", "last active 45-89 days ago"),
        Cohort("silent_3m", "沉默3个月以上", "Silent 3+ months", "last active 90 or more days ago"),
        Cohort("declining", "高频下滑", "High-frequency declining",
               "ordered ≥ 2 times per 30 days before, fewer than half that in the last 30 days"),
    )
}
# Lifecycle stages are mutually exclusive; "declining" is behavioural and overlaps with them.
LIFECYCLE_STAGES = ("new_inactive", "dormant_30d", "lapsed_1_3m", "silent_3m")
HIGH_FREQUENCY_ORDERS_PER_30D = 2
PRIOR_PERIODS = 5  # the prior average is taken over the 5 × 30 days before the last 30


def _orders_between(start: datetime, end: datetime) -> ColumnElement[int]:
    return (
        select(func.count())
        .where(Event.customer_id == Customer.customer_id, Event.event_type == EventType.ORDER,
               Event.occurred_at >= start, Event.occurred_at < end)
        .scalar_subquery()
    )


def declining_filter(as_of: datetime) -> ColumnElement[bool]:
    """Order frequency in the last 30 days below half of the prior 30-day average (high-frequency customers)."""
    recent = _orders_between(as_of - timedelta(days=30), as_of)
    prior = _orders_between(as_of - timedelta(days=30 * (PRIOR_PERIODS + 1)), as_of - timedelta(days=30))
    # prior / PRIOR_PERIODS >= threshold and recent < (prior / PRIOR_PERIODS) / 2, in integers
    return and_(prior >= HIGH_FREQUENCY_ORDERS_PER_30D * PRIOR_PERIODS, recent * 2 * PRIOR_PERIODS < prior)


def cohort_filter(name: str, as_of: datetime) -> ColumnElement[bool]:
    """The WHERE clause selecting cohort ``name`` at ``as_of`` (naive UTC)."""
    if name not in COHORTS:
        raise ValueError(f"unknown cohort {name!r}; choose one of {', '.join(COHORTS)}")
    days = lambda n: as_of - timedelta(days=n)  # noqa: E731 - reads like the definitions above
    last = Customer.last_active_at
    if name == "all":
        return true()
    if name == "new_inactive":
        return and_(Customer.signup_at <= days(3), Customer.signup_at > days(8), Customer.first_order_at.is_(None))
    if name == "dormant_30d":
        return and_(last <= days(30), last > days(45))
    if name == "lapsed_1_3m":
        return and_(last <= days(45), last > days(90))
    if name == "declining":
        return declining_filter(as_of)
    return last <= days(90)


def lifecycle_stage(signup_at: datetime | None, first_order_at: datetime | None,
                    last_active_at: datetime | None, as_of: datetime) -> str | None:
    """The cohort a single customer falls in (same rules as :func:`cohort_filter`), or None if active."""
    if signup_at is not None and first_order_at is None and days_between(signup_at, as_of) in range(3, 8):
        return "new_inactive"
    if last_active_at is None:
        return None
    inactive = days_between(last_active_at, as_of)
    if inactive >= 90:
        return "silent_3m"
    if inactive >= 45:
        return "lapsed_1_3m"
    if inactive >= 30:
        return "dormant_30d"
    return None


def days_between(earlier: datetime, later: datetime) -> int:
    return (later - earlier).days


VALUE_TIERS = ("low", "mid", "high")


def rfm_scores(as_of: datetime):  # noqa: ANN201 - a SQLAlchemy Select
    """Per customer: recency, frequency and monetary quintile scores (5 = best) and a value tier.

    Quintiles by ``ntile(5)`` over last activity (customers never active count as least recent),
    orders and spend before the reference time; the value tier is the spend tercile (low/mid/high).
    Computed in the database: one window-function query, whatever the number of customers.
    """
    last = Customer.last_active_at
    never = case((last.is_(None), 0), else_=1)
    tier = func.ntile(3).over(order_by=(Customer.spend_before, Customer.customer_id))
    return select(
        Customer.customer_id,
        func.ntile(5).over(order_by=(never, last, Customer.customer_id)).label("recency"),
        func.ntile(5).over(order_by=(Customer.orders_before, Customer.customer_id)).label("frequency"),
        func.ntile(5).over(order_by=(Customer.spend_before, Customer.customer_id)).label("monetary"),
        case((tier == 1, VALUE_TIERS[0]), (tier == 2, VALUE_TIERS[1]), else_=VALUE_TIERS[2]).label("value_tier"),
    ).where(or_(last.is_(None), last <= as_of))

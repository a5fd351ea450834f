"""Custom cohorts: filter expressions compile to parameterized SQL; anything else is rejected."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, insert, select

from experiments.assignment import assign
from experiments.db import session_scope
from experiments.filters import FilterError, compile_filter
from experiments.models import Assignment, Customer
from experiments.spec import SpecError
from tests.helpers import AS_OF, example_spec, store_spec

# (id, city, orders_before, spend_before, days since last active, days since signup)
PEOPLE = [
    ("A", "上海", 5, "320.00", 60, 400),
    ("B", "北京", 1, "80.00", 50, 300),
    ("C", "广州", 0, "0.00", 95, 100),
    ("D", "上海", 2, "199.99", 30, 35),
    ("E", None, 9, "1200.00", 29, 900),
    ("F", "深圳", 3, "200.00", 31, 5),
]


@pytest.fixture
def people(engine: Engine) -> Engine:
    with session_scope(engine) as session:
        session.execute(insert(Customer), [
            dict(customer_id=c, city=city, orders_before=orders, spend_before=Decimal(spend),
                 last_active_at=AS_OF - timedelta(days=inactive), signup_at=AS_OF - timedelta(days=signup))
            for c, city, orders, spend, inactive, signup in PEOPLE
        ])
    return engine


def matching(engine: Engine, text: str) -> list[str]:
    with session_scope(engine) as session:
        return sorted(session.scalars(select(Customer.customer_id).where(compile_filter(text, AS_OF))))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("spend_before >= 200", ["A", "E", "F"]),
        ("spend_before >= 200 and city in ('上海', '北京')", ["A"]),
        ("city not in ('上海', '北京')", ["C", "F"]),       # SQL: a NULL city matches neither in nor not in
        ("city is None", ["E"]),
        ("days_inactive >= 30", ["A", "B", "C", "D", "F"]),
        ("days_inactive > 30", ["A", "B", "C", "F"]),
        ("30 <= days_inactive < 60", ["B", "D", "F"]),
        ("days_inactive == 31", ["F"]),
        ("days_since_signup <= 35 or orders_before >= 9", ["D", "E", "F"]),
        ("not (orders_before > 0)", ["C"]),
        ("last_active_at < '2026-10-02'", ["A", "C"]),
        ("", ["A", "B", "C", "D", "E", "F"]),
    ],
)
def test_filters_select_exactly_the_customers_they_describe(people: Engine, text: str, expected: list[str]) -> None:
    assert matching(people, text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("city == '上海'; DROP TABLE customers", "not a filter expression"),
        ("city == '上海' or 1 == 1", "must be a field"),
        ("__import__('os').system('rm -rf /')", "not allowed"),
        ("city.lower() == 'x'", "must be a field"),
        ("password == 'x'", "unknown field 'password'"),
        ("city == 1", "expected text"),
        ("spend_before > 'a lot'", "expected a number"),
        ("city in (select(customer_id))", "needs a non-empty list"),
        ("city in ('a', lower('b'))", "expected a literal"),
        ("days_inactive in (1, 2)", "only takes comparisons"),
        ("spend_before + 1 > 2", "must be a field"),
        ("city == \"x' OR '1'='1\"", None),  # a quote inside a literal is just text, bound as a parameter
    ],
)
def test_injection_and_bad_expressions_are_rejected(people: Engine, text: str, reason: str | None) -> None:
    if reason is None:
        assert matching(people, text) == []
        return
    with pytest.raises(FilterError, match=reason):
        compile_filter(text, AS_OF)


def test_literals_never_reach_the_sql_text() -> None:
    compiled = str(compile_filter("city in ('上海', 'x OR 1=1') and spend_before >= 200", AS_OF).compile())
    assert "上海" not in compiled and "OR 1=1" not in compiled and "200" not in compiled


def test_spec_filter_is_validated_and_used_by_assignment(people: Engine) -> None:
    with pytest.raises(SpecError, match=r"filter: unknown field 'phone_number'"):
        example_spec(filter="phone_number == '1'")
    store_spec(people, example_spec(cohort="all", filter="spend_before >= 200 and days_inactive >= 30"))
    assign(people, "winback-coupon-2026-12", as_of=AS_OF)
    with session_scope(people) as session:
        assert sorted(session.scalars(select(Assignment.customer_id))) == ["A", "F"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("days_inactive >= 99999999", r"days_inactive: 99999999 is out of range; use a number from 0 to 36,500"),
        ("days_since_signup < -1", r"days_since_signup: -1 is out of range"),
        ("days_inactive >= 30.5", r"days_inactive: 30.5 is not a whole number of days"),
        ("orders_before > 10 ** 12", "expected a literal value"),  # arithmetic is no literal
        ("orders_before > 1000000000000",
         r"orders_before: 1000000000000 is out of range; use a number from 0 to 1,000,000,000"),
        ("orders_before in (1, 99999999999999999999999)", r"orders_before: .* is out of range"),
        ("spend_before >= 1e308", r"spend_before: 1e\+308 is out of range"),
        ("spend_before >= 1e999", r"spend_before: inf is out of range"),
        ("spend_before < -1000000000000", r"spend_before: -1000000000000 is out of range"),
        ("99999999 <= days_inactive", r"days_inactive: 99999999 is out of range"),
    ],
)
def test_every_number_is_range_checked_before_it_becomes_sql(text: str, reason: str) -> None:
    with pytest.raises(FilterError, match=reason):
        compile_filter(text, AS_OF)


@pytest.mark.parametrize("text", ["days_inactive >= 36500", "days_since_signup < 0", "orders_before <= 1000000000",
                                  "spend_before >= 999999999999.99", "spend_before > -999999999999.99"])
def test_the_ends_of_each_range_run_in_the_database(people: Engine, text: str) -> None:
    matching(people, text)  # no overflow in Python or in the database at the limits


def test_an_out_of_range_filter_is_a_spec_error_naming_the_field() -> None:
    with pytest.raises(SpecError, match=r"filter: days_inactive: 99999999 is out of range"):
        example_spec(filter="days_inactive >= 99999999")

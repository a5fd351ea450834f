"""Daily looks from one statement: the same statistics and intervals as one aggregate per day.

The reference is what daily_looks did before: ``arm_statistics(until=launch + day)`` for each day.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, insert, select, update

from analysis.aggregates import CUSTOMER_METRICS, ArmStatistics, arm_statistics
from analysis.monitoring import Look, daily_looks, daily_statistics
from analysis.sequential import confidence_sequence
from experiments.assignment import assign
from experiments.db import session_scope
from experiments.demo import build_demo
from experiments.dialects import CUSTOMERS_PER_STATEMENT
from experiments.models import Assignment, Event, EventType, Experiment, ExperimentSource, Variant
from experiments.store import get_experiment
from tests.helpers import AS_OF, add_customers, example_spec, store_spec
from tests.test_warehouse import N, Campaign, _launch, _mapping, _spec, _write_team_tables, warehouse_url
from tests.test_warehouse import spark, team_campaign  # noqa: F401 - fixtures

NAME = "winback-coupon-2026-12"
TOLERANCE = dict(rel=1e-9, abs=1e-12)


def per_day_arms(conn: Connection, experiment: Experiment, days: int) -> list[dict[int, ArmStatistics]]:
    return [arm_statistics(conn, experiment, until=experiment.launched_at + timedelta(days=day))
            for day in range(1, days + 1)]


def looks_from(experiment: Experiment, by_day: list[dict[int, ArmStatistics]], metric: str) -> list[Look]:
    """The looks as daily_looks computed them from one arm_statistics per day."""
    looks = []
    for day, arms in enumerate(by_day, start=1):
        planned = max(sum(arm.n for arm in arms.values()), 2)
        control = arms[experiment.control.id].metrics[metric]
        for v in experiment.variants:
            if not v.is_control:
                cs = confidence_sequence(control, arms[v.id].metrics[metric], planned_n=planned)
                looks.append(Look(day, v.name, cs.abs_uplift, cs.ci_lo, cs.ci_hi, bool(cs.ci_lo > 0 or cs.ci_hi < 0)))
    return looks


def assert_same_as_per_day(conn: Connection, experiment: Experiment, now: datetime,
                           metrics: tuple[str, ...] = CUSTOMER_METRICS) -> int:
    """Every metric's statistics and looks equal the per-day path's; returns the number of days."""
    days = min((now - experiment.launched_at).days, experiment.attribution_days)
    reference = per_day_arms(conn, experiment, days)
    for metric in metrics:
        by_day = daily_statistics(conn, experiment, metric, days)
        assert len(by_day) == days
        for day, (arms, expected) in enumerate(zip(by_day, reference, strict=True), start=1):
            for v in experiment.variants:
                got, want = arms[v.id], expected[v.id].metrics[metric]
                assert got.n == want.n, (metric, day, v.name)
                assert (got.sum, got.sum_sq, got.sum_cu) == pytest.approx(
                    (want.sum, want.sum_sq, want.sum_cu), **TOLERANCE), (metric, day, v.name)
        looks, want_looks = daily_looks(conn, experiment, metric, now), looks_from(experiment, reference, metric)
        assert [(k.day, k.variant, k.may_act) for k in looks] == [(k.day, k.variant, k.may_act) for k in want_looks]
        for got, want in zip(looks, want_looks, strict=True):
            assert (got.abs_uplift, got.ci_lo, got.ci_hi) == pytest.approx(
                (want.abs_uplift, want.ci_lo, want.ci_hi), **TOLERANCE), (metric, got.day, got.variant)
    return days


def test_the_demo_campaigns_day_by_day(engine: Engine) -> None:
    today = datetime(2026, 11, 23, 4, 0)
    build_demo(engine, customers=4_000, today=today)
    with session_scope(engine) as session:
        designed = [e for e in session.scalars(select(Experiment)).all()
                    if e.source == ExperimentSource.DESIGNED and e.launched_at is not None]
        assert len(designed) >= 3
        days = [assert_same_as_per_day(session.connection(), e, today) for e in designed]
    assert 10 in days and 14 in days  # the running campaign (10 days in) and finished ones (the whole window)


def at(days: float = 0, hours: float = 0, microseconds: int = 0) -> datetime:
    return AS_OF + timedelta(days=days, hours=hours, microseconds=microseconds)


def test_edge_days(engine: Engine) -> None:
    add_customers(engine, [f"C{i:04d}" for i in range(300)])
    store_spec(engine, example_spec())
    assign(engine, NAME, as_of=AS_OF)
    add_customers(engine, [f"L{i:04d}" for i in range(20)], as_of=at(2))
    assign(engine, NAME, as_of=at(2, 5))  # customers assigned after the launch, at their own time
    with session_scope(engine) as session:
        rows = session.execute(select(Assignment.customer_id, Variant.name).join(Variant)
                               .order_by(Assignment.customer_id)).all()
        treated = [c for c, v in rows if c.startswith("C") and v == "coupon10_sms_10h"]
        late = [c for c, _ in rows if c.startswith("L")]
        assert len(treated) > 10 and late
        boundary_1, boundary_2, several, early, last_day = treated[:5]
        # Assigned three days before the launch: the window ends on the launch's 11th day.
        session.execute(update(Assignment).where(Assignment.customer_id == early).values(assigned_at=at(-3)))

        def event(customer: str, kind: EventType, when: datetime, value: str = "0") -> dict:
            return dict(customer_id=customer, event_type=kind, occurred_at=when, value=Decimal(value))

        visit, order = EventType.VISIT, EventType.ORDER
        session.execute(insert(Event), [
            event(boundary_1, visit, at(1, microseconds=-1)),  # the last instant of day 1
            event(boundary_1, visit, at(1)),
            event(boundary_2, visit, at(1)),  # exactly at the end of day 1: seen on day 2
            event(several, visit, at(0, 5)),
            event(several, order, at(2, 3), "30.50"),
            event(several, order, at(2, 4), "12.25"),
            event(several, EventType.COUPON_REDEEMED, at(2, 4)),
            event(several, EventType.COMPLAINT, at(4)),
            event(several, EventType.UNSUBSCRIBE, at(6, 1)),
            event(several, order, at(6, 2), "7.75"),
            event(early, visit, at(-4)),  # before their assignment
            event(early, visit, at(-1)),  # before the launch, in their window: seen on day 1
            event(early, order, at(10, 23), "50"),
            event(early, order, at(11), "60"),  # at their window's end: never counted
            event(early, order, at(12), "70"),  # after their window
            event(late[0], visit, at(1, 12)),  # before their assignment
            event(late[0], order, at(2, 4), "5"),  # before their assignment, on the day of it
            event(late[0], order, at(2, 5), "20"),  # the instant they were assigned: day 3
            event(late[0], visit, at(16, 5)),  # after their window
            event(last_day, visit, at(14, microseconds=-1)),  # the last instant of the last look
            event(last_day, order, at(14), "99"),  # at the end of the window
        ])
    now = at(20)
    with session_scope(engine) as session:
        experiment = get_experiment(session, NAME)
        conn = session.connection()
        assert assert_same_as_per_day(conn, experiment, now) == 14
        by_metric = {m: daily_statistics(conn, experiment, m, 14)
                     for m in ("returned", "orders", "revenue", "redeemed", "complained", "unsubscribed")}
    total = {m: [sum(arms[v.id].sum for v in experiment.variants) for arms in by_day] for m, by_day in by_metric.items()}
    n = [sum(arms[v.id].n for v in experiment.variants) for arms in by_metric["orders"]]
    assert n == [len(rows)] * 14  # everyone assigned counts from the first day, as arm_statistics counts them
    assert total["returned"] == [3, 4] + [5] * 11 + [6]
    assert total["orders"] == [0, 0] + [3] * 4 + [4] * 4 + [5] * 4
    assert total["revenue"] == pytest.approx([0, 0] + [62.75] * 4 + [70.5] * 4 + [120.5] * 4)
    assert total["redeemed"] == [0, 0] + [1] * 12
    assert total["complained"] == [0] * 4 + [1] * 10
    assert total["unsubscribed"] == [0] * 6 + [1] * 8


def test_an_unknown_metric_is_refused(engine: Engine) -> None:
    add_customers(engine, [f"C{i:04d}" for i in range(50)])
    store_spec(engine, example_spec())
    assign(engine, NAME, as_of=AS_OF)
    with session_scope(engine) as session, pytest.raises(KeyError, match="no daily looks"):
        daily_looks(session.connection(), get_experiment(session, NAME), "visits", at(3))


@pytest.mark.parametrize("where", ["test database", "duckdb", "duckdb in ranges", "chdb",
                                   pytest.param("spark", marks=pytest.mark.slow)])
def test_a_warehouse_source_day_by_day(engine: Engine, team_campaign: Campaign, tmp_path: Path, where: str,
                                       monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """The team's own tables as a ``[source]`` maps them (text event types, their own column types),
    customers assigned over two days, on the test database and on each warehouse engine (DuckDB, also
    summed in ranges of customer ids as big warehouses are; ClickHouse; Spark)."""
    if where == "test database":
        _write_team_tables(lambda name, frame: frame.to_sql(name, engine, if_exists="append", index=False),
                           team_campaign)
        url = engine.url.render_as_string(hide_password=False)
    else:
        if where == "spark":
            request.getfixturevalue("spark")
        url = warehouse_url(where.split()[0], team_campaign, tmp_path)
    if where == "duckdb in ranges":
        monkeypatch.setitem(CUSTOMERS_PER_STATEMENT, "duckdb", N // 7)
    store_spec(engine, _spec(_mapping(url)))
    experiment = _launch(engine)
    # Spark runs each statement in about a second: a flag and a sum there.
    metrics = ("returned", "revenue") if where == "spark" else CUSTOMER_METRICS
    with engine.connect() as conn:
        assert assert_same_as_per_day(conn, experiment, experiment.launched_at + timedelta(days=30), metrics) == 14

"""Daily looks: each day's always-valid interval uses only the events known by the end of that day."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, insert, select

from analysis.monitoring import daily_looks
from analysis.sequential import confidence_sequence
from analysis.sufficient import SampleStats
from experiments.assignment import assign
from experiments.db import session_scope
from experiments.models import Assignment, Event, EventType, Variant
from experiments.store import get_experiment
from tests.helpers import AS_OF, add_customers, example_spec, store_spec

NAME = "winback-coupon-2026-12"


def test_each_look_sees_only_the_events_of_its_days(engine: Engine) -> None:
    add_customers(engine, [f"C{i:04d}" for i in range(600)])
    store_spec(engine, example_spec())
    assign(engine, NAME, as_of=AS_OF)
    with session_scope(engine) as session:
        treated = session.scalars(select(Assignment.customer_id).join(Variant, Variant.id == Assignment.variant_id)
                                  .where(Variant.name == "coupon10_sms_10h").order_by(Assignment.customer_id)).all()
        n_control = session.scalar(select(func.count()).select_from(Assignment)
                                   .join(Variant, Variant.id == Assignment.variant_id).where(Variant.name == "holdout"))
        # 10 returns in the first 24 hours, 30 more on day 3
        session.execute(insert(Event), [
            dict(customer_id=c, event_type=EventType.VISIT, occurred_at=AS_OF + timedelta(hours=5 if i < 10 else 60),
                 value=0) for i, c in enumerate(treated[:40])])
    with session_scope(engine) as session:
        looks = daily_looks(session.connection(), get_experiment(session, NAME), "returned",
                            AS_OF + timedelta(days=4, hours=1))
    ten = [k for k in looks if k.variant == "coupon10_sms_10h"]
    assert [k.day for k in ten] == [1, 2, 3, 4]
    n = len(treated)
    assert ten[0].abs_uplift == pytest.approx(10 / n) and ten[1].abs_uplift == pytest.approx(10 / n)
    assert ten[2].abs_uplift == pytest.approx(40 / n)
    expected = confidence_sequence(SampleStats(n_control, 0.0, 0.0), SampleStats(n, 40.0, 40.0), planned_n=600)
    assert (ten[2].ci_lo, ten[2].ci_hi) == pytest.approx((expected.ci_lo, expected.ci_hi))
    assert ten[2].may_act == (expected.ci_lo > 0)
    assert all(k.abs_uplift == 0 for k in looks if k.variant == "coupon5_sms_10h")


def test_no_looks_for_imported_results(engine: Engine, hillstrom_path) -> None:  # noqa: ANN001
    from experiments.access import cli_actor
    from experiments.importer import import_results

    import_results(engine, hillstrom_path, experiment="h", variant_column="segment", control="No E-Mail",
                   metrics=["visit"], actor=cli_actor())
    with session_scope(engine) as session:
        assert daily_looks(session.connection(), get_experiment(session, "h"), "visit", AS_OF) == []

"""The demo campaign: realistic, through the real path, deterministic and idempotent."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from analysis.report import build_report
from experiments.cohorts import LIFECYCLE_STAGES, cohort_filter
from experiments.db import make_engine, session_scope
from experiments.demo import MAIN, build_demo
from experiments.models import Assignment, ContactHold, Customer, Event, EventType, Experiment, ExperimentStatus, Send, Variant
from experiments.policy import HoldReason
from experiments.store import get_experiment

TODAY = datetime(2026, 11, 23, 4, 0)


@pytest.fixture
def demo(engine: Engine) -> Engine:
    build_demo(engine, customers=30_000, today=TODAY)
    return engine


def test_main_campaign_is_running_with_the_designed_variants(demo: Engine) -> None:
    with session_scope(demo) as session:
        experiment = get_experiment(session, MAIN)
        assert experiment.status == ExperimentStatus.RUNNING
        names = [v.name for v in experiment.variants]
        assert names[0] == "holdout" and experiment.control.share == pytest.approx(0.10)
        assert sorted(names[1:]) == sorted(f"c{c}_{w}_{h}h" for c in (5, 10) for w in ("lively", "professional")
                                           for h in (10, 20))
        launch = experiment.launched_at
        stages = {s: session.scalar(select(func.count()).select_from(Customer).where(cohort_filter(s, launch)))
                  for s in LIFECYCLE_STAGES}
        earlier = session.scalars(select(Experiment.status).where(Experiment.name != MAIN)).all()
    assert all(n > 1000 for n in stages.values()), stages
    assert sorted(earlier) == sorted([ExperimentStatus.DECIDED, ExperimentStatus.STOPPED, ExperimentStatus.STOPPED])


def test_control_is_never_contacted_and_nothing_happens_after_today(demo: Engine) -> None:
    with session_scope(demo) as session:
        experiment = get_experiment(session, MAIN)
        control = Assignment.variant_id == experiment.control.id
        sends_to_control = session.scalar(
            select(func.count()).select_from(Send).join(
                Assignment, (Assignment.customer_id == Send.customer_id)
                & (Assignment.experiment_id == Send.experiment_id)).where(control))
        touches = session.scalar(
            select(func.count()).select_from(Event).join(Assignment, Assignment.customer_id == Event.customer_id)
            .where(Assignment.experiment_id == experiment.id, control, Event.occurred_at >= experiment.launched_at,
                   Event.event_type.in_([EventType.DELIVERED, EventType.CLICK, EventType.COUPON_REDEEMED])))
        latest = session.scalar(select(func.max(Event.occurred_at)))
        contacted = session.scalar(select(func.count()).select_from(Send).where(Send.experiment_id == experiment.id))
        assigned_contacted = session.scalar(
            select(func.count()).select_from(Assignment).where(Assignment.experiment_id == experiment.id, ~control))
        holds = session.scalars(select(ContactHold.reason).where(ContactHold.experiment_id == experiment.id)).all()
    assert sends_to_control == 0 and touches == 0
    assert latest < TODAY
    # Everyone in a contacted variant got the SMS, except those who unsubscribed in an earlier campaign.
    assert contacted + len(holds) == assigned_contacted
    assert set(holds) <= {HoldReason.UNSUBSCRIBED}


def test_true_effects_show_up_in_the_report(demo: Engine) -> None:
    report = build_report(demo, MAIN)
    returned = [c for c in report.comparisons if c.metric == "returned"]
    assert sum(c.significant for c in returned) >= 2
    best = max(returned, key=lambda c: c.abs_uplift)
    assert best.variant.startswith("c10_")
    assert 0.03 < best.control_mean < 0.12  # a plausible natural return rate
    assert all(r.cost > 0 for r in report.roi)


def test_rebuilding_is_a_no_op(demo: Engine) -> None:
    again = build_demo(demo, customers=30_000, today=TODAY + timedelta(days=3))
    assert again.already_built
    with session_scope(demo) as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 30_000
        assert session.scalar(select(func.count()).select_from(Event)) == again.events


def test_same_seed_same_campaign(engine: Engine, tmp_path: Path) -> None:
    other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    from experiments.db import upgrade

    upgrade(other)
    first = build_demo(engine, customers=3_000, today=TODAY)
    second = build_demo(other, customers=3_000, today=TODAY)
    assert (first.customers, first.sends, first.events) == (second.customers, second.sends, second.events)

    def sums(e: Engine) -> list:
        with session_scope(e) as session:
            return session.execute(
                select(Variant.name, func.count(), func.sum(Event.value))
                .join(Assignment, Assignment.variant_id == Variant.id)
                .join(Event, Event.customer_id == Assignment.customer_id)
                .group_by(Variant.name).order_by(Variant.name)).all()

    assert sums(engine) == sums(other)

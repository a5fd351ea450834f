"""First start: ``recall app`` builds the demo in a child process, one committed campaign at a time,
reporting its progress to a file the app reads (benchmarks/first_start.py times the whole start)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, func, select

from cli.server import build_demo_in_background, database_is_empty, start_demo_build
from experiments.demo import MAIN, build_demo
from experiments.models import Experiment


def test_the_demo_reports_each_committed_campaign(engine: Engine) -> None:
    seen: list[tuple[int, int, int]] = []

    def progress(done: int, total: int) -> None:
        with engine.connect() as connection:  # what a reader sees at that moment
            seen.append((done, total, connection.scalar(select(func.count()).select_from(Experiment))))

    build_demo(engine, customers=1_000, today=datetime(2026, 11, 23, 4, 0), progress=progress)
    assert seen == [(1, 5, 0), (2, 5, 1), (3, 5, 2), (4, 5, 3), (5, 5, 4)]


def test_the_background_build_writes_its_progress(engine: Engine, database_url: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert database_is_empty(engine)
    progress = tmp_path / "progress.json"
    monkeypatch.setenv("RECALL_DEMO_PROGRESS", str(progress))
    monkeypatch.setenv("RECALL_DEMO_CUSTOMERS", "1000")
    build_demo_in_background()
    assert json.loads(progress.read_text()) == {"done": 5, "total": 5}
    assert not database_is_empty(engine)
    with engine.connect() as connection:
        assert connection.scalar(select(Experiment.name).where(Experiment.name == MAIN)) == MAIN


def test_the_child_process_builds_the_demo(engine: Engine, database_url: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECALL_DEMO_CUSTOMERS", "1000")
    progress = tmp_path / "progress.json"
    child = start_demo_build(database_url, progress)
    assert child.wait(timeout=300) == 0
    assert json.loads(progress.read_text()) == {"done": 5, "total": 5}
    assert not database_is_empty(engine)


def test_the_background_build_stores_every_campaigns_run(engine: Engine, database_url: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The app reads the builder's runs (read-only) for the final data version instead of computing them."""
    from analysis.report import build_report
    from analysis.runs import data_version, lookup
    from experiments.models import AnalysisRun

    monkeypatch.setenv("RECALL_DEMO_PROGRESS", str(tmp_path / "progress.json"))
    monkeypatch.setenv("RECALL_DEMO_CUSTOMERS", "1000")
    build_demo_in_background()
    with engine.connect() as connection:
        version = data_version(connection)
        names = list(connection.scalars(select(Experiment.name).order_by(Experiment.id)))
        runs_before = connection.scalar(select(func.count()).select_from(AnalysisRun))
    stored = lookup(engine, names, version)
    assert sorted(stored) == sorted(names) and len(names) == 4
    main = build_report(engine, MAIN)
    assert [c.abs_uplift for c in stored[MAIN].comparisons] == [c.abs_uplift for c in main.comparisons]
    assert stored[MAIN].verdict.decision == main.verdict.decision
    # one run per campaign at the end, and the newest campaign's after each of the first three
    assert runs_before == 4 + 3
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(AnalysisRun)) == runs_before  # lookup wrote nothing


def test_a_build_stopped_half_way_is_made_again(engine: Engine, database_url: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """recall app stopped while the demo builds: the next start sees a partial demo and builds it again,
    to the same data as an uninterrupted build; then it is complete and a further start does nothing."""
    import experiments.demo as demo
    from cli.server import demo_wanted
    from experiments.db import make_engine, upgrade
    from experiments.models import Assignment, Customer, Event

    today = datetime(2026, 11, 23, 4, 0)

    class Stopped(Exception):
        pass

    def stop_after_two(done: int, total: int) -> None:
        if done == 3:
            raise Stopped

    with pytest.raises(Stopped):
        build_demo(engine, customers=1_000, today=today, progress=stop_after_two)
    assert demo.demo_state(engine) == demo.PARTIAL and demo_wanted(engine)

    # stopped again, inside the main campaign: created and assigned, no outcomes yet
    def crash(*args: object, **kwargs: object) -> None:
        raise Stopped

    monkeypatch.setattr(demo, "write_send_lists", crash)
    with pytest.raises(Stopped):
        build_demo(engine, customers=1_000, today=today)
    monkeypatch.undo()
    assert demo.demo_state(engine) == demo.PARTIAL

    summary = build_demo(engine, customers=1_000, today=today)
    assert not summary.already_built and demo.demo_state(engine) == demo.COMPLETE and not demo_wanted(engine)
    assert build_demo(engine, customers=1_000, today=today).already_built

    fresh = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    upgrade(fresh)
    build_demo(fresh, customers=1_000, today=today)

    def content(e: Engine) -> list:
        with e.connect() as connection:
            return [connection.execute(select(func.count(), func.sum(Event.value), func.max(Event.occurred_at))).one(),
                    connection.scalar(select(func.count()).select_from(Customer)),
                    connection.execute(select(Experiment.name, func.count()).join(Assignment)
                                       .group_by(Experiment.name).order_by(Experiment.name)).all()]

    assert content(engine) == content(fresh)
    fresh.dispose()


def test_demo_customers_alone_are_a_partial_demo_but_other_customers_are_not(engine: Engine) -> None:
    from experiments.db import bulk_insert, session_scope
    from experiments.demo import ABSENT, PARTIAL, demo_state
    from experiments.models import Customer

    with session_scope(engine) as session:
        bulk_insert(session, Customer, [dict(customer_id=f"D{i:07d}", orders_before=0, spend_before=0) for i in range(3)])
    assert demo_state(engine) == PARTIAL  # stopped right after the customers were committed
    with session_scope(engine) as session:
        bulk_insert(session, Customer, [dict(customer_id="C0001", orders_before=0, spend_before=0)])
    assert demo_state(engine) == ABSENT  # someone's own customers: never removed


def test_a_demo_people_have_worked_with_is_never_removed_to_be_built_again(engine: Engine) -> None:
    """A demo built by a release before its last campaign existed looks like a stopped build; once
    someone has left a note on it, or moved a campaign past where the builder leaves it, it is kept."""
    import experiments.demo as demo
    from cli.server import demo_wanted
    from experiments.db import session_scope
    from experiments.models import ExperimentNote, ExperimentStatus

    today = datetime(2026, 11, 23, 4, 0)
    build_demo(engine, customers=1_000, today=today)
    with session_scope(engine) as session:  # the older release's demo: no targeting campaign
        session.execute(delete(Experiment).where(Experiment.name == demo.TARGETING))
    assert demo.demo_state(engine) == demo.PARTIAL and demo_wanted(engine)

    with session_scope(engine) as session:
        main = session.scalar(select(Experiment).where(Experiment.name == demo.MAIN))
        session.add(ExperimentNote(experiment_id=main.id, author="analyst", created_at=today, text="ship ¥10"))
    assert demo.demo_state(engine) == demo.COMPLETE and not demo_wanted(engine)
    assert build_demo(engine, customers=1_000, today=today).already_built
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(ExperimentNote)) == 1
        session.execute(delete(ExperimentNote))
    assert demo.demo_state(engine) == demo.PARTIAL

    with session_scope(engine) as session:  # a decision on the main campaign, which the builder leaves running
        session.scalar(select(Experiment).where(Experiment.name == demo.MAIN)).status = ExperimentStatus.DECIDED
    assert demo.demo_state(engine) == demo.COMPLETE
    with session_scope(engine) as session:
        assert {"demo-dormant-push-vs-sms", "demo-welcome-coupon", demo.MAIN} <= set(
            session.scalars(select(Experiment.name)))

"""Imports are atomic (a bad row rejects the file, naming file, line and field) and idempotent."""

from __future__ import annotations

import gzip
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from experiments.db import session_scope
from experiments.importer import ImportFailed, import_events, import_results
from experiments.models import (
    Assignment,
    Event,
    EventType,
    Experiment,
    MetricDefinition,
    MetricKind,
    MetricRole,
    MetricValue,
    SegmentValue,
    Send,
    Variant,
)

HEADER = "customer_id,event_type,occurred_at,value\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def count(engine: Engine, model: type) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(model))


# Events --------------------------------------------------------------------------------------------

def test_events_are_stored_in_utc(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path, "events.csv", HEADER + "C1,order,2026-12-01 10:00,88.5\nC1,visit,2026-12-01T10:00:00+00:00,\n")
    result = import_events(engine, path)
    assert (result.rows, result.inserted, result.skipped_duplicates, result.already_imported) == (2, 2, 0, False)
    with session_scope(engine) as session:
        rows = session.execute(select(Event.event_type, Event.occurred_at, Event.value).order_by(Event.event_type)).all()
    assert rows == [(EventType.ORDER, datetime(2026, 12, 1, 2, 0), Decimal("88.50")),   # 10:00 in Shanghai
                    (EventType.VISIT, datetime(2026, 12, 1, 10, 0), Decimal("0.00"))]


def test_same_file_twice_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path, "events.csv", HEADER + "C1,order,2026-12-01 10:00,10\nC2,visit,2026-12-02 09:00,\n")
    import_events(engine, path)
    again = import_events(engine, path)
    assert again.already_imported and again.inserted == 0
    assert count(engine, Event) == 2


def test_overlapping_file_adds_only_new_events(engine: Engine, tmp_path: Path) -> None:
    import_events(engine, write(tmp_path, "a.csv", HEADER + "C1,order,2026-12-01 10:00,10\nC2,visit,2026-12-02 09:00,\n"))
    result = import_events(engine, write(tmp_path, "b.csv", HEADER + "C2,visit,2026-12-02 09:00,0\n"
                                                                     "C3,visit,2026-12-03 09:00,\n"
                                                                     "C3,visit,2026-12-03 09:00,\n"))
    assert (result.rows, result.inserted, result.skipped_duplicates) == (3, 1, 1)
    assert count(engine, Event) == 3


def test_gzipped_events_with_bom(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "events.csv.gz"
    path.write_bytes(gzip.compress(("\ufeff" + HEADER + "C1,click,2026-12-01 10:00,\n").encode("utf-8")))
    assert import_events(engine, path).inserted == 1


@pytest.mark.parametrize(
    ("rows", "line", "field", "reason"),
    [
        ("C1,order,2026-12-01 10:00,10\nC2,purchase,2026-12-01 10:00,10\n", 3, "event_type", "unknown event type"),
        ("C1,order,2026-12-01 10:00,10\nC2,order,01/12/2026,10\n", 3, "occurred_at", "not an ISO date-time"),
        ("C1,order,2026-12-01 10:00,-5\n", 2, "value", "negative value"),
        ("C1,order,2026-12-01 10:00,ten\n", 2, "value", "not a number"),
        ("C1,order,2026-12-01 10:00,10\n,visit,2026-12-01 10:00,\n", 3, "customer_id", "empty customer id"),
    ],
)
def test_a_bad_row_rejects_the_whole_file(engine: Engine, tmp_path: Path, rows: str, line: int, field: str,
                                           reason: str) -> None:
    path = write(tmp_path, "bad.csv", HEADER + rows)
    with pytest.raises(ImportFailed) as failure:
        import_events(engine, path)
    assert str(failure.value).startswith(f"bad.csv, line {line}, field {field}: {reason}")
    assert count(engine, Event) == 0
    # Fixed, the same file name imports: the failed attempt recorded nothing.
    assert import_events(engine, write(tmp_path, "bad.csv", HEADER + "C1,order,2026-12-01 10:00,10\n")).inserted == 1


def test_missing_column_is_named(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(ImportFailed, match=r"events.csv: missing column\(s\) occurred_at"):
        import_events(engine, write(tmp_path, "events.csv", "customer_id,event_type\nC1,order\n"))


def test_a_late_unsubscribe_is_reported(engine: Engine, tmp_path: Path) -> None:
    from tests.helpers import AS_OF, add_customers, example_spec, store_spec
    from experiments.assignment import assign
    from experiments.sendlist import write_send_lists

    add_customers(engine, [f"C{i:03d}" for i in range(60)])
    store_spec(engine, example_spec())
    assign(engine, "winback-coupon-2026-12", as_of=AS_OF)
    write_send_lists(engine, "winback-coupon-2026-12", tmp_path / "lists", now=AS_OF)
    with session_scope(engine) as session:
        sent = sorted(session.scalars(select(Send.customer_id)))[:2]
    # They unsubscribed on 28 November, before the 1 December send, but the file arrives only now.
    result = import_events(engine, write(tmp_path, "unsub.csv", HEADER + "".join(
        f"{c},unsubscribe,2026-11-28 12:00,\n" for c in sent)))
    assert result.late_unsubscribes == 2


# Results of a test run elsewhere -------------------------------------------------------------------

RESULTS = "user,arm,returned,revenue,pre_spend,city\n"


def results(engine: Engine, path: Path, **changes) -> object:  # noqa: ANN003
    arguments = dict(experiment="ext", variant_column="arm", control="holdout", metrics=["returned", "revenue"],
                     id_column="user", covariates=["pre_spend"], segments=["city"])
    return import_results(engine, path, **(arguments | changes))


def test_results_become_an_imported_experiment(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path, "ext.csv", RESULTS + "u1,holdout,0,0,10,上海\nu2,sms,1,35.5,-2,北京\nu3,sms,0,0,0,上海\n"
                                                "u4,holdout,1,12,5,广州\n")
    result = results(engine, path, channel="sms")
    assert (result.rows, result.inserted, result.experiment) == (4, 4, "ext")
    with session_scope(engine) as session:
        variants = session.execute(select(Variant.name, Variant.is_control, Variant.share, Variant.channel)
                                   .order_by(Variant.position)).all()
        metrics = session.execute(select(MetricDefinition.name, MetricDefinition.kind, MetricDefinition.role)
                                  .order_by(MetricDefinition.position)).all()
        spend = session.scalar(select(func.sum(MetricValue.value)).where(MetricValue.metric == "revenue"))
        cities = session.scalar(select(func.count()).select_from(SegmentValue))
    assert variants == [("holdout", True, 0.5, None), ("sms", False, 0.5, "sms")]
    assert metrics == [("returned", MetricKind.BINARY, MetricRole.METRIC),
                       ("revenue", MetricKind.CONTINUOUS, MetricRole.METRIC),
                       ("pre_spend", MetricKind.CONTINUOUS, MetricRole.COVARIATE)]
    assert spend == pytest.approx(47.5) and cities == 4
    again = results(engine, path, channel="sms")
    assert again.already_imported and count(engine, Assignment) == 4


@pytest.mark.parametrize(
    ("rows", "changes", "message"),
    [
        ("u1,holdout,0,0,1,a\nu2,sms,1,5,1,b\nu1,sms,0,0,1,c\n", {},
         "ext.csv, line 4, field user: customer 'u1' appears twice (first on line 2)"),
        ("u1,holdout,0,0,1,a\nu2,sms,1,-5,1,b\n", {}, "ext.csv, line 3, field revenue: negative value -5"),
        ("u1,holdout,0,0,1,a\nu2,sms,yes,5,1,b\n", {}, "ext.csv, line 3, field returned: not a number: 'yes'"),
        ("u1,holdout,0,0,1,a\nu2,,1,5,1,b\n", {}, "ext.csv, line 3, field arm: empty variant label"),
        ("u1,control,0,0,1,a\nu2,sms,1,5,1,b\n", {},
         "ext.csv: the control label 'holdout' does not occur in the variant column; labels found: control, sms"),
        ("u1,holdout,0,0,1,a\nu2,sms,1,5,1,b\nu3,push,1,5,1,b\n", {"shares": {"holdout": 0.5, "sms": 0.5}},
         "--shares: give one share per label; missing: push, unknown: -"),
        ("u1,holdout,0,0,1,a\nu2,sms,1,5,1,b\n", {"shares": {"holdout": 0.5, "sms": 0.6}},
         "--shares: shares must be positive and sum to 1"),
        ("u1,holdout,0,0,1,a\n", {"metrics": ["returned", "orders"]}, "ext.csv: missing column(s) orders"),
        ("u1,holdout,0,0,1,a\n", {"channel": "fax"}, "--channel: unknown channel 'fax'"),
    ],
)
def test_bad_results_leave_nothing_behind(engine: Engine, tmp_path: Path, rows: str, changes: dict,
                                          message: str) -> None:
    with pytest.raises(ImportFailed) as failure:
        results(engine, write(tmp_path, "ext.csv", RESULTS + rows), **changes)
    assert str(failure.value).startswith(message)
    assert count(engine, Experiment) == 0 and count(engine, Assignment) == 0 and count(engine, MetricValue) == 0


def test_an_existing_experiment_is_not_overwritten(engine: Engine, tmp_path: Path) -> None:
    results(engine, write(tmp_path, "ext.csv", RESULTS + "u1,holdout,0,0,1,a\nu2,sms,1,5,1,b\n"))
    with pytest.raises(ImportFailed, match="experiment 'ext' already exists"):
        results(engine, write(tmp_path, "ext2.csv", RESULTS + "u1,holdout,1,0,1,a\nu2,sms,1,5,1,b\n"))


def test_hillstrom_imports_with_the_documented_command(engine: Engine, hillstrom_path: Path) -> None:
    def run() -> object:
        return import_results(engine, hillstrom_path, experiment="hillstrom", variant_column="segment",
                              control="No E-Mail", metrics=["visit", "conversion", "spend"])

    assert run().inserted == 64_000
    with session_scope(engine) as session:
        arms = dict(session.execute(
            select(Variant.name, func.count()).join(Assignment, Assignment.variant_id == Variant.id).group_by(Variant.name)
        ).all())
        visits = dict(session.execute(
            select(Variant.name, func.sum(MetricValue.value))
            .join(Assignment, Assignment.variant_id == Variant.id)
            .join(MetricValue, (MetricValue.customer_id == Assignment.customer_id)
                  & (MetricValue.experiment_id == Assignment.experiment_id))
            .where(MetricValue.metric == "visit").group_by(Variant.name)
        ).all())
        spend = session.scalar(
            select(func.sum(MetricValue.value)).join(
                Assignment, (MetricValue.customer_id == Assignment.customer_id)
                & (MetricValue.experiment_id == Assignment.experiment_id))
            .join(Variant, Variant.id == Assignment.variant_id)
            .where(MetricValue.metric == "spend", Variant.name == "Mens E-Mail"))
    assert arms == {"No E-Mail": 21_306, "Mens E-Mail": 21_307, "Womens E-Mail": 21_387}
    assert visits == {"No E-Mail": 2_262, "Mens E-Mail": 3_894, "Womens E-Mail": 3_238}
    assert spend == pytest.approx(30_311.69, abs=0.01)
    assert run().already_imported

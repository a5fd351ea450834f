"""Imports are atomic (a bad row rejects the file, naming file, line and field) and idempotent.

Line numbers are the file's: the header is line 1, the first data row line 2.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, event, func, select, text
from typer.testing import CliRunner

from cli import app
from experiments.access import cli_actor
from experiments.db import session_scope, table_names
from experiments import importer, result_tables
from experiments.importer import ImportFailed, ImportResult
from experiments.result_tables import read_results
from experiments.models import (
    Event,
    EventType,
    Experiment,
    ExperimentSource,
    ExperimentStatus,
    ImportRecord,
    MetricDefinition,
    MetricKind,
    MetricRole,
    ResultBlock,
    ResultTable,
    Send,
    Variant,
)

HEADER = "customer_id,event_type,occurred_at,value\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


ACTOR = cli_actor()


def import_events(engine: Engine, path: Path, **options: object) -> ImportResult:
    return importer.import_events(engine, path, actor=ACTOR, **options)


def import_results(engine: Engine, path: Path, **options: object) -> ImportResult:
    return importer.import_results(engine, path, actor=ACTOR, **options)


def count(engine: Engine, model: type) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(model))


def stored(engine: Engine, name: str) -> list[dict]:
    """The imported experiment's rows, by column name (metrics, covariates and segments by their own),
    ordered by customer id."""
    with session_scope(engine) as session:
        experiment = session.scalars(select(Experiment).where(Experiment.name == name)).one()
        return sorted(read_results(session.connection(), experiment).to_pylist(), key=lambda r: r["customer_id"])


def nothing_stored(engine: Engine) -> bool:
    """No experiment, variant, results, record or audit entry: a failed import left nothing behind."""
    return [count(engine, m) for m in (Experiment, Variant, ResultTable, ResultBlock, ImportRecord)] == [0] * 5


# Events --------------------------------------------------------------------------------------------

def test_events_are_stored_in_utc(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path, "events.csv", HEADER + "C1,order,2026-12-01 10:00,88.5\nC1,visit,2026-12-01T10:00:00+00:00,\n")
    result = import_events(engine, path)
    assert result == ImportResult("events", "events.csv", rows=2, inserted=2, skipped_duplicates=0,
                                  already_imported=False)
    with session_scope(engine) as session:
        rows = session.execute(select(Event.event_type, Event.occurred_at, Event.value).order_by(Event.event_type)).all()
    assert rows == [(EventType.ORDER, datetime(2026, 12, 1, 2, 0), Decimal("88.50")),   # 10:00 in Shanghai
                    (EventType.VISIT, datetime(2026, 12, 1, 10, 0), Decimal("0.00"))]


def test_the_value_column_is_optional(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path, "visits.csv", "event_type,customer_id,occurred_at\nvisit,C1,2026-12-01\n")
    assert import_events(engine, path).inserted == 1
    with session_scope(engine) as session:
        assert session.execute(select(Event.occurred_at, Event.value)).one() == (datetime(2026, 11, 30, 16), 0)


def test_same_file_twice_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path, "events.csv", HEADER + "C1,order,2026-12-01 10:00,10\nC2,visit,2026-12-02 09:00,\n")
    import_events(engine, path)
    again = import_events(engine, path)
    assert again.already_imported and (again.rows, again.inserted, again.skipped_duplicates) == (2, 0, 0)
    assert count(engine, Event) == 2 and count(engine, ImportRecord) == 1


def test_overlapping_file_adds_only_new_events(engine: Engine, tmp_path: Path) -> None:
    import_events(engine, write(tmp_path, "a.csv", HEADER + "C1,order,2026-12-01 10:00,10\nC2,visit,2026-12-02 09:00,\n"))
    result = import_events(engine, write(tmp_path, "b.csv", HEADER + "C2,visit,2026-12-02 09:00,0\n"
                                                                     "C3,visit,2026-12-03 09:00,\n"
                                                                     "C3,visit,2026-12-03 09:00,\n"))
    assert (result.rows, result.inserted, result.skipped_duplicates, result.already_imported) == (3, 1, 1, False)
    assert count(engine, Event) == 3


def test_gzipped_events_with_bom(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "events.csv.gz"
    path.write_bytes(gzip.compress(("\ufeff" + HEADER + "C1,click,2026-12-01 10:00,\n").encode("utf-8")))
    assert import_events(engine, path).inserted == 1


def test_a_broken_gzip_file_is_refused(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "events.csv.gz"
    path.write_bytes(gzip.compress(HEADER.encode())[:-6])
    with pytest.raises(ImportFailed, match="events.csv.gz: not a readable gzip file"):
        import_events(engine, path)


@pytest.mark.parametrize(
    ("rows", "line", "field", "reason"),
    [
        ("C1,order,2026-12-01 10:00,10\nC2,purchase,2026-12-01 10:00,10\n", 3, "event_type",
         "unknown event type 'purchase'; allowed: visit, order, coupon_redeemed, unsubscribe, complaint, delivered, click"),
        ("C1,order,2026-12-01 10:00,10\nC2,order,01/12/2026,10\n", 3, "occurred_at", "not an ISO date-time"),
        ("C1,order,2026-12-01 10:00,-5\n", 2, "value", "negative value -5"),
        ("C1,order,2026-12-01 10:00,ten\n", 2, "value", "not a number: 'ten'"),
        ("C1,order,2026-12-01 10:00,1e15\n", 2, "value", "value 1e15 is too large"),
        ("C1,order,2026-12-01 10:00,10\n,visit,2026-12-01 10:00,\n", 3, "customer_id", "empty customer id"),
        ("C1,order,2026-12-01 10:00,10\n\nC2,visit,2026-12-01 25:00,\n", 4, "occurred_at", "not an ISO date-time"),
    ],
    ids=["event_type", "date", "negative", "number", "too_large", "customer_id", "blank_line_counts"],
)
def test_a_bad_row_rejects_the_whole_file(engine: Engine, tmp_path: Path, rows: str, line: int, field: str,
                                           reason: str) -> None:
    path = write(tmp_path, "bad.csv", HEADER + rows)
    with pytest.raises(ImportFailed) as failure:
        import_events(engine, path)
    assert str(failure.value).startswith(f"bad.csv, line {line}, field {field}: {reason}")
    assert count(engine, Event) == 0 and count(engine, ImportRecord) == 0
    # Fixed, the same file name imports: the failed attempt recorded nothing.
    assert import_events(engine, write(tmp_path, "bad.csv", HEADER + "C1,order,2026-12-01 10:00,10\n")).inserted == 1


@pytest.mark.parametrize("missing", ["customer_id", "occurred_at"])
def test_a_missing_column_is_named(engine: Engine, tmp_path: Path, missing: str) -> None:
    header = [c for c in ("customer_id", "event_type", "occurred_at") if c != missing]
    path = write(tmp_path, "events.csv", ",".join(header) + "\n" + ",".join(["x"] * len(header)) + "\n")
    with pytest.raises(ImportFailed) as failure:
        import_events(engine, path)
    assert str(failure.value).startswith(f"events.csv, line 1, field {missing}: missing column; the header has: ")
    assert count(engine, Event) == 0


def test_a_late_unsubscribe_is_reported(engine: Engine, tmp_path: Path) -> None:
    from experiments.assignment import assign
    from experiments.access import cli_actor
    from experiments.sendlist import write_send_lists
    from tests.helpers import AS_OF, add_customers, example_spec, store_spec

    add_customers(engine, [f"C{i:03d}" for i in range(60)])
    store_spec(engine, example_spec())
    assign(engine, "winback-coupon-2026-12", as_of=AS_OF)
    write_send_lists(engine, "winback-coupon-2026-12", tmp_path / "lists", actor=cli_actor(), now=AS_OF)
    with session_scope(engine) as session:
        sent = sorted(session.scalars(select(Send.customer_id)))[:2]
    # They unsubscribed on 28 November, before the 1 December send, but the file arrives only now.
    result = import_events(engine, write(tmp_path, "unsub.csv", HEADER + "".join(
        f"{c},unsubscribe,2026-11-28 12:00,\n" for c in sent)))
    assert result.late_unsubscribes == 2


# Results of a test run elsewhere -------------------------------------------------------------------

RESULTS = "user,arm,returned,revenue,pre_spend,city\n"


def results(engine: Engine, path: Path, **changes: object) -> ImportResult:
    arguments = dict(experiment="ext", variant_column="arm", control="holdout", metrics=["returned", "revenue"],
                     id_column="user", covariates=["pre_spend"], segments=["city"])
    return import_results(engine, path, **(arguments | changes))


def test_results_become_an_imported_experiment(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path, "ext.csv", RESULTS + "u1,sms,0,0,10,上海\nu2,holdout,1,35.5,-2,北京\nu3,sms,0,0,0,上海\n"
                                                "u4,holdout,1,12,5,广州\n")
    result = results(engine, path, channel="sms")
    assert result == ImportResult("results", "ext.csv", rows=4, inserted=4, skipped_duplicates=0,
                                  already_imported=False, experiment="ext")
    with session_scope(engine) as session:
        experiment = session.scalars(select(Experiment)).one()
        variants = session.execute(select(Variant.name, Variant.is_control, Variant.share, Variant.channel)
                                   .order_by(Variant.position)).all()
        metrics = session.execute(select(MetricDefinition.name, MetricDefinition.kind, MetricDefinition.role)
                                  .order_by(MetricDefinition.position)).all()
    assert (experiment.source, experiment.status, experiment.cohort, experiment.primary_metric, experiment.salt,
            experiment.attribution_days) == (ExperimentSource.IMPORTED, ExperimentStatus.STOPPED, "imported",
                                             "returned", "ext", 14)
    assert variants == [("holdout", True, 0.5, None), ("sms", False, 0.5, "sms")]  # the control comes first
    assert metrics == [("returned", MetricKind.BINARY, MetricRole.METRIC),
                       ("revenue", MetricKind.CONTINUOUS, MetricRole.METRIC),
                       ("pre_spend", MetricKind.CONTINUOUS, MetricRole.COVARIATE)]
    assert stored(engine, "ext") == [
        {"customer_id": "u1", "variant": "sms", "returned": 0, "revenue": 0, "pre_spend": 10, "city": "上海"},
        {"customer_id": "u2", "variant": "holdout", "returned": 1, "revenue": 35.5, "pre_spend": -2, "city": "北京"},
        {"customer_id": "u3", "variant": "sms", "returned": 0, "revenue": 0, "pre_spend": 0, "city": "上海"},
        {"customer_id": "u4", "variant": "holdout", "returned": 1, "revenue": 12, "pre_spend": 5, "city": "广州"}]

    again = results(engine, path, channel="sms")
    assert again.already_imported and (again.rows, again.inserted) == (4, 0)
    assert len(stored(engine, "ext")) == 4 and count(engine, ImportRecord) == 1


def test_gzipped_results_are_hashed_as_their_content(engine: Engine, tmp_path: Path) -> None:
    """The content is hashed as pyarrow reads it: decompressed, as the events' and the exact reader's hash."""
    from experiments.audit import Action, entries

    text = "\ufeff" + RESULTS + "u1,sms,0,0,10,上海\nu2,holdout,1,35.5,-2,北京\n"
    path = tmp_path / "ext.csv.gz"
    path.write_bytes(gzip.compress(text.encode("utf-8")))
    assert results(engine, path).inserted == 2 and results(engine, path).already_imported
    with session_scope(engine) as session:
        logged = entries(session, actions=[Action.IMPORT_RESULTS])
    assert [e.details["sha256"] for e in logged] == [hashlib.sha256(text.encode("utf-8")).hexdigest()]


def test_a_gzip_file_broken_after_its_first_megabyte_is_refused(engine: Engine, tmp_path: Path) -> None:
    rows = "".join(f"u{i},{('holdout', 'sms')[i % 2]},0,{i % 7},1,a\n" for i in range(80_000))
    path = tmp_path / "ext.csv.gz"
    path.write_bytes(gzip.compress((RESULTS + rows).encode())[:-1000])
    with pytest.raises(ImportFailed, match="ext.csv.gz: not a readable gzip file"):
        results(engine, path)
    assert nothing_stored(engine)


def test_without_an_id_column_the_row_number_is_the_customer(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path, "ext.csv", "arm,returned\nA,1\nB,0\n\nA,0\n")
    import_results(engine, path, experiment="ext", variant_column="arm", control="A", metrics=["returned"],
                   shares={"A": 0.25, "B": 0.75})
    with session_scope(engine) as session:
        shares = dict(session.execute(select(Variant.name, Variant.share)).all())
    assert [(r["customer_id"], r["variant"]) for r in stored(engine, "ext")] == [("1", "A"), ("2", "B"), ("3", "A")]
    assert shares == {"A": 0.25, "B": 0.75}


@pytest.mark.parametrize(
    ("rows", "changes", "message"),
    [
        ("u1,holdout,0,0,1,a\nu2,sms,1,5,1,b\nu1,sms,0,0,1,c\n", {},
         "ext.csv, line 4, field user: customer 'u1' appears twice (first on line 2)"),
        ("u1,holdout,0,0,1,a\nu2,sms,1,-5,1,b\n", {}, "ext.csv, line 3, field revenue: negative value -5"),
        ("u1,holdout,0,0,1,a\nu2,sms,maybe,5,1,b\n", {}, "ext.csv, line 3, field returned: not a number: 'maybe'"),
        ("u1,holdout,0,0,1,a\nu2,sms,1,inf,1,b\n", {}, "ext.csv, line 3, field revenue: not a finite number: 'inf'"),
        ("u1,holdout,0,0,,a\n", {}, "ext.csv, line 2, field pre_spend: empty value"),
        ("u1,holdout,0,0,1,a\nu2,,1,5,1,b\n", {}, "ext.csv, line 3, field arm: empty variant label"),
        ("u1,control,0,0,1,a\nu2,sms,1,5,1,b\n", {},
         "ext.csv, field arm: the control label 'holdout' does not occur; labels found: control, sms"),
        ("u1,holdout,0,0,1,a\nu2,sms,1,5,1,b\nu3,push,1,5,1,b\n", {"shares": {"holdout": 0.5, "sms": 0.5}},
         "--shares: give one share per label; missing: push, unknown: -"),
        ("u1,holdout,0,0,1,a\nu2,sms,1,5,1,b\n", {"shares": {"holdout": 0.5, "sms": 0.6}},
         "--shares: shares must be positive and sum to 1; they sum to 1.1"),
        ("u1,holdout,0,0,1,a\n", {"metrics": ["returned", "orders"]},
         "ext.csv, line 1, field orders: missing column; the header has: user, arm, returned"),
        ("u1,holdout,0,0,1,a\n", {"covariates": ["returned"]}, "--metrics/--covariates: returned named more than once"),
        ("u1,holdout,0,0,1,a\n", {"channel": "fax"}, "--channel: unknown channel 'fax'"),
        ("u1,holdout,0,0,1,a\n", {"experiment": "two words"}, "--experiment: 'two words' is not a name"),
    ],
    ids=["duplicate_customer", "negative", "not_a_number", "infinite", "empty", "empty_label", "no_control",
         "shares_missing", "shares_sum", "missing_column", "metric_twice", "channel", "experiment_name"],
)
def test_bad_results_leave_nothing_behind(engine: Engine, tmp_path: Path, rows: str, changes: dict,
                                          message: str) -> None:
    with pytest.raises(ImportFailed) as failure:
        results(engine, write(tmp_path, "ext.csv", RESULTS + rows), **changes)
    assert str(failure.value).startswith(message)
    assert nothing_stored(engine)


def test_an_existing_experiment_is_not_overwritten(engine: Engine, tmp_path: Path) -> None:
    first = write(tmp_path, "ext.csv", RESULTS + "u1,holdout,0,0,1,a\nu2,sms,1,5,1,b\n")
    results(engine, first)
    with pytest.raises(ImportFailed, match="ext2.csv: experiment 'ext' already exists"):
        results(engine, write(tmp_path, "ext2.csv", RESULTS + "u1,holdout,1,0,1,a\nu2,sms,1,5,1,b\n"))
    with pytest.raises(ImportFailed, match="experiment 'ext' already exists"):  # same file, other arguments
        results(engine, first, metrics=["revenue"])
    assert count(engine, Experiment) == 1 and len(stored(engine, "ext")) == 2


def test_hillstrom_imports_with_the_documented_command(engine: Engine, hillstrom_path: Path) -> None:
    def run() -> ImportResult:
        return import_results(engine, hillstrom_path, experiment="hillstrom", variant_column="segment",
                              control="No E-Mail", metrics=["visit", "conversion", "spend"],
                              covariates=["history", "recency"], segments=["channel", "zip_code", "newbie"])

    assert run().inserted == 64_000  # its speed is measured by benchmarks/imports.py, not timed here
    rows = stored(engine, "hillstrom")
    arms = {label: sum(1 for r in rows if r["variant"] == label) for label in {r["variant"] for r in rows}}
    visits = {label: sum(r["visit"] for r in rows if r["variant"] == label) for label in arms}
    spend = sum(r["spend"] for r in rows if r["variant"] == "Mens E-Mail")
    with session_scope(engine) as session:
        kinds = dict(session.execute(select(MetricDefinition.name, MetricDefinition.kind)
                                     .where(MetricDefinition.role == MetricRole.METRIC)).all())
        order = session.scalars(select(Variant.name).order_by(Variant.position)).all()
    assert order == ["No E-Mail", "Mens E-Mail", "Womens E-Mail"]
    assert arms == {"No E-Mail": 21_306, "Mens E-Mail": 21_307, "Womens E-Mail": 21_387}
    assert visits == {"No E-Mail": 2_262, "Mens E-Mail": 3_894, "Womens E-Mail": 3_238}
    assert spend == pytest.approx(30_311.69, abs=0.01)
    assert kinds == {"visit": MetricKind.BINARY, "conversion": MetricKind.BINARY, "spend": MetricKind.CONTINUOUS}
    assert set(rows[0]) == {"customer_id", "variant", "visit", "conversion", "spend", "history", "recency",
                            "channel", "zip_code", "newbie"}

    again = run()
    assert again.already_imported and again.inserted == 0
    assert len(stored(engine, "hillstrom")) == 64_000 and count(engine, ImportRecord) == 1


# The command line ----------------------------------------------------------------------------------

def test_the_cli_imports_events_and_names_a_bad_row(database_url: str, engine: Engine, tmp_path: Path) -> None:
    runner = CliRunner()
    good = write(tmp_path, "events.csv", HEADER + "C1,order,2026-12-01 10:00,88.5\nC2,visit,2026-12-01 11:00,\n")
    imported = runner.invoke(app, ["import", "events", str(good), "--db", database_url])
    assert imported.exit_code == 0, imported.output
    assert "events.csv: 2 rows, 2 inserted" in imported.output

    bad = write(tmp_path, "late.csv", HEADER + "C3,order,2026-12-02 10:00,10\nC4,refund,2026-12-02 11:00,5\n")
    rejected = runner.invoke(app, ["import", "events", str(bad), "--db", database_url])
    assert rejected.exit_code == 1
    assert "late.csv, line 3, field event_type: unknown event type 'refund'" in rejected.output
    assert count(engine, Event) == 2


# Streaming in chunks -------------------------------------------------------------------------------

def table_rows(engine: Engine, *models: type) -> dict[str, list[tuple]]:
    """Every row of ``models`` without generated ids and import times, sorted: comparable across databases."""
    skip = {"id", "imported_at", "created_at", "launched_at", "assigned_at", "experiment_id", "variant_id"}
    with session_scope(engine) as session:
        return {m.__tablename__: sorted(
            tuple(str(getattr(r, c.key)) for c in m.__table__.columns if c.key not in skip)
            for r in session.scalars(select(m))) for m in models}


def test_an_error_after_the_first_chunk_rolls_back_every_chunk(engine: Engine, tmp_path: Path) -> None:
    good = "".join(f"C{i},visit,2026-12-01 10:{i % 60:02d},\n" for i in range(25))
    path = write(tmp_path, "late.csv", HEADER + good + "C99,visit,2026-12-32 10:00,\n")
    with pytest.raises(ImportFailed, match="late.csv, line 27, field occurred_at: not an ISO date-time"):
        import_events(engine, path, chunk=4)  # six chunks written before the seventh fails
    assert count(engine, Event) == 0 and count(engine, ImportRecord) == 0


def test_a_failure_after_the_fast_load_leaves_no_events(engine: Engine, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path's savepoint sits inside the import's transaction: its release commits nothing (on
    SQLite a savepoint opened outside a transaction is one, and its release committed the events)."""
    path = write(tmp_path, "ok.csv", HEADER + "".join(f"C{i},visit,2026-12-01 10:{i % 60:02d},\n" for i in range(25)))

    def broken(*_: object) -> int:
        raise RuntimeError("after the load")

    monkeypatch.setattr(importer, "_late_unsubscribes", broken)
    with pytest.raises(RuntimeError, match="after the load"):
        import_events(engine, path)
    assert count(engine, Event) == 0 and count(engine, ImportRecord) == 0


def test_a_results_error_after_the_first_chunk_rolls_back_every_chunk(engine: Engine, tmp_path: Path) -> None:
    rows = "".join(f"u{i},{'holdout' if i % 2 else 'sms'},0,0,1,a\n" for i in range(10))
    with pytest.raises(ImportFailed, match=r"ext.csv, line 12, field user: customer 'u3' appears twice \(first on line 5\)"):
        results(engine, write(tmp_path, "ext.csv", RESULTS + rows + "u3,sms,0,0,1,a\n"), chunk=3)
    with pytest.raises(ImportFailed, match="ext.csv, line 12, field revenue: negative value -1"):
        results(engine, write(tmp_path, "ext.csv", RESULTS + rows + "u10,sms,0,-1,1,a\n"), chunk=3)
    assert nothing_stored(engine)


def test_chunked_and_unchunked_event_imports_store_the_same(database_url: str, tmp_path: Path) -> None:
    from experiments.db import make_engine
    from tests.conftest import fresh_database

    def folder(path: Path) -> Path:
        path.mkdir()
        return path

    def rows(numbers: range) -> str:
        return "".join(f"C{i % 7},order,2026-12-0{1 + i % 5} 10:00,{i}\n" for i in numbers)

    first = write(tmp_path, "a.csv", HEADER + rows(range(30)))
    # Overlaps the first file (10 rows), repeats its own rows across chunks (15), unsubscribes a customer.
    second = write(tmp_path, "b.csv", HEADER + rows(range(20, 45)) + rows(range(30, 45)) + "C1,unsubscribe,2026-12-02,\n")
    outcomes, tables = [], []
    for chunk in (3, 1_000):
        engine = make_engine(fresh_database(folder(tmp_path / f"chunk{chunk}")))
        outcomes.append([import_events(engine, path, chunk=chunk) for path in (first, second, second)])
        tables.append(table_rows(engine, Event, ImportRecord))
        engine.dispose()
    assert outcomes[0] == outcomes[1]
    assert [(r.inserted, r.skipped_duplicates, r.already_imported) for r in outcomes[0]] == \
        [(30, 0, False), (16, 10, False), (0, 0, True)]
    assert tables[0] == tables[1]


def test_the_fast_and_the_exact_reader_store_the_same(database_url: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A well-formed file takes pyarrow's reader; a line of spaces (which it cannot parse) sends the same
    rows through the exact row-by-row reader, chunked or not: all three store the same, byte for byte, in
    blocks of the same rows."""
    from experiments.db import make_engine
    from tests.conftest import fresh_database

    monkeypatch.setattr(result_tables, "ROWS_PER_BLOCK", 5)

    def folder(path: Path) -> Path:
        path.mkdir()
        return path

    rows = [f"u{(i * 7) % 23},{('holdout', 'sms', 'push')[i % 3]},{('0', 'TRUE', 'no', '是')[i % 4]},{i * 1.5},"
            f"{i - 10},c{i % 4}\n" for i in range(23)]
    fast = write(tmp_path, "ext.csv", RESULTS + "".join(rows))
    exact = write(tmp_path / folder(tmp_path / "spaces"), "ext.csv", RESULTS + "".join(rows[:5]) + "   \n"
                  + "".join(rows[5:]))
    outcomes, tables = [], []
    for path, chunk in ((fast, 1_000), (exact, 2), (exact, 1_000)):
        engine = make_engine(fresh_database(folder(tmp_path / f"db{len(outcomes)}")))
        outcomes.append(results(engine, path, chunk=chunk))
        tables.append(table_rows(engine, Experiment, Variant, MetricDefinition, ImportRecord, ResultBlock))
        tables[-1]["results"] = sorted(tuple(r.values()) for r in stored(engine, "ext"))
        engine.dispose()
    assert outcomes[0] == outcomes[1] == outcomes[2] and outcomes[0].inserted == 23
    assert tables[0]["results"] == tables[1]["results"] == tables[2]["results"]
    assert tables[0]["result_blocks"] == tables[1]["result_blocks"] and len(tables[0]["result_blocks"]) == 5
    assert tables[1] == tables[2]
    assert {r[2] for r in tables[0]["results"]} == {0.0, 1.0}  # TRUE, 是 → 1; no, 0 → 0


def test_the_fast_and_the_exact_event_readers_store_the_same(database_url: str, tmp_path: Path) -> None:
    """pyarrow's reader and a staging table, or (a line of spaces it cannot parse) the row-by-row reader:
    the same events, the same already-stored ones skipped, the same repeats within the file counted once."""
    from experiments.db import make_engine
    from tests.conftest import fresh_database

    first = write(tmp_path, "a.csv", HEADER + "C1,order,2026-12-01 10:00,10\nC2,visit,2026-12-02,\n")
    rows = ["C2,Visit ,2026-12-02,0\n", " C3 ,order,2026-12-03T09:30:15.5,12.3\n",
            "C3,order,2026-12-03 09:30:15.5,12.30\n", "C4,click,2026-12-04 23:59,\n", "C1,unsubscribe,2026-12-05 08:00,\n"]
    spaced = tmp_path / "spaced"
    spaced.mkdir()
    files = [write(tmp_path, "b.csv", HEADER + "".join(rows)),
             write(spaced, "b.csv", HEADER + "".join(rows[:2]) + "   \n" + "".join(rows[2:]))]
    outcomes, tables = [], []
    for i, second in enumerate(files):
        folder = tmp_path / f"db{i}"
        folder.mkdir()
        engine = make_engine(fresh_database(folder))
        outcomes.append([(r.rows, r.inserted, r.skipped_duplicates) for r in
                         (import_events(engine, first), import_events(engine, second))])
        tables.append(table_rows(engine, Event))
        engine.dispose()
    assert outcomes[0] == outcomes[1] == [(2, 2, 0), (5, 3, 1)]
    assert tables[0] == tables[1]


def test_concurrent_overlapping_event_imports_store_each_event_once(database_url: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Two overlapping files imported at once: the second's INSERT meets the first's uncommitted rows (on
    PostgreSQL it waits on the unique key, fails when the first commits, and the import runs again; SQLite
    has one writer at a time). Every event is stored once and the counts add up."""
    from experiments.db import make_engine

    def rows(numbers: range) -> str:
        return "".join(f"C{i % 50},order,2026-12-0{1 + i % 5} 10:{i % 60:02d},{i}\n" for i in numbers)

    first = write(tmp_path, "a.csv", HEADER + rows(range(0, 300)))
    second = write(tmp_path, "b.csv", HEADER + rows(range(200, 500)) + rows(range(450, 470)))  # 20 repeats within
    inserting = {name: threading.Event() for name in ("a.csv", "b.csv")}
    calls = {"a.csv": 0, "b.csv": 0}
    real = importer.insert_new_rows

    def racing(connection, target, staged, key) -> int:  # noqa: ANN001
        name = "a.csv" if connection.scalar(select(func.count()).select_from(staged)) == 300 else "b.csv"
        calls[name] += 1
        inserting[name].set()
        inserted = real(connection, target, staged, key)
        if name == "a.csv" and connection.dialect.name == "postgresql":
            inserting["b.csv"].wait(30)  # b's INSERT started: it now waits on a's rows until a commits
            time.sleep(0.5)
        return inserted

    monkeypatch.setattr(importer, "insert_new_rows", racing)
    engines = [make_engine(database_url) for _ in range(2)]
    outcome: dict[str, ImportResult] = {}
    worker = threading.Thread(target=lambda: outcome.update(a=import_events(engines[0], first)))
    worker.start()
    assert inserting["a.csv"].wait(30)
    outcome["b"] = import_events(engines[1], second)
    worker.join(60)
    for e in engines:
        e.dispose()
    assert (outcome["a"].inserted, outcome["a"].skipped_duplicates) == (300, 0)
    assert (outcome["b"].rows, outcome["b"].inserted, outcome["b"].skipped_duplicates) == (320, 200, 100)
    engine = make_engine(database_url)
    assert count(engine, Event) == 500
    if engine.dialect.name == "postgresql":
        assert calls == {"a.csv": 1, "b.csv": 2}  # b met a's rows, and ran again once a had committed
    engine.dispose()


def test_a_customers_events_in_a_window_are_read_through_the_natural_key(engine: Engine, tmp_path: Path) -> None:
    """events keeps one index (migration 0012): the natural key, led by (customer, time), serves the
    attribution window, the send list's probes and the import's own look-ups."""
    import_events(engine, write(tmp_path, "events.csv", HEADER + "C1,order,2026-12-01 10:00,10\n"))
    window = ("SELECT occurred_at, event_type, value FROM events WHERE customer_id = 'C1' "
              "AND occurred_at >= '2026-11-01' AND occurred_at < '2026-12-08'")
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            plan = " ".join(row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + window))
            assert "USING COVERING INDEX sqlite_autoindex_events" in plan and "customer_id=? AND occurred_at>?" in plan
        else:
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a one-row table: ask what can serve it
            plan = " ".join(row[0] for row in connection.exec_driver_sql("EXPLAIN " + window))
            assert "uq_events_natural_key" in plan and "occurred_at >=" in plan.split("Index Cond:")[1]


def test_import_progress_bar_does_not_change_the_outcome(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path, "events.csv", HEADER + "C1,order,2026-12-01 10:00,88.5\nC2,visit,2026-12-01 11:00,\n")
    assert import_events(engine, path, chunk=1, progress=True).inserted == 2


# Inputs that cannot be right (issue 11) --------------------------------------------------------------

def test_customer_ids_are_normalised_in_both_imports(engine: Engine, tmp_path: Path) -> None:
    import_events(engine, write(tmp_path, "events.csv", HEADER + " d0000021 ,unsubscribe,2026-12-01 10:00,\n"
                                                                 "\u3000D0000022\u3000,visit,2026-12-01 10:00,\n"))
    with session_scope(engine) as session:
        assert sorted(session.scalars(select(Event.customer_id))) == ["D0000022", "d0000021"]  # case kept
    results(engine, write(tmp_path, "ext.csv", RESULTS + " u1 ,holdout,0,0,1,a\nu2\t,sms,1,5,1,b\n"))
    assert [r["customer_id"] for r in stored(engine, "ext")] == ["u1", "u2"]


@pytest.mark.parametrize("value", ["C\x001", "C\x1b1", "C\u20281"], ids=["nul", "escape", "line_separator"])
def test_control_characters_in_a_customer_id_are_refused(engine: Engine, tmp_path: Path, value: str) -> None:
    with pytest.raises(ImportFailed, match=r"^events.csv, line 3, field customer_id: customer id contains a "
                                           r"control character \(U\+"):
        import_events(engine, write(tmp_path, "events.csv",
                                    HEADER + f"C0,visit,2026-12-01,\n{value},visit,2026-12-01,\n"))
    with pytest.raises(ImportFailed, match=r"^ext.csv, line 3, field user: customer id contains a control character"):
        results(engine, write(tmp_path, "ext.csv", RESULTS + f"u0,holdout,0,0,1,a\n{value},sms,0,0,1,a\n"))
    assert count(engine, Event) == 0 and nothing_stored(engine)


def test_an_event_in_the_future_is_refused(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECALL_CLOCK_SKEW_MINUTES", "10")
    now = datetime(2026, 12, 1, 2, 0)  # 10:00 in Shanghai
    soon = write(tmp_path, "soon.csv", HEADER + "C1,visit,2026-12-01 10:09,\n")
    assert import_events(engine, soon, now=now).inserted == 1  # within the clocks' skew
    late = write(tmp_path, "late.csv", HEADER + "C1,visit,2026-12-01 09:00,\nC2,order,2026-12-01 10:11,5\n")
    with pytest.raises(ImportFailed, match=r"^late.csv, line 3, field occurred_at: 2026-12-01 10:11 is in the future "
                                           r"\(more than 10 minutes after now; RECALL_CLOCK_SKEW_MINUTES\)"):
        import_events(engine, late, now=now)
    assert count(engine, Event) == 1


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("u2,/../../escaped,1,5,1,b", "line 3, field arm: variant label '/../../escaped' contains a path separator"),
        ("u2,..,1,5,1,b", "line 3, field arm: variant label '..' is not a name"),
        ("u2,sms,1,5,1,a\x07b", "line 3, field city: segment value contains a control character (U+0007)"),
        ("u2,sms,1,1e308,1,b", "line 3, field revenue: value 1e308 is out of range (at most 1,000,000,000"),
        ("u2,sms,1,5,-2e9,b", "line 3, field pre_spend: value -2e9 is out of range"),
    ],
    ids=["path_label", "dot_dot", "segment_control", "huge", "huge_covariate"],
)
def test_labels_segments_and_values_that_cannot_be_right_are_refused(engine: Engine, tmp_path: Path, row: str,
                                                                     message: str) -> None:
    with pytest.raises(ImportFailed) as failure:
        results(engine, write(tmp_path, "ext.csv", RESULTS + "u1,holdout,0,0,1,a\n" + row + "\n"))
    assert str(failure.value).startswith(f"ext.csv, {message}")
    assert nothing_stored(engine)


def test_binary_outcomes_may_be_words(engine: Engine, tmp_path: Path) -> None:
    words = ["0", "1", "TRUE", "false", "T", "f", "Yes", "no", "y", "N", "是", "否"]
    rows = "".join(f"u{i},{('holdout', 'sms')[i % 2]},{w},0,1,a\n" for i, w in enumerate(words))
    results(engine, write(tmp_path, "ext.csv", RESULTS + rows))
    assert [r["returned"] for r in sorted(stored(engine, "ext"), key=lambda r: int(r["customer_id"][1:]))] == \
        [0, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0]
    with session_scope(engine) as session:
        assert session.scalar(select(MetricDefinition.kind).where(MetricDefinition.name == "returned")) == \
            MetricKind.BINARY
    with pytest.raises(ImportFailed, match=r"^bad.csv, line 3, field returned: not a number: 'oui'"):
        results(engine, write(tmp_path, "bad.csv", RESULTS + "u1,holdout,1,0,1,a\nu2,sms,oui,0,1,a\n"),
                experiment="ext2")


def test_a_label_of_a_handful_of_customers_is_named_and_fails_the_srm_check(engine: Engine, tmp_path: Path) -> None:
    from analysis.report import build_report

    rows = "".join(f"u{i},{('holdout', 'sms')[i % 2]},{i % 3 == 0:d},0,1,a\n" for i in range(400))
    # Shares that expect about one 'Contrl' customer: the χ² test alone would see no mismatch.
    shares = {"holdout": 0.4975, "sms": 0.4975, "Contrl": 0.005}
    result = results(engine, write(tmp_path, "ext.csv", RESULTS + rows + "u400,Contrl,1,0,1,a\n"), shares=shares)
    assert len(result.warnings) == 1 and "label 'Contrl' is held by only 1 customer" in result.warnings[0]
    srm = build_report(engine, "ext").srm
    assert srm.p_value > 0.001 and srm.mismatch and "'Contrl'" in srm.reason
    assert build_report(engine, "ext").to_dict()["srm"]["reason"] == srm.reason


def test_with_shares_a_label_outside_the_design_is_named_with_its_line(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path, "ext.csv", RESULTS + "u1,holdout,0,0,1,a\nu2,sms,1,5,1,b\nu3,Contrl,1,5,1,b\n")
    message = r"^--shares: give one share per label; missing: Contrl, unknown: - \(ext.csv, line 4, field arm: "
    with pytest.raises(ImportFailed, match=message + r"variant label 'Contrl' is not in the design\)"):
        results(engine, path, shares={"holdout": 0.5, "sms": 0.5})
    assert nothing_stored(engine)


def test_imports_are_audited_and_need_the_import_permission(engine: Engine, tmp_path: Path) -> None:
    from experiments.access import Actor, Forbidden, Role
    from experiments.audit import Action, entries

    events = write(tmp_path, "events.csv", HEADER + "C1,visit,2026-12-01 10:00,\n")
    ext = write(tmp_path, "ext.csv", RESULTS + "u1,holdout,0,0,1,a\nu2,sms,1,5,1,b\n")
    viewer = Actor("boss", Role.VIEWER, "app")
    with pytest.raises(Forbidden):
        importer.import_events(engine, events, actor=viewer)
    with pytest.raises(Forbidden):
        importer.import_results(engine, ext, actor=viewer, experiment="ext", variant_column="arm", control="holdout",
                                metrics=["returned"])
    analyst = Actor("ana", Role.ANALYST, "app")
    importer.import_events(engine, events, actor=analyst)
    importer.import_results(engine, ext, actor=analyst, experiment="ext", variant_column="arm", control="holdout",
                            metrics=["returned"])
    with session_scope(engine) as session:
        logged = entries(session, actions=[Action.IMPORT_EVENTS, Action.IMPORT_RESULTS])
    sha = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (events, ext)}
    assert [(e.actor, e.action, e.target, e.details) for e in logged] == [
        ("ana", "import_results", "ext", {"file": "ext.csv", "rows": 2, "sha256": sha["ext.csv"]}),
        ("ana", "import_events", "events.csv", {"file": "events.csv", "rows": 1, "sha256": sha["events.csv"]})]


# Storage: one wide table per imported experiment, its sums, and what reads them -----------------------

def _random_results(tmp_path: Path, n: int = 3_000, seed: int = 7) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    data = {
        "user": np.array([f"c{i:05d}" for i in rng.permutation(n)]),
        "arm": rng.choice(["holdout", "sms", "push"], n, p=[0.2, 0.4, 0.4]),
        "returned": (rng.random(n) < 0.2).astype(float),
        "revenue": np.where(rng.random(n) < 0.1, np.round(rng.lognormal(4, 1.2, n), 2), 0.0),
        "pre_spend": np.round(rng.normal(50, 80, n), 2),
        "orders_before": rng.poisson(2, n).astype(float),
        "city": rng.choice(["上海", "北京", "广州"], n),
        "tier": rng.choice(["high", "low"], n),
    }
    path = tmp_path / "random.csv"
    columns = list(data)
    path.write_text(",".join(columns) + "\n" + "".join(
        ",".join(str(data[c][i]) for c in columns) + "\n" for i in range(n)), encoding="utf-8")
    return path, data


def _import_random(engine: Engine, path: Path) -> ImportResult:
    return import_results(engine, path, experiment="rand", variant_column="arm", control="holdout",
                   metrics=["returned", "revenue"], id_column="user", covariates=["pre_spend", "orders_before"],
                   segments=["city", "tier"])


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def test_the_report_reads_the_per_customer_sums_exactly(engine: Engine, tmp_path: Path) -> None:
    """Every statistic a report reads of an imported experiment equals the per-customer computation."""
    from analysis.aggregates import capped_statistics, covariate_statistics, experiment_statistics
    from analysis.segments import segment_statistics

    path, data = _random_results(tmp_path)
    _import_random(engine, path)
    with session_scope(engine) as session:
        experiment = session.scalars(select(Experiment).where(Experiment.name == "rand")).one()
        conn = session.connection()
        ids = {v.name: v.id for v in experiment.variants}
        arms = experiment_statistics(conn, experiment).arms
        segments = segment_statistics(conn, experiment, "revenue")
        adjusted = covariate_statistics(conn, experiment, "revenue", ["pre_spend", "orders_before"])
        cap, capped = capped_statistics(conn, experiment, "revenue", 0.9)
    positive = np.sort(data["revenue"][data["revenue"] > 0])
    expected_cap = positive[math.ceil(0.9 * len(positive)) - 1]
    assert cap == expected_cap
    for label, variant_id in ids.items():
        arm = data["arm"] == label
        assert arms[variant_id].n == arm.sum()
        for metric in ("returned", "revenue"):
            x = data[metric][arm]
            got = arms[variant_id].metrics[metric]
            assert all(_close(a, b) for a, b in zip((got.sum, got.sum_sq, got.sum_cu),
                                                    (x.sum(), (x * x).sum(), (x ** 3).sum()), strict=True))
        y, xs = data["revenue"][arm], np.column_stack([data["pre_spend"][arm], data["orders_before"][arm]])
        stats = adjusted[variant_id]
        assert stats.n == arm.sum() and _close(stats.sum_y, y.sum()) and _close(stats.sum_y2, (y * y).sum())
        assert np.allclose(stats.sum_x, xs.sum(axis=0), rtol=1e-9) and np.allclose(stats.sum_xy, xs.T @ y, rtol=1e-9)
        assert np.allclose(stats.sum_x2, xs.T @ xs, rtol=1e-9)
        capped_values = np.minimum(y, expected_cap)
        assert _close(capped[variant_id].sum, capped_values.sum())
        assert _close(capped[variant_id].sum_sq, (capped_values ** 2).sum())
        for dimension in ("city", "tier"):
            for value in set(data[dimension]):
                cell = arm & (data[dimension] == value)
                got = segments[(dimension, value)][variant_id]
                assert got.n == cell.sum() and _close(got.sum, data["revenue"][cell].sum())
                assert _close(got.sum_sq, (data["revenue"][cell] ** 2).sum())


def test_experiments_imported_before_the_wide_tables_migrate_both_ways(database_url: str, tmp_path: Path) -> None:
    """Down to the long tables (0007) and up again: the data moves, the report stays the same."""
    from analysis.report import build_report
    from experiments.db import downgrade, make_engine, upgrade

    engine = make_engine(database_url)
    path, _ = _random_results(tmp_path, n=500)
    _import_random(engine, path)
    before = build_report(engine, "rand", cuped=True).to_dict()
    downgrade(engine, "0007")
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM metric_values")) == 500 * 4
        assert connection.scalar(text("SELECT count(*) FROM segment_values")) == 500 * 2
        assert connection.scalar(text("SELECT count(*) FROM assignments")) == 500
    assert not [t for t in table_names(engine) if t.startswith("results_")]
    upgrade(engine)
    after = build_report(engine, "rand", cuped=True).to_dict()
    assert count(engine, ResultTable) == 1 and "metric_values" not in table_names(engine)
    del before["generated_at"], after["generated_at"]
    assert _same_numbers(before, after)
    engine.dispose()


def test_the_wide_tables_become_blocks_with_the_same_rows(database_url: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Migration 0013 turns each results_<id> table into blocks of the same rows (and drops tables left by
    deleted experiments); its downgrade makes the table again. The report stays the same."""
    from analysis.report import build_report
    from experiments.db import downgrade, make_engine, upgrade

    engine = make_engine(database_url)
    monkeypatch.setattr(result_tables, "ROWS_PER_BLOCK", 700)
    path, _ = _random_results(tmp_path, n=3_000)
    _import_random(engine, path)
    rows, before = stored(engine, "rand"), build_report(engine, "rand", cuped=True, cap=0.95).to_dict()
    assert count(engine, ResultBlock) == 5  # 4 × 700 + 200
    downgrade(engine, "0012")
    with engine.begin() as connection:
        experiment_id = connection.scalar(text("SELECT id FROM experiments WHERE name = 'rand'"))
        wide = connection.execute(text(f"SELECT customer_id, variant, v0, v1, v2, v3, s0, s1 FROM results_{experiment_id} "
                                       "ORDER BY customer_id")).all()
        connection.execute(text("CREATE TABLE results_999 (customer_id VARCHAR(64) NOT NULL)"))  # its experiment deleted
    assert [tuple(r) for r in wide] == [tuple(r.values()) for r in rows]
    upgrade(engine)
    assert stored(engine, "rand") == rows
    assert not [t for t in table_names(engine) if t.startswith("results_")]
    after = build_report(engine, "rand", cuped=True, cap=0.95).to_dict()
    del before["generated_at"], after["generated_at"]
    assert _same_numbers(before, after)
    engine.dispose()


def test_capped_statistics_of_imported_results_equal_numpy(engine: Engine, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The cap (nearest rank of the positive values) and each variant's n, Σx, Σx², Σx³ of the capped
    values, read from several stored blocks, equal numpy's per-customer computation to 1e-9."""
    from analysis.aggregates import capped_statistics

    monkeypatch.setattr(result_tables, "ROWS_PER_BLOCK", 1_000)
    path, data = _random_results(tmp_path)
    _import_random(engine, path)
    with session_scope(engine) as session:
        experiment = session.scalars(select(Experiment).where(Experiment.name == "rand")).one()
        ids = {v.name: v.id for v in experiment.variants}
        found = {(metric, q): capped_statistics(session.connection(), experiment, metric, q)
                 for metric in ("revenue", "pre_spend", "orders_before") for q in (0.5, 0.9, 0.99, 1.0)}
    assert count(engine, ResultBlock) == 3
    for (metric, q), (cap, stats) in found.items():
        positive = np.sort(data[metric][data[metric] > 0])
        expected = positive[max(math.ceil(q * len(positive)) - 1, 0)]
        assert cap == expected
        for label, variant_id in ids.items():
            x = np.minimum(data[metric][data["arm"] == label], expected)
            got = stats[variant_id]
            assert got.n == len(x)
            assert all(_close(a, b) for a, b in zip((got.sum, got.sum_sq, got.sum_cu),
                                                    (x.sum(), (x ** 2).sum(), (x ** 3).sum()), strict=True))


def test_the_same_file_imported_twice_at_once_makes_one_experiment(engine: Engine, tmp_path: Path) -> None:
    """The content is hashed while it is read, so two imports of the same file both start reading; the
    experiment's name decides: the second finds it (after the first commits) and reports the file imported."""
    path, _ = _random_results(tmp_path, n=2_000)
    start, outcomes, errors = threading.Barrier(2), [], []

    def run() -> None:
        start.wait()
        try:
            outcomes.append(_import_random(engine, path))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    workers = [threading.Thread(target=run) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert not errors, errors
    assert sorted(o.already_imported for o in outcomes) == [False, True]
    assert [count(engine, m) for m in (Experiment, ResultTable, ImportRecord)] == [1, 1, 1]
    assert len(stored(engine, "rand")) == 2_000


def test_the_import_command_loads_neither_pandas_nor_duckdb(database_url: str, tmp_path: Path) -> None:
    """pyarrow imports pandas (0.3 s) the first time it converts a Python value or calls to_numpy, and DuckDB
    imports it too: the results import avoids both, which is a fifth of its command's time."""
    import subprocess
    import sys

    from tests.conftest import PROJECT_ROOT

    path, _ = _random_results(tmp_path, n=200)
    code = ("import sys\nfrom cli import app\n"
            f"app(['import', 'results', {str(path)!r}, '--experiment', 'rand', '--variant-column', 'arm', "
            "'--control', 'holdout', '--metrics', 'returned,revenue', '--id-column', 'user', '--covariates', "
            "'pre_spend', '--segments', 'city,tier', '--no-progress', '--db', sys.argv[1]], standalone_mode=False)\n"
            "print(sorted(m for m in ('pandas', 'duckdb') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, database_url], capture_output=True, text=True, cwd=PROJECT_ROOT,
                          env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]" and "200 rows" in done.stdout


def _same_numbers(a: object, b: object) -> bool:
    """Equal up to 1e-9 (sums in SQL and in pyarrow add in different orders)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_numbers(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_numbers(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _impatient(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API objects
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '1s'")
        cursor.execute("SET statement_timeout = '1s'")


def test_an_import_does_not_stall_readers(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While an import is half-way (rows stored, transaction open), another connection counts the
    experiments and reports another one within a second's lock and statement timeout."""
    from analysis.report import build_report
    from experiments.db import make_engine

    small, _ = _random_results(tmp_path, n=200)
    import_results(engine, small, experiment="other", variant_column="arm", control="holdout", metrics=["revenue"])
    halfway, resume = threading.Event(), threading.Event()
    store = result_tables.store_block

    def store_then_wait(*args: object) -> None:
        store(*args)
        halfway.set()
        resume.wait(30)

    monkeypatch.setattr(result_tables, "store_block", store_then_wait)
    outcome: list[ImportResult] = []
    big = write(tmp_path, "big.csv", RESULTS + "".join(f"u{i},{('holdout', 'sms')[i % 2]},0,{i},1,a\n"
                                                       for i in range(5_000)))
    worker = threading.Thread(target=lambda: outcome.append(results(engine, big, experiment="big")))
    worker.start()
    try:
        assert halfway.wait(30)
        reader = make_engine(engine.url.render_as_string(hide_password=False))
        if engine.dialect.name == "postgresql":
            event.listen(reader, "connect", _impatient)
        started = time.perf_counter()
        with reader.connect() as connection:
            assert connection.scalar(text("SELECT count(*) FROM experiments")) == 1  # 'big' not yet published
        assert build_report(reader, "other").variants
        assert time.perf_counter() - started < 5
        reader.dispose()
    finally:
        resume.set()
        worker.join(60)
    assert outcome and outcome[0].inserted == 5_000 and count(engine, Experiment) == 2

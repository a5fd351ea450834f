"""Imports are atomic (a bad row rejects the file, naming file, line and field) and idempotent.

Line numbers are the file's: the header is line 1, the first data row line 2.
"""

from __future__ import annotations

import gzip
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from cli import app
from experiments.access import cli_actor
from experiments.db import session_scope, table_names
from experiments import importer
from experiments.importer import ImportFailed, ImportResult
from experiments.result_tables import stored_results
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
    """The imported experiment's rows, by column name (metrics, covariates and segments by their own)."""
    with session_scope(engine) as session:
        experiment = session.scalars(select(Experiment).where(Experiment.name == name)).one()
        results = stored_results(session.connection(), experiment)
        names = {**{c: n for n, c in results.values.items()}, **{c: n for n, c in results.segments.items()}}
        return [{names.get(k, k): v for k, v in row._mapping.items()}
                for row in session.execute(select(results.table).order_by(results.table.c.customer_id))]


def nothing_stored(engine: Engine) -> bool:
    """No experiment, variant, results table, record or audit entry: a failed import left nothing behind."""
    return ([count(engine, m) for m in (Experiment, Variant, ResultTable, ImportRecord)] == [0] * 4
            and not [t for t in table_names(engine) if t.startswith("results_")])


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
    from experiments.sendlist import write_send_lists
    from tests.helpers import AS_OF, add_customers, example_spec, store_spec

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

    started = time.perf_counter()
    assert run().inserted == 64_000
    assert time.perf_counter() - started < 15
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


def test_the_fast_and_the_exact_reader_store_the_same(database_url: str, tmp_path: Path) -> None:
    """A well-formed file takes pyarrow's reader; a line of spaces (which it cannot parse) sends the same
    rows through the exact row-by-row reader, chunked or not: all three store the same."""
    from experiments.db import make_engine
    from tests.conftest import fresh_database

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
        tables.append(table_rows(engine, Experiment, Variant, MetricDefinition, ImportRecord))
        tables[-1]["results"] = sorted(tuple(r.values()) for r in stored(engine, "ext"))
        engine.dispose()
    assert outcomes[0] == outcomes[1] == outcomes[2] and outcomes[0].inserted == 23
    assert tables[0]["results"] == tables[1]["results"] == tables[2]["results"]
    assert tables[1] == tables[2]
    assert {r[2] for r in tables[0]["results"]} == {0.0, 1.0}  # TRUE, 是 → 1; no, 0 → 0


def test_import_progress_bar_does_not_change_the_outcome(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path, "events.csv", HEADER + "C1,order,2026-12-01 10:00,88.5\nC2,visit,2026-12-01 11:00,\n")
    assert import_events(engine, path, chunk=1, progress=True).inserted == 2

"""The scale simulation: a realistic campaign in a Recall Lab database or a DuckDB warehouse."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

import experiments.db as db_module
from experiments.assignment import assign, bucket, bucket_bounds, variant_index
from cli import app
from experiments.cohorts import lifecycle_stage
from experiments.db import make_engine, session_scope
from experiments.models import Assignment, Customer, Event, ExperimentStatus, Send, Variant
from experiments.simulate import COHORTS, LAUNCH, WAREHOUSE_TABLES, campaign_spec, simulate
from experiments.store import get_experiment, stored_spec
from tests.helpers import add_customers, store_spec

N = 3_000
NAME = "sim-campaign"
EVENT_TYPES = {"visit", "order", "coupon_redeemed", "unsubscribe", "complaint"}


def expected_variants(customer_ids: list[str], name: str = NAME) -> dict[str, str]:
    """Recall Lab's own rule, one customer at a time."""
    variants = campaign_spec(name).variants
    bounds = bucket_bounds([v.share for v in variants])
    return {c: variants[variant_index(bucket(name, c), bounds)].name for c in customer_ids}


def warehouse(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.fixture
def simulated(tmp_path: Path, database_url: str) -> tuple[Path, object]:
    path = tmp_path / "warehouse.duckdb"
    summary = simulate(f"duckdb:///{path}", N, chunk=1_000, recall_url=database_url)
    return path, summary


def test_simulate_into_a_recall_lab_database(database_url: str) -> None:
    summary = simulate(database_url, N, chunk=1_000)
    assert (summary.name, summary.customers, summary.assignments) == (NAME, N, N)
    assert 2.5 * N < summary.events < 3.5 * N  # about three events per customer
    assert set(summary.seconds) == {"customers", "assign", "sends", "events", "analyze"}

    engine = make_engine(database_url)
    with session_scope(engine) as session:
        experiment = get_experiment(session, NAME)
        assert experiment.status == ExperimentStatus.RUNNING and experiment.launched_at == LAUNCH
        assert experiment.cohort == "all" and stored_spec(experiment).source is None
        count = lambda model: session.scalar(select(func.count()).select_from(model))  # noqa: E731
        assert (count(Customer), count(Assignment), count(Send), count(Event)) == (
            N, N, summary.sends, summary.events)
        stored = dict(session.execute(
            select(Assignment.customer_id, Variant.name).join(Variant, Variant.id == Assignment.variant_id)).all())
        assert stored == expected_variants(list(stored))
        sends = session.execute(select(Send.customer_id, Send.step, Variant.name, Send.channel, Send.scheduled_at)
                                .join(Variant, Variant.id == Send.variant_id)).all()
        customers = session.execute(select(Customer.signup_at, Customer.first_order_at, Customer.last_active_at,
                                           Customer.orders_before, Customer.spend_before)).all()
        window = session.execute(select(func.count()).select_from(Event).where(
            Event.occurred_at >= LAUNCH, Event.occurred_at < LAUNCH + timedelta(days=14))).scalar()
        after = session.scalar(select(func.count()).select_from(Event).where(
            Event.occurred_at >= LAUNCH + timedelta(days=14)))
    engine.dispose()
    # Every step of every contacted customer, never the control, all inside the sending hours.
    assert {name for _, _, name, _, _ in sends} == {"sms_c5_10h", "sms_c10_10h_reminder", "push_20h"}
    contacted = {c for c, v in stored.items() if v != "holdout"}
    assert {(c, s) for c, s, *_ in sends} == {(c, 0) for c in contacted} | {
        (c, 1) for c, v in stored.items() if v == "sms_c10_10h_reminder"}
    assert all(at >= LAUNCH for *_, at in sends)
    # The four lifecycle cohorts as Recall Lab defines them at the assignment time.
    stages = [lifecycle_stage(s, f, last, LAUNCH) for s, f, last, _, _ in customers]
    assert set(stages) == set(COHORTS)
    assert all((orders == 0) == (first is None) for _, first, _, orders, _ in customers)
    assert all(float(spend) > 0 for *_, orders, spend in customers if orders)
    assert window > 0 and after > 0  # most outcomes inside the attribution window, some after it


def test_duckdb_warehouse_in_the_source_layout(simulated: tuple[Path, object], database_url: str) -> None:
    path, summary = simulated
    for table, columns in WAREHOUSE_TABLES.items():
        described = warehouse(path, f"DESCRIBE {table}")
        assert ", ".join(f"{name} {kind}" for name, kind, *_ in described) == columns
    counts = {t: warehouse(path, f"SELECT count(*) FROM {t}")[0][0] for t in WAREHOUSE_TABLES}
    assert counts == {"customers": N, "assignments": N, "sends": summary.sends, "events": summary.events}

    stored = dict(warehouse(path, "SELECT customer_id, variant FROM assignments"))
    assert stored == expected_variants(list(stored))  # the split Recall Lab itself would make
    assert warehouse(path, "SELECT DISTINCT experiment, assigned_at FROM assignments") == [(NAME, LAUNCH)]
    assert warehouse(path, "SELECT count(*) FROM sends WHERE variant = 'holdout'") == [(0,)]
    assert warehouse(path, "SELECT count(*) FROM sends s JOIN assignments a USING (customer_id) "
                           "WHERE s.variant <> a.variant") == [(0,)]
    assert {t for (t,) in warehouse(path, "SELECT DISTINCT event_type FROM events")} == EVENT_TYPES
    assert {c for (c,) in warehouse(path, "SELECT DISTINCT cohort FROM customers")} == set(COHORTS)
    assert warehouse(path, "SELECT count(*) FROM events WHERE customer_id NOT IN (SELECT customer_id FROM customers)"
                     ) == [(0,)]
    # Redemptions only where there was a coupon; the ¥10 coupon with a reminder brings back the most.
    assert warehouse(path, "SELECT DISTINCT a.variant FROM events e JOIN assignments a USING (customer_id) "
                           "WHERE e.event_type = 'coupon_redeemed' ORDER BY 1") == [
        ("sms_c10_10h_reminder",), ("sms_c5_10h",)]

    engine = make_engine(database_url)
    with session_scope(engine) as session:
        experiment = get_experiment(session, NAME)
        spec = stored_spec(experiment)
        assert experiment.status == ExperimentStatus.RUNNING and experiment.launched_at == LAUNCH
        assert spec.source is not None and spec.source.url == f"duckdb:///{path.resolve()}"
        assert spec.source.segments == ["cohort"]
    with pytest.raises(ValueError, match=f"'{NAME}'.*warehouse"):
        assign(engine, NAME, as_of=LAUNCH)
    engine.dispose()

    # Again: the tables are replaced and the registered experiment is reused.
    again = simulate(f"duckdb:///{path}", N, chunk=1_000, recall_url=database_url)
    assert again.events == summary.events
    assert warehouse(path, "SELECT count(*) FROM assignments") == [(N,)]


def test_simulation_is_deterministic_for_a_seed(simulated: tuple[Path, object], tmp_path: Path) -> None:
    path, _ = simulated
    same, other = tmp_path / "same.duckdb", tmp_path / "other.duckdb"
    simulate(f"duckdb:///{same}", N, chunk=1_000, recall_url=f"sqlite:///{tmp_path / 'same.db'}")
    simulate(f"duckdb:///{other}", N, chunk=1_000, recall_url=f"sqlite:///{tmp_path / 'other.db'}", seed=8)
    for table in WAREHOUSE_TABLES:
        assert warehouse(same, f"SELECT * FROM {table} ORDER BY ALL") == warehouse(path, f"SELECT * FROM {table} "
                                                                                         "ORDER BY ALL")
    assert warehouse(other, "SELECT * FROM customers ORDER BY ALL") != warehouse(path, "SELECT * FROM customers "
                                                                                       "ORDER BY ALL")


def test_both_targets_hold_the_same_campaign(tmp_path: Path, database_url: str) -> None:
    path = tmp_path / "warehouse.duckdb"
    simulate(f"duckdb:///{path}", N, chunk=1_000, recall_url=f"sqlite:///{tmp_path / 'registry.db'}")
    simulate(database_url, N, chunk=1_000)
    engine = make_engine(database_url)
    with session_scope(engine) as session:
        events = {(c, t.value, at, round(float(v), 2)) for c, t, at, v in session.execute(
            select(Event.customer_id, Event.event_type, Event.occurred_at, Event.value))}
        customers = {(c, int(o), round(float(s), 2)) for c, o, s in session.execute(
            select(Customer.customer_id, Customer.orders_before, Customer.spend_before))}
        sends = {(c, s, ch, at) for c, s, ch, at in session.execute(
            select(Send.customer_id, Send.step, Send.channel, Send.scheduled_at))}
    engine.dispose()
    assert events == {(c, t, at, round(v, 2)) for c, t, at, v in warehouse(path, "SELECT * FROM events")}
    assert customers == {(c, o, round(s, 2)) for c, _, s, o in warehouse(path, "SELECT * FROM customers")}
    assert sends == set(warehouse(path, "SELECT customer_id, step, channel, scheduled_at FROM sends"))


def test_simulate_needs_an_empty_database(database_url: str) -> None:
    engine = make_engine(database_url)
    add_customers(engine, ["C1"])
    engine.dispose()
    with pytest.raises(RuntimeError, match="empty"):
        simulate(database_url, 100)
    with pytest.raises(ValueError, match="DuckDB file"):
        simulate("duckdb:///:memory:", 100)


def test_assign_refuses_an_experiment_with_a_source(engine) -> None:  # noqa: ANN001
    add_customers(engine, ["C1", "C2"])
    store_spec(engine, campaign_spec("warehouse-test", source_url="duckdb:///nowhere.duckdb"))
    with pytest.raises(ValueError, match="'warehouse-test'.*warehouse"):
        assign(engine, "warehouse-test", as_of=LAUNCH)
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Assignment)) == 0
        assert get_experiment(session, "warehouse-test").status == ExperimentStatus.DRAFT


def test_bulk_load_keeps_the_foreign_keys(engine, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """On PostgreSQL a large assignment drops and re-adds the foreign keys; the schema is unchanged."""
    monkeypatch.setattr(db_module, "BULK_LOAD_ROWS", 0)
    ids = [f"C{i:05d}" for i in range(1_000)]
    add_customers(engine, ids)
    store_spec(engine, campaign_spec("bulk"))
    before = _foreign_keys(engine)
    summary = assign(engine, "bulk", as_of=LAUNCH, progress=True)
    assert summary.newly_assigned == 1_000 and sum(summary.per_variant.values()) == 1_000
    assert _foreign_keys(engine) == before
    with session_scope(engine) as session:
        stored = dict(session.execute(
            select(Assignment.customer_id, Variant.name).join(Variant, Variant.id == Assignment.variant_id)).all())
    assert stored == expected_variants(ids, "bulk")
    assert summary.per_variant == {v: list(stored.values()).count(v) for v in summary.per_variant}


def test_bulk_load_falls_back_when_the_table_is_busy(engine, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """Another session reading assignments: the keys stay, rows are checked one by one, nothing waits long."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    monkeypatch.setattr(db_module, "BULK_LOAD_ROWS", 0)
    monkeypatch.setattr(db_module, "LOCK_TIMEOUT", "200ms")
    add_customers(engine, [f"C{i:04d}" for i in range(500)])
    store_spec(engine, campaign_spec("busy"))
    before = _foreign_keys(engine)
    with engine.connect() as reader:
        reader.execute(text("SELECT count(*) FROM assignments"))  # holds ACCESS SHARE until rollback
        summary = assign(engine, "busy", as_of=LAUNCH)
        reader.rollback()
    assert summary.newly_assigned == 500 and _foreign_keys(engine) == before


def _foreign_keys(engine) -> list[tuple]:  # noqa: ANN001
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as connection:
        return connection.execute(text(
            "SELECT conname, convalidated, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'assignments'::regclass AND contype = 'f' ORDER BY conname")).all()


def test_cli_simulate(tmp_path: Path, database_url: str) -> None:
    path = tmp_path / "cli.duckdb"
    result = CliRunner().invoke(app, ["simulate", "--customers", "2000", "--db", f"duckdb:///{path}",
                                      "--chunk", "700", "--seed", "3"])
    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())
    assert "2,000 customers, 2,000 assignments" in printed and "register" in printed
    assert warehouse(path, "SELECT count(*) FROM customers") == [(2_000,)]
    bad = CliRunner().invoke(app, ["simulate", "--customers", "10", "--db", "mysql://x/y"])
    assert bad.exit_code == 1 and "DuckDB file" in bad.output


def test_spark_and_clickhouse_warehouses_hold_the_same_rows(simulated: tuple[Path, object], tmp_path: Path) -> None:
    """The same seed writes the same rows as Parquet tables (Spark's layout) and into chDB."""
    import clickhouse_connect

    path, summary = simulated
    parquet, chdb = tmp_path / "spark-warehouse", tmp_path / "chdb-warehouse"
    simulate(f"spark+local:///{parquet}", N, chunk=1_000, recall_url=f"sqlite:///{tmp_path / 'spark.db'}")
    simulate(f"clickhousedb+chdb:///{chdb}", N, chunk=1_000, recall_url=f"sqlite:///{tmp_path / 'chdb.db'}")
    client = clickhouse_connect.get_client(dsn=f"chdb://{chdb}")
    try:
        for table in WAREHOUSE_TABLES:
            want = warehouse(path, f"SELECT * FROM {table} ORDER BY ALL")
            with duckdb.connect() as con:
                assert con.execute(f"SELECT * FROM read_parquet('{parquet / table}/*.parquet') ORDER BY ALL"
                                   ).fetchall() == want
            assert sorted(map(tuple, client.query(f"SELECT * FROM {table}").result_rows)) == sorted(want)
    finally:
        client.close()
    assert not (tmp_path / ".spark-warehouse.staging").exists() and not (tmp_path / ".chdb-warehouse.staging").exists()
    engine = make_engine(f"sqlite:///{tmp_path / 'chdb.db'}")
    with session_scope(engine) as session:
        assert stored_spec(get_experiment(session, NAME)).source.url == f"clickhousedb+chdb:///{chdb}"
    engine.dispose()

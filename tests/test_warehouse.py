"""Pushed-down statistics equal those computed from per-customer rows, on every backend.

One synthetic campaign (fixed seed) is written several ways: into Recall Lab's own tables of the test
database (SQLite or PostgreSQL), and as a team's warehouse with its own table and column names
and event spellings, in the test database, a DuckDB file, Parquet tables read by Spark SQL (a local
session) and chDB (in-process ClickHouse), read through a ``[source]`` mapping. The sums SQL
returns must equal what numpy computes from the raw rows. Spark's session starts once per test
run (about 12 s); the tests that need it skip, saying why, only where Java 17 cannot be had.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, insert, text

from analysis.aggregates import CUSTOMER_METRICS, PRODUCTS, experiment_statistics
from analysis.report import build_report
from analysis.sufficient import SampleStats
from analysis.tables import SourceOutOfMemory
from experiments.db import session_scope
from experiments.dialects import CUSTOMERS_PER_STATEMENT
from experiments.source import SourceError
from experiments.models import Assignment, Customer, Event, Experiment, ExperimentStatus, Send
from experiments.source import read_only_engine
from experiments.store import get_experiment
from tests.helpers import example_spec, store_spec

SEED = 20261123
N = 1_500
WINDOW = 14
LAUNCH = datetime(2026, 11, 1, 2, 0)
COHORTS = ("dormant_30d", "lapsed_1_3m", "new_inactive", "silent_3m")
THEIR_EVENTS = {"visit": "app_open", "order": "pay_success", "coupon_redeemed": "coupon_use",
                "unsubscribe": "unsub", "complaint": "complain"}


@dataclass(frozen=True)
class Campaign:
    customers: pd.DataFrame  # customer_id, cohort, spend_before, orders_before
    assignments: pd.DataFrame  # customer_id, variant, assigned_at
    events: pd.DataFrame  # customer_id, event_type, occurred_at, value
    sends: pd.DataFrame  # customer_id, variant, channel


def campaign(variants: list[str], channels: dict[str, str]) -> Campaign:
    rng = np.random.default_rng(SEED)
    ids = np.array([f"c{i:05d}" for i in range(N)])
    customers = pd.DataFrame({"customer_id": ids, "cohort": rng.choice(COHORTS, N),
                              "spend_before": np.round(rng.gamma(1.5, 80, N), 2),
                              "orders_before": rng.poisson(2, N)})
    assigned = [LAUNCH + timedelta(hours=int(h)) for h in rng.integers(0, 48, N)]
    assignments = pd.DataFrame({"customer_id": ids, "variant": rng.choice(variants, N), "assigned_at": assigned})
    rows = []
    for cid, at in zip(ids, assigned, strict=True):
        for _ in range(rng.poisson(1.6)):
            kind = rng.choice(["visit", "order", "order", "coupon_redeemed", "unsubscribe", "complaint"],
                              p=[0.45, 0.2, 0.15, 0.1, 0.06, 0.04])
            # Some events before the window and after it, some exactly on its edges.
            offset = timedelta(hours=float(rng.uniform(-72, (WINDOW + 4) * 24)))
            edge = rng.random()
            if edge < 0.03:
                offset = timedelta(0)
            elif edge < 0.06:
                offset = timedelta(days=WINDOW)
            value = float(np.round(rng.lognormal(4, 1), 2)) if kind == "order" else 0.0
            rows.append((cid, str(kind), (at + offset).replace(microsecond=0), value))
    events = pd.DataFrame(rows, columns=["customer_id", "event_type", "occurred_at", "value"])
    events = events.drop_duplicates(["customer_id", "event_type", "occurred_at", "value"]).reset_index(drop=True)
    contacted = assignments[assignments.variant.map(channels).notna()]
    sends = pd.DataFrame({"customer_id": contacted.customer_id, "variant": contacted.variant,
                          "channel": contacted.variant.map(channels)})
    return Campaign(customers, assignments, events, sends)


def expected_per_customer(c: Campaign) -> pd.DataFrame:
    """The per-customer outcomes, computed in pandas from the raw rows (the definition, restated)."""
    joined = c.assignments.merge(c.events, on="customer_id", how="left")
    inside = (joined.occurred_at >= joined.assigned_at) & (joined.occurred_at < joined.assigned_at
                                                           + pd.Timedelta(days=WINDOW))
    e = joined[inside]
    flags = pd.DataFrame({
        "customer_id": e.customer_id,
        "returned": e.event_type.isin(["visit", "order"]).astype(int),
        "ordered": (e.event_type == "order").astype(int),
        "orders": (e.event_type == "order").astype(int),
        "revenue": np.where(e.event_type == "order", e.value, 0.0),
        "redeemed": (e.event_type == "coupon_redeemed").astype(int),
        "redemptions": (e.event_type == "coupon_redeemed").astype(int),
        "unsubscribed": (e.event_type == "unsubscribe").astype(int),
        "complained": (e.event_type == "complaint").astype(int),
    })
    per = flags.groupby("customer_id").agg({"returned": "max", "ordered": "max", "orders": "sum", "revenue": "sum",
                                            "redeemed": "max", "redemptions": "sum", "unsubscribed": "max",
                                            "complained": "max"})
    out = c.assignments.merge(per, on="customer_id", how="left").fillna(0)
    return out.merge(c.customers, on="customer_id")


def _close(actual: float, expected: float) -> None:
    assert actual == pytest.approx(expected, rel=1e-9, abs=1e-6)


def check(stats, experiment: Experiment, per_customer: pd.DataFrame, *, segments: bool, covariates: bool) -> None:
    by_name = {v.name: v.id for v in experiment.variants}
    for name, group in per_customer.groupby("variant"):
        arm = stats.arms[by_name[name]]
        assert arm.n == len(group)
        for m in CUSTOMER_METRICS:
            want = SampleStats.from_values(group[m].to_numpy(dtype=float))
            got = arm.metrics[m]
            for field in ("sum", "sum_sq", "sum_cu"):
                _close(getattr(got, field), getattr(want, field))
        for a, b in PRODUCTS:
            _close(arm.products[(a, b)], float((group[a] * group[b]).sum()))
        if covariates:
            cov = stats.covariates("revenue")[by_name[name]]
            x = group[["spend_before", "orders_before"]].to_numpy(dtype=float)
            np.testing.assert_allclose(cov.sum_x, x.sum(axis=0), rtol=1e-9)
            np.testing.assert_allclose(cov.sum_x2, x.T @ x, rtol=1e-9)
            np.testing.assert_allclose(cov.sum_xy, x.T @ group.revenue.to_numpy(), rtol=1e-9)
    if segments:
        found = stats.segments("returned")
        for (cohort, name), group in per_customer.groupby(["cohort", "variant"]):
            got = found[("cohort", cohort)][by_name[name]]
            assert got.n == len(group)
            _close(got.sum, float(group.returned.sum()))


def _spec(source: dict | None):  # noqa: ANN202 - an ExperimentSpec
    """The example spec (holdout, coupon5_sms_10h, coupon10_sms_10h), maybe reading a source."""
    return example_spec(name="wh-test", attribution_days=WINDOW, **({"source": source} if source else {}))


def _launch(engine: Engine) -> Experiment:
    with session_scope(engine) as session:
        experiment = get_experiment(session, "wh-test")
        experiment.status, experiment.launched_at = ExperimentStatus.RUNNING, LAUNCH
    with session_scope(engine) as session:
        return get_experiment(session, "wh-test")


def _write_team_tables(write, c: Campaign) -> None:  # noqa: ANN001 - a DataFrame writer
    write("crm_users", c.customers.rename(columns={"customer_id": "uid", "cohort": "lifecycle",
                                                   "spend_before": "spend_90d", "orders_before": "orders_90d"}))
    write("recall_assignments", c.assignments.assign(campaign="wh-test").rename(
        columns={"customer_id": "uid", "variant": "arm", "assigned_at": "assigned_ts"}))
    # Another campaign's rows in the same table must not leak in.
    write("recall_assignments", c.assignments.head(50).assign(campaign="other-test").rename(
        columns={"customer_id": "uid", "variant": "arm", "assigned_at": "assigned_ts"}))
    write("app_events", c.events.assign(event_type=c.events.event_type.map(THEIR_EVENTS)).rename(
        columns={"customer_id": "uid", "event_type": "kind", "occurred_at": "ts", "value": "amount"}))
    write("touches", c.sends.assign(campaign="wh-test", seq=0).rename(columns={"customer_id": "uid", "variant": "arm"}))


def _duckdb_writer(con: duckdb.DuckDBPyConnection):  # noqa: ANN202 - a DataFrame writer
    def write(name: str, frame: pd.DataFrame) -> None:
        con.register("frame", frame)
        exists = con.execute("select count(*) from information_schema.tables where table_name = ?",
                             [name]).fetchone()[0]
        con.execute(f"insert into {name} select * from frame" if exists else f"create table {name} as select * from frame")
        con.unregister("frame")
    return write


def _parquet_writer(folder: Path):  # noqa: ANN202 - a DataFrame writer
    """Each table a directory of Parquet files (appending adds a file), as Spark reads them."""
    def write(name: str, frame: pd.DataFrame) -> None:
        (folder / name).mkdir(parents=True, exist_ok=True)
        with duckdb.connect() as con:
            con.register("frame", frame)
            con.execute(f"copy frame to '{folder / name}/part-{len(list((folder / name).iterdir()))}.parquet' "
                        "(format parquet)")
    return write


def _load_chdb(parquet: Path, path: Path) -> None:
    """The Parquet tables into chDB at ``path`` (MergeTree tables; column types as ClickHouse infers them)."""
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    try:
        for folder in sorted(parquet.iterdir()):
            client.command(f"CREATE TABLE {folder.name} ENGINE = MergeTree ORDER BY tuple() "
                           f"AS SELECT * FROM file('{folder}/*.parquet', Parquet)")
    finally:
        client.close()


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """The local Spark session every Spark source of this test run shares (started once)."""
    from experiments import engines

    if engines.java_home() is None:
        pytest.skip("Spark needs Java 17 and none is installed (make install and .ci/run install Debian's "
                    "openjdk-17-jre-headless)")
    session = engines.local_spark()
    yield session
    session.stop()


def warehouse_url(kind: str, c: Campaign | Callable, folder: Path) -> str:
    """The team's tables (or what ``fill(write)`` writes) in a warehouse of ``kind`` (duckdb, spark or
    chdb), and its source URL; Spark's tests ask for the ``spark`` fixture."""
    fill = (lambda write: _write_team_tables(write, c)) if isinstance(c, Campaign) else c
    if kind == "duckdb":
        path = folder / "warehouse.duckdb"
        with duckdb.connect(str(path)) as con:
            fill(_duckdb_writer(con))
        return f"duckdb:///{path}"
    parquet = folder / "parquet"
    fill(_parquet_writer(parquet))
    if kind == "spark":
        return f"spark+local:///{parquet}"
    _load_chdb(parquet, folder / "chdb")
    return f"clickhousedb+chdb:///{folder / 'chdb'}"


@pytest.fixture(params=["duckdb", "spark", "chdb"])
def warehouse_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "spark":
        request.getfixturevalue("spark")
    return request.param


def _mapping(url: str) -> dict:
    return {
        "url": url,
        "segments": ["lifecycle"],
        "assignments": {"table": "recall_assignments", "experiment": "campaign", "customer_id": "uid",
                        "variant": "arm", "assigned_at": "assigned_ts"},
        "events": {"table": "app_events", "customer_id": "uid", "event_type": "kind", "occurred_at": "ts",
                   "value": "amount"},
        "customers": {"table": "crm_users", "customer_id": "uid", "spend_before": "spend_90d",
                      "orders_before": "orders_90d"},
        "sends": {"table": "touches", "experiment": "campaign", "customer_id": "uid", "variant": "arm", "step": "seq"},
        "event_types": THEIR_EVENTS,
    }


def _check_mapped(engine: Engine, c: Campaign) -> None:
    experiment = _launch(engine)
    with engine.connect() as conn:
        stats = experiment_statistics(conn, experiment)
    per_customer = expected_per_customer(c).rename(columns={"cohort": "lifecycle"})
    check(stats, experiment, per_customer.rename(columns={"lifecycle": "cohort"}), segments=False, covariates=True)
    found = stats.segments("revenue")
    by_name = {v.name: v.id for v in experiment.variants}
    for (cohort, name), group in per_customer.groupby(["lifecycle", "variant"]):
        _close(found[("lifecycle", cohort)][by_name[name]].sum_sq, float((group.revenue ** 2).sum()))
    contacted = c.sends.groupby("variant").size()
    for name, count in contacted.items():
        assert stats.arms[by_name[name]].contacted == count


@pytest.fixture
def team_campaign(engine: Engine) -> Campaign:
    spec = _spec(None)
    channels = {v.name: v.channel.value for v in spec.variants if v.channel is not None}
    return campaign([v.name for v in spec.variants], channels)


def test_warehouse_source_equals_per_customer_rows(engine: Engine, team_campaign: Campaign, tmp_path: Path,
                                                   warehouse_kind: str) -> None:
    """DuckDB, Spark SQL (local session over Parquet) and ClickHouse (chDB), read-only."""
    store_spec(engine, _spec(_mapping(warehouse_url(warehouse_kind, team_campaign, tmp_path))))
    _check_mapped(engine, team_campaign)


def test_mapped_source_on_the_test_database_equals_per_customer_rows(engine: Engine, team_campaign: Campaign) -> None:
    """The same team layout on SQLite or PostgreSQL (whichever the suite runs on), read-only."""
    def write(name: str, frame: pd.DataFrame) -> None:
        frame.to_sql(name, engine, if_exists="append", index=False)
    _write_team_tables(write, team_campaign)
    store_spec(engine, _spec(_mapping(engine.url.render_as_string(hide_password=False))))
    _check_mapped(engine, team_campaign)


def _store_own(engine: Engine, experiment: Experiment, c: Campaign) -> None:
    """The campaign in Recall Lab's own tables."""
    ids = {v.name: v.id for v in experiment.variants}
    with session_scope(engine) as session:
        session.execute(insert(Customer), [
            dict(customer_id=r.customer_id, spend_before=r.spend_before, orders_before=int(r.orders_before),
                 signup_at=LAUNCH - timedelta(days=400), last_active_at=LAUNCH - timedelta(days=60))
            for r in c.customers.itertuples()])
        session.execute(insert(Assignment), [
            dict(experiment_id=experiment.id, customer_id=r.customer_id, variant_id=ids[r.variant], bucket=0,
                 assigned_at=r.assigned_at.to_pydatetime()) for r in c.assignments.itertuples()])
        session.execute(insert(Event), [
            dict(customer_id=r.customer_id, event_type=r.event_type, occurred_at=r.occurred_at.to_pydatetime(),
                 value=r.value) for r in c.events.itertuples()])
        session.execute(insert(Send), [
            dict(experiment_id=experiment.id, customer_id=r.customer_id, variant_id=ids[r.variant], step=0,
                 channel=r.channel, scheduled_at=LAUNCH) for r in c.sends.itertuples()])


def test_own_tables_equal_per_customer_rows(engine: Engine, team_campaign: Campaign) -> None:
    c = team_campaign
    store_spec(engine, _spec(None))
    experiment = _launch(engine)
    _store_own(engine, experiment, c)
    with engine.connect() as conn:
        stats = experiment_statistics(conn, experiment)
    check(stats, experiment, expected_per_customer(c), segments=False, covariates=True)
    # Without the ranked tiers the labels are computed twice (not in a CTE): the same cells.
    with engine.connect() as conn:
        plain = experiment_statistics(conn, experiment, segments=["cohort"])
    check(plain, experiment, expected_per_customer(c), segments=False, covariates=True)
    for metric in ("returned", "revenue"):
        cohorts = {k: v for k, v in stats.segments(metric).items() if k[0] == "cohort"}
        assert plain.segments(metric).keys() == cohorts.keys()
        for key, arms in cohorts.items():
            for variant_id, want in arms.items():
                got = plain.segments(metric)[key][variant_id]
                assert got.n == want.n
                _close(got.sum, want.sum)
                _close(got.sum_sq, want.sum_sq)
    # Every designed dimension partitions the customers it labels: its segments add up to at most the total.
    for dimension in ("cohort", "value_tier", "rfm_tier"):
        n = sum(s.n for (d, _), arms in stats.segments("returned").items() if d == dimension for s in arms.values())
        assert 0 < n <= N
    report = build_report(engine, "wh-test")
    assert {c.variant for c in report.comparisons} == {"coupon5_sms_10h", "coupon10_sms_10h"}
    assert {c.segment.split("=")[0] for c in report.segments} == {"cohort", "value_tier", "rfm_tier"}
    only = build_report(engine, "wh-test", segments=["rfm_tier"])
    assert {c.segment.split("=")[0] for c in only.segments} == {"rfm_tier"}
    for a, b in zip(only.comparisons, report.comparisons, strict=True):  # the sums' order may differ
        assert (a.variant, a.metric, a.n) == (b.variant, b.metric, b.n)
        _close(a.p_value, b.p_value)
    assert build_report(engine, "wh-test", segments=[]).segments == []
    with pytest.raises(ValueError, match="lifecycle"):
        build_report(engine, "wh-test", segments=["lifecycle"])


def test_read_only_source_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "ro.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create table t (x integer)")
    engine = read_only_engine(f"duckdb:///{path}")
    with engine.connect() as conn, pytest.raises(Exception, match="(?i)read.only"):
        conn.execute(text("insert into t values (1)"))
    engine.dispose()


def test_an_unknown_variant_in_the_source_is_named(engine: Engine, team_campaign: Campaign, tmp_path: Path) -> None:
    path = tmp_path / "bad.duckdb"
    c = team_campaign
    broken = Campaign(c.customers, c.assignments.assign(variant=c.assignments.variant.replace("coupon5_sms_10h", "coupon5-sms")),
                      c.events, c.sends)
    with duckdb.connect(str(path)) as con:
        _write_team_tables(_duckdb_writer(con), broken)
    store_spec(engine, _spec(_mapping(f"duckdb:///{path}")))
    experiment = _launch(engine)
    with engine.connect() as conn, pytest.raises(ValueError, match="coupon5-sms"):
        experiment_statistics(conn, experiment)


def test_ratio_metrics_fieller_and_roi_from_the_pushed_down_sums(engine: Engine, team_campaign: Campaign,
                                                                 tmp_path: Path) -> None:
    """Ratio metrics, the Fieller option and ROI's delta interval in the report, from a DuckDB source,
    equal the same statistics computed from per-customer rows."""
    from analysis.frequentist import fieller_interval
    from analysis.ratio import RatioStats, compare_ratio

    path = tmp_path / "ratio.duckdb"
    with duckdb.connect(str(path)) as con:
        _write_team_tables(_duckdb_writer(con), team_campaign)
    spec = example_spec(name="wh-test", attribution_days=WINDOW, source=_mapping(f"duckdb:///{path}"),
                        ratio_metrics=["revenue_per_returner", "order_value"],
                        costs={"margin": 0.4, "acquisition_cost": 30})
    store_spec(engine, spec)
    _launch(engine)
    report = build_report(engine, "wh-test", relative_ci="fieller")
    per_customer = expected_per_customer(team_campaign)
    groups = dict(tuple(per_customer.groupby("variant")))
    control = groups["holdout"]
    for variant in ("coupon5_sms_10h", "coupon10_sms_10h"):
        treated = groups[variant]
        for name, denominator in (("revenue_per_returner", "returned"), ("order_value", "orders")):
            want = compare_ratio(RatioStats.from_values(control.revenue, control[denominator]),
                                 RatioStats.from_values(treated.revenue, treated[denominator]))
            got = report.comparison(variant, name)
            assert got.kind == "ratio"
            _close(got.abs_uplift, want.abs_uplift)
            _close(got.p_value, want.p_value)
            _close(got.abs_ci[0], want.abs_ci[0])
        lo, hi = fieller_interval(SampleStats.from_values(control.returned), SampleStats.from_values(treated.returned))
        _close(report.comparison(variant, "returned").rel_ci[0], float(lo))
        _close(report.comparison(variant, "returned").rel_ci[1], float(hi))
        roi = next(r for r in report.roi if r.variant == variant)
        assert roi.margin == pytest.approx(0.4) and roi.acquisition_cost == pytest.approx(30)
        assert "delta" in roi.roi_method.lower()


def test_parquet_files_through_duckdb_views(engine: Engine, team_campaign: Campaign, tmp_path: Path) -> None:
    """Parquet files as the warehouse: a small DuckDB file holds only views over them."""
    staging = tmp_path / "staging.duckdb"
    with duckdb.connect(str(staging)) as con:
        _write_team_tables(_duckdb_writer(con), team_campaign)
        for name in ("crm_users", "recall_assignments", "app_events", "touches"):
            con.execute(f"copy {name} to '{tmp_path / name}.parquet' (format parquet)")
    views = tmp_path / "views.duckdb"
    with duckdb.connect(str(views)) as con:
        for name in ("crm_users", "recall_assignments", "app_events", "touches"):
            con.execute(f"create view {name} as select * from read_parquet('{tmp_path / name}.parquet')")
    store_spec(engine, _spec(_mapping(f"duckdb:///{views}")))
    _check_mapped(engine, team_campaign)


def test_a_source_out_of_memory_says_which_limit_to_raise(engine: Engine, team_campaign: Campaign, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        _write_team_tables(_duckdb_writer(con), team_campaign)
    store_spec(engine, _spec(_mapping(f"duckdb:///{path}")))
    monkeypatch.setenv("RECALL_DUCKDB_MEMORY_LIMIT", "256KB")
    with pytest.raises(SourceOutOfMemory, match="RECALL_DUCKDB_MEMORY_LIMIT"):
        build_report(engine, "wh-test")


@pytest.mark.parametrize("backend", ["own tables", "duckdb", "spark", "chdb"])
def test_ranges_of_customer_ids_add_up_to_one_statement(engine: Engine, team_campaign: Campaign, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch, backend: str,
                                                        request: pytest.FixtureRequest) -> None:
    # Big experiments are summed one range of customer ids at a time (NTILE over the ids): the
    # cells must not change, on every engine.
    if backend == "own tables":
        store_spec(engine, _spec(None))
        experiment = _launch(engine)
        _store_own(engine, experiment, team_campaign)
    else:
        if backend == "spark":
            request.getfixturevalue("spark")
        store_spec(engine, _spec(_mapping(warehouse_url(backend, team_campaign, tmp_path))))
        experiment = _launch(engine)
    dimension = "cohort" if backend == "own tables" else "lifecycle"
    with engine.connect() as conn:
        whole = experiment_statistics(conn, experiment, segments=[dimension])
        # Fewer ranges on the warehouses, whose statements cost seconds each at any size.
        for dialect in (engine.dialect.name, "duckdb", "spark", "clickhousedb"):
            monkeypatch.setitem(CUSTOMERS_PER_STATEMENT, dialect, N // 7 if backend in ("own tables", "duckdb")
                                else N // 3)
        ranged = experiment_statistics(conn, experiment, segments=[dimension])
    check(ranged, experiment, expected_per_customer(team_campaign), segments=False, covariates=True)
    assert ranged.arms.keys() == whole.arms.keys()
    for variant_id, arm in whole.arms.items():
        assert ranged.arms[variant_id].n == arm.n
        for metric, want in arm.metrics.items():
            _close(ranged.arms[variant_id].metrics[metric].sum_sq, want.sum_sq)
    for key, arms in whole.segments("revenue").items():
        for variant_id, want in arms.items():
            got = ranged.segments("revenue")[key][variant_id]
            assert got.n == want.n
            _close(got.sum, want.sum)


# --- Dialect differences, each on every engine ---------------------------------------------------------

PROBE = pd.DataFrame({
    "id": ["c1", "c2", "c3", "c4", "c5"],
    "ts": pd.to_datetime(["2026-01-31 10:00:00", "2026-02-28 23:30:00", "2026-12-31 00:00:00",
                          "2024-02-29 12:00:00", "2026-06-01 00:00:00"]),
    "n": [7, -7, 0, 9, 1],
    "v": [12345678.1234, 0.5, -3.25, 1e-4, 2.0],
})
PROBE_LABELS = pd.DataFrame({"id": ["c1", "c3"], "label": ["x", "y"]})


@pytest.fixture(params=["test database", "duckdb", "spark", "chdb"])
def probe_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine reading the probe tables, on each engine the suite covers."""
    if request.param == "test database":
        engine = request.getfixturevalue("engine")
        PROBE.to_sql("probe", engine, index=False)
        PROBE_LABELS.to_sql("probe_labels", engine, index=False)
        yield engine
        return
    if request.param == "spark":
        request.getfixturevalue("spark")

    def fill(write) -> None:  # noqa: ANN001
        write("probe", PROBE)
        write("probe_labels", PROBE_LABELS)
    engine = read_only_engine(warehouse_url(request.param, fill, tmp_path))
    yield engine
    engine.dispose()


def test_dialect_differences_on_every_engine(probe_engine: Engine) -> None:
    """Dates, integer division, float sums, NTILE, the sha256 bucket and NULLs from an outer join."""
    from sqlalchemy import column, func, select, table

    from experiments.assignment import bucket
    from experiments.dialects import add_days, as_number, hash_bucket

    p = table("probe", column("id"), column("ts"), column("n"), column("v"))
    q = table("probe_labels", column("id"), column("label"))
    query = (select(p.c.id, add_days(p.c.ts, 30), add_days(p.c.ts, -31), p.c.n / 2, p.c.n // 2,
                    hash_bucket("salt", p.c.id, 10_000), q.c.label, func.coalesce(q.c.label, "none"),
                    func.ntile(2).over(order_by=p.c.id))
             .select_from(p.outerjoin(q, q.c.id == p.c.id)).order_by(p.c.id))
    x = as_number(p.c.v)
    sums = select(func.sum(x), func.sum(x * x * x), func.sum(as_number(q.c.label == "x")),
                  func.count(q.c.label), func.max(q.c.label)).select_from(p.outerjoin(q, q.c.id == p.c.id))
    with probe_engine.connect() as conn:
        rows = conn.execute(query).all()
        total, cubes, _, labelled, top = conn.execute(sums.with_only_columns(
            func.sum(x), func.sum(x * x * x), func.count(), func.count(q.c.label), func.max(q.c.label))).one()
    stamp = lambda value: pd.Timestamp(value).to_pydatetime()  # noqa: E731 - SQLite returns text
    for row, (i, probe) in zip(rows, PROBE.iterrows(), strict=True):
        cid, later, earlier, half, floor_half, bucket_, label, label_or_none, tile = row
        assert cid == probe.id
        assert stamp(later) == probe.ts + timedelta(days=30)
        assert stamp(earlier) == probe.ts - timedelta(days=31)
        assert float(half) == probe.n / 2  # exact division of integers, on every engine
        if probe.n >= 0:  # counts: SQLite and PostgreSQL truncate a negative quotient, the others floor it
            assert int(floor_half) == probe.n // 2
        assert bucket_ == bucket("salt", probe.id) % 10_000
        want = PROBE_LABELS.set_index("id").label.get(probe.id)
        assert label == want and label_or_none == (want or "none")  # NULL, not '', for a missing row
        assert tile == (1 if i < 3 else 2)
    assert float(total) == pytest.approx(PROBE.v.sum(), rel=1e-12)
    assert float(cubes) == pytest.approx((PROBE.v ** 3).sum(), rel=1e-12)  # no DECIMAL overflow
    assert (labelled, top) == (2, "y")


# --- Bad sources: one line naming the source and what to fix ----------------------------------------------


@pytest.mark.parametrize("kind", ["duckdb", "spark", "chdb"])
def test_a_missing_table_or_column_is_one_line_naming_the_source_key(
        engine: Engine, team_campaign: Campaign, tmp_path: Path, kind: str, request: pytest.FixtureRequest) -> None:
    if kind == "spark":
        request.getfixturevalue("spark")
    url = warehouse_url(kind, team_campaign, tmp_path)
    mapping = _mapping(url)
    mapping["sends"] = {**mapping["sends"], "table": "touchez"}
    store_spec(engine, _spec(mapping))
    _launch(engine)
    with pytest.raises(SourceError) as missing:
        build_report(engine, "wh-test")
    message = str(missing.value)
    assert "\n" not in message and "'wh-test'" in message and url.split("://")[0] in message
    assert "table touchez does not exist" in message and "[source.sends] table" in message

    mapping = _mapping(url)  # the design is launched: a second experiment maps a missing column
    mapping["events"] = {**mapping["events"], "occurred_at": "event_ts"}
    store_spec(engine, example_spec(name="wh-test-2", attribution_days=WINDOW, source=mapping))
    with pytest.raises(SourceError) as column_missing:
        build_report(engine, "wh-test-2")
    message = str(column_missing.value)
    assert "\n" not in message and "table app_events has no column event_ts; fix [source.events] occurred_at" in message


def test_an_unreachable_spark_cluster_is_one_line(engine: Engine) -> None:
    """Spark Connect at a port nobody listens on (no session is started: fails fast)."""
    mapping = _mapping("sc://127.0.0.1:1/;token=s3cret")
    store_spec(engine, _spec(mapping))
    _launch(engine)
    with pytest.raises(SourceError, match=r"^the source of 'wh-test' \(sc://127\.0\.0\.1:1/;token=\*\*\*\) "
                                          r"cannot be reached; check url or url_env") as unreachable:
        build_report(engine, "wh-test")
    assert "s3cret" not in str(unreachable.value) and "\n" not in str(unreachable.value)



def test_a_postgresql_user_without_select_is_one_line_naming_the_table(engine: Engine,
                                                                      team_campaign: Campaign) -> None:
    """A read-only role granted SELECT on three of the four mapped tables: the report names the
    fourth and says to grant SELECT on it."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no users or grants (run with RECALL_TEST_DATABASE_URL=postgresql+psycopg://…)")
    _write_team_tables(lambda name, frame: frame.to_sql(name, engine, if_exists="append", index=False),
                       team_campaign)
    role = f"recall_no_grant_{os.getpid()}"  # roles belong to the server: one per test process
    with engine.begin() as conn:
        conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
        conn.execute(text(f'GRANT SELECT ON crm_users, recall_assignments, touches TO "{role}"'))
    try:
        url = engine.url.set(username=role, password="not-shown").render_as_string(hide_password=False)
        store_spec(engine, _spec(_mapping(url)))
        _launch(engine)
        with pytest.raises(SourceError) as denied:
            build_report(engine, "wh-test")
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))  # its grants in this database
            conn.execute(text(f'DROP ROLE "{role}"'))
    message = str(denied.value)
    assert "\n" not in message and "not-shown" not in message
    assert message.startswith(f"the source of 'wh-test' (postgresql+psycopg://{role}:***@")
    assert ("the account may not read table app_events ([source.events] table); grant it SELECT on app_events "
            "(permission denied for table app_events)") in message


CHDB_USERS = """<clickhouse>
  <users>
    <default><password></password><access_management>1</access_management><profile>default</profile>
      <quota>default</quota><networks><ip>::/0</ip></networks></default>
    <reader><password></password><profile>default</profile><quota>default</quota><networks><ip>::/0</ip></networks>
      <grants><query>GRANT SELECT ON default.crm_users</query><query>GRANT SELECT ON default.recall_assignments</query>
        <query>GRANT SELECT ON default.touches</query></grants></reader>
  </users>
  <profiles><default/></profiles>
  <quotas><default/></quotas>
</clickhouse>
"""


def test_a_clickhouse_user_without_select_is_one_line_naming_the_table(engine: Engine, team_campaign: Campaign,
                                                                      tmp_path: Path) -> None:
    """chDB runs every query as its own ``default`` user (a user in the connection is not used), so the
    refused grant is ClickHouse's own check of a view's definer: ``app_events`` is a view over the
    events, ``SQL SECURITY DEFINER`` as ``reader``, who may read the other three tables only. The
    users come from a chDB configuration file named in the URL (``?config-file=``)."""
    import clickhouse_connect

    url = warehouse_url("chdb", team_campaign, tmp_path)
    (tmp_path / "users.xml").write_text(CHDB_USERS)
    (tmp_path / "config.xml").write_text("<clickhouse><user_directories><users_xml><path>"
                                         f"{tmp_path / 'users.xml'}</path></users_xml></user_directories></clickhouse>")
    options = {"config-file": str(tmp_path / "config.xml")}
    client = clickhouse_connect.get_client(interface="chdb", path=str(tmp_path / "chdb"), chdb_options=options)
    try:
        client.command("RENAME TABLE app_events TO app_events_data")
        client.command("CREATE VIEW app_events DEFINER = reader SQL SECURITY DEFINER AS SELECT * FROM app_events_data")
    finally:
        client.close()
    url = f"{url}?config-file={tmp_path / 'config.xml'}"
    store_spec(engine, _spec(_mapping(url)))
    _launch(engine)
    with pytest.raises(SourceError) as denied:
        build_report(engine, "wh-test")
    message = str(denied.value)
    assert "\n" not in message and message.startswith(f"the source of 'wh-test' (clickhousedb+chdb:///{tmp_path}")
    assert "the account may not read table app_events ([source.events] table); grant it SELECT on app_events" in message
    assert "Code: 497" in message and "reader: Not enough privileges" in message  # ClickHouse's own words


def test_an_unreadable_parquet_table_on_spark_local_is_one_line(database_url: str, engine: Engine,
                                                               team_campaign: Campaign, tmp_path: Path) -> None:
    """Spark's local mode reads files: a table directory the process may not read. The tests run as
    root, whom file permissions do not stop, so the report runs in a process without the capability
    to override them (util-linux's setpriv); as any other user a chmod is enough."""
    import shutil
    import subprocess
    import sys

    from experiments import engines

    if engines.java_home() is None:
        pytest.skip("Spark needs Java 17 and none is installed")
    command = [sys.executable, "-c", "import cli; cli.main()", "report", "wh-test"]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("as root, a refused read needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", *command]
    url = warehouse_url("spark", team_campaign, tmp_path)
    store_spec(engine, _spec(_mapping(url)))
    _launch(engine)
    table_dir = tmp_path / "parquet" / "app_events"
    table_dir.chmod(0)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                                cwd=Path(__file__).resolve().parents[1],
                                env={**os.environ, "RECALL_DATABASE_URL": database_url,
                                     "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    finally:
        table_dir.chmod(0o755)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if "the source of 'wh-test'" in line]
    assert len(lines) == 1, result.stderr[-3000:]
    assert f"(spark+local:///{tmp_path / 'parquet'}): cannot read table app_events at {table_dir}" in lines[0]
    assert "Permission denied" in lines[0]
    assert lines[0].endswith("let the account that runs the report read that table's directory and files")

# --- The same report on DuckDB, Spark and ClickHouse ------------------------------------------------------


def test_the_report_is_the_same_on_duckdb_spark_and_clickhouse(tmp_path: Path, spark: object,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``recall report sim-campaign --format json`` on the same simulated warehouse in each engine: every
    number equal to 1e-9 (each engine's registry is its own Recall Lab database)."""
    import json

    from typer.testing import CliRunner

    from cli import app
    from experiments.simulate import simulate
    from tests.conftest import fresh_database

    reports = {}
    for kind, url in (("duckdb", f"duckdb:///{tmp_path / 'sim.duckdb'}"), ("spark", f"spark+local:///{tmp_path / 'sim-spark'}"),
                      ("chdb", f"clickhousedb+chdb:///{tmp_path / 'sim-chdb'}")):
        (tmp_path / kind).mkdir()
        registry = fresh_database(tmp_path / kind)
        simulate(url, 2_000, chunk=700, seed=11, recall_url=registry)
        monkeypatch.setenv("RECALL_DATABASE_URL", registry)
        result = CliRunner().invoke(app, ["report", "sim-campaign", "--format", "json"])
        assert result.exit_code == 0, result.output
        reports[kind] = json.loads(result.stdout)

    def numbers(value, path: str = "") -> Iterator[tuple[str, object]]:  # noqa: ANN001
        if isinstance(value, dict):
            for k, v in value.items():
                if k != "generated_at":
                    yield from numbers(v, f"{path}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                yield from numbers(v, f"{path}[{i}]")
        else:
            yield path, value

    want = dict(numbers(reports["duckdb"]))
    assert len(want) > 200 and any(isinstance(v, float) for v in want.values())
    for kind in ("spark", "chdb"):
        got = dict(numbers(reports[kind]))
        assert got.keys() == want.keys(), kind
        for key, value in want.items():
            if isinstance(value, float) and not isinstance(value, bool):
                assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), (kind, key)
            else:
                assert got[key] == value, (kind, key)


def test_a_simulated_spark_warehouse_copied_into_chdb_holds_the_rows_simulate_writes_there(tmp_path: Path) -> None:
    """``parquet_to_chdb`` (the benchmark builds 30M customers once for Spark and chDB) equals
    ``simulate`` writing to chDB itself, table by table and row by row."""
    import clickhouse_connect

    from experiments.simulate import WAREHOUSE_TABLES, parquet_to_chdb, simulate
    from tests.conftest import fresh_database

    spark_url = f"spark+local:///{tmp_path / 'spark'}"
    copied, written = tmp_path / "copied", tmp_path / "written"
    for folder in ("a", "b", "c"):
        (tmp_path / folder).mkdir()
    simulate(spark_url, 1_500, chunk=700, seed=11, recall_url=fresh_database(tmp_path / "a"))
    parquet_to_chdb(spark_url, f"clickhousedb+chdb:///{copied}", recall_url=fresh_database(tmp_path / "b"))
    simulate(f"clickhousedb+chdb:///{written}", 1_500, chunk=700, seed=11, recall_url=fresh_database(tmp_path / "c"))
    tables = {}
    for path in (copied, written):
        client = clickhouse_connect.get_client(interface="chdb", path=str(path))
        try:
            tables[path] = {t: client.query_df(f"SELECT * FROM {t} ORDER BY ALL") for t in WAREHOUSE_TABLES}
        finally:
            client.close()
    for table in WAREHOUSE_TABLES:
        assert len(tables[written][table]) > 0, table
        pd.testing.assert_frame_equal(tables[copied][table], tables[written][table], check_exact=True)

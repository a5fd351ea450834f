"""Warehouse benchmark: end-to-end ``recall report`` at 1M and 10M customers, where the data lives.

For each backend and size it builds a simulated campaign once (``recall simulate``: 3 contacted
variants + a 10% no-contact control, 4 lifecycle cohorts as segments, about 3 events per customer),
then measures, each in a fresh process:

- ``recall report NAME --format json --cuped --segments cohort`` (the 4 lifecycle cohorts): wall time and peak memory (max RSS) of the process,
  which holds DuckDB's and chDB's own memory too; for Spark's local mode, of the process and the
  JVM it starts together (their summed RSS, sampled every 0.2 s), the JVM's start included;
- the pandas baseline: load the per-customer rows (assignments, the events of the experiment's
  period, customers) into pandas, compute the same per-customer outcomes, then the same report
  from them with the same statistics functions (every variant × metric, the cohort segments, CUPED
  on pre-period spend and orders); its numbers must equal the report's to 1e-9 (relative);
- on PostgreSQL, the time ``experiments.assignment.assign`` takes to hash and store the assignment
  of every simulated customer to a new experiment (INSERT … SELECT, hashed in the database): once
  into an empty assignments table (a database holding only the customers, ``recall_bench_assign_<N>``)
  and once beside the simulated campaign's own assignments; each is removed again.

    .venv/bin/python benchmarks/warehouse.py                          # DuckDB 1M and 10M, PostgreSQL 1M
    .venv/bin/python benchmarks/warehouse.py --sizes 1000000 --backends duckdb
    .venv/bin/python benchmarks/warehouse.py --pg-sizes 1000000 10000000   # PostgreSQL at 10M too (slow to build)
    .venv/bin/python benchmarks/warehouse.py --backends duckdb spark chdb --no-baseline   # the same warehouse on each
    .venv/bin/python benchmarks/warehouse.py --backends spark chdb --sizes 30000000 --no-baseline --repeat 1 --statement-times

``--statement-times`` times each statement a report sends to the warehouse (a SQLAlchemy event
listener in the report's process) and prints them per run. Each row also gives the report's CPU
time (user + system) and the load average when it ended: the machine is shared.

Spark and chDB read the same simulated campaign as DuckDB (same seed, same rows: Parquet tables for
Spark, a chDB directory for ClickHouse; when Spark's are built first, chDB's are loaded from its Parquet
instead of being generated again); the pandas baseline runs on DuckDB and PostgreSQL only, and
``tests/test_warehouse.py`` checks the three engines' reports equal.

Data go to benchmarks/.data/ (git-ignored; about 1.3 GB at 10M on DuckDB) and PostgreSQL databases
``recall_bench_<N>`` at --pg (default 127.0.0.1:5432); ``--rebuild`` builds them again.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / ".data"
RECALL = str(Path(sys.executable).with_name("recall"))
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
WAREHOUSES = {"spark": "spark+local", "chdb": "clickhousedb+chdb"}  # backend → URL scheme of its warehouse


def _tree_rss_mb(root: int) -> float:
    """Summed RSS of ``root`` and its descendants (Spark's JVM is a child of the report's process)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    tree, frontier = {root}, [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier and pid not in tree]
        tree.update(children)
        frontier = children
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            continue
    return total / 2**20


def run_measured(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str, float]:
    """(wall seconds, peak RSS in MB, stdout, CPU seconds) of a child process: its own max RSS, or its
    and its children's summed RSS sampled every 0.2 s when that is larger (a JVM); CPU is user + system
    of the process and the children it waited for."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], _tree_rss_mb(process.pid))
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout = process.stdout.read()  # type: ignore[union-attr]
    stderr = process.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{stderr.decode()[-3000:]}")
    return seconds, max(usage.ru_maxrss / 1024, peak[0]), stdout.decode(), usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- data, built once


def _pg_database(size: int | str, server: str) -> str:
    from sqlalchemy import create_engine, text

    name = f"recall_bench_{size}"
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.scalar(text("select 1 from pg_database where datname = :n"), {"n": name}):
            conn.execute(text(f'create database "{name}"'))
    admin.dispose()
    return f"{server}/{name}"


def _drop_pg_database(size: int, server: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'drop database if exists "recall_bench_{size}" with (force)'))
    admin.dispose()


def build(backend: str, size: int, server: str, rebuild: bool) -> tuple[str, str, dict]:
    """(Recall Lab database URL, data URL, build figures) of one simulated campaign, built if missing."""
    DATA.mkdir(parents=True, exist_ok=True)
    marker = DATA / f"{backend}-{size}.json"
    if backend == "duckdb":
        data_url = f"duckdb:///{DATA / f'sim-{size}.duckdb'}"
        meta_url = f"sqlite:///{DATA / f'meta-{size}.db'}"
    elif backend in WAREHOUSES:
        data_url = f"{WAREHOUSES[backend]}:///{DATA / f'sim-{size}-{backend}'}"
        meta_url = f"sqlite:///{DATA / f'meta-{size}-{backend}.db'}"
    else:
        if rebuild:
            _drop_pg_database(size, server)
            marker.unlink(missing_ok=True)
        data_url = meta_url = _pg_database(size, server)
    if marker.exists() and not rebuild:
        return meta_url, data_url, json.loads(marker.read_text())
    if backend == "duckdb":
        for path in (DATA / f"sim-{size}.duckdb", DATA / f"meta-{size}.db"):
            path.unlink(missing_ok=True)
    if backend in WAREHOUSES:
        (DATA / f"meta-{size}-{backend}.db").unlink(missing_ok=True)
    spark = DATA / f"spark-{size}.json"
    if backend == "chdb" and spark.exists() and not rebuild:  # the same rows: Spark's Parquet, loaded once more
        print(f"loading chdb {size:,} customers from Spark's Parquet tables (once) …", flush=True)
        code = ("import sys; from experiments.simulate import parquet_to_chdb; "
                "parquet_to_chdb(sys.argv[1], sys.argv[2], name=sys.argv[3], recall_url=sys.argv[4])")
        spark_url = f"{WAREHOUSES['spark']}:///{DATA / f'sim-{size}-spark'}"
        seconds, peak, _, _ = run_measured([sys.executable, "-c", code, spark_url, data_url, name_of(size), meta_url])
        figures = {**json.loads(spark.read_text()), "build_seconds": seconds, "build_peak_mb": peak,
                   "loaded_from": spark_url}
        marker.write_text(json.dumps(figures))
        return meta_url, data_url, figures
    print(f"building {backend} {size:,} customers (once) …", flush=True)
    code = ("import json, sys; from experiments.simulate import simulate; "
            "s = simulate(sys.argv[1], int(sys.argv[2]), name=sys.argv[3], recall_url=sys.argv[4]); "
            "print(json.dumps(dict(events=s.events, sends=s.sends, seconds=s.seconds)))")
    seconds, peak, stdout, _ = run_measured([sys.executable, "-c", code, data_url, str(size), name_of(size), meta_url])
    figures = {**json.loads(stdout.strip().splitlines()[-1]), "build_seconds": seconds, "build_peak_mb": peak}
    marker.write_text(json.dumps(figures))
    return meta_url, data_url, figures


def name_of(size: int) -> str:
    return f"bench-{size}"


# --------------------------------------------------------------------------- the pandas baseline


def pandas_baseline(meta_url: str, name: str) -> list[dict]:
    """The report's comparisons computed from per-customer rows loaded into pandas."""
    import numpy as np
    import pandas as pd
    from sqlalchemy import text

    from analysis.cuped import CovariateStats, cuped
    from analysis.frequentist import compare_many
    from analysis.sufficient import SampleStats
    from analysis.tables import source_of
    from experiments.catalog import BUILTIN_METRICS
    from experiments.db import make_engine, session_scope
    from experiments.store import get_experiment

    engine = make_engine(meta_url)
    with session_scope(engine) as session:
        experiment = get_experiment(session, name)
        window = experiment.attribution_days
        variants = {v.id: v.name for v in experiment.variants}
        control = experiment.control.name
        source = source_of(experiment)
    if source is not None:  # a DuckDB warehouse in the simulated layout
        import duckdb

        con = duckdb.connect(source.resolved_url().removeprefix("duckdb:///"), read_only=True)
        assignments = con.execute("select customer_id, variant, assigned_at from assignments where experiment = ?",
                                  [name]).df()
        first, last = assignments.assigned_at.min(), assignments.assigned_at.max()
        events = con.execute("select customer_id, event_type, occurred_at, value from events "
                             "where occurred_at >= ? and occurred_at < ?",
                             [first, last + pd.Timedelta(days=window + 1)]).df()
        customers = con.execute("select customer_id, cohort, spend_before, orders_before from customers").df()
        con.close()
    else:
        with engine.connect() as conn:
            assignments = pd.read_sql(text(
                "select customer_id, variant_id, assigned_at from assignments a join experiments x "
                "on x.id = a.experiment_id where x.name = :n"), conn, params={"n": name})
            assignments["variant"] = assignments.pop("variant_id").map(variants)
            first, last = assignments.assigned_at.min(), assignments.assigned_at.max()
            events = pd.read_sql(text("select customer_id, event_type, occurred_at, value from events "
                                      "where occurred_at >= :a and occurred_at < :b"), conn,
                                 params={"a": first.to_pydatetime(),
                                         "b": (last + pd.Timedelta(days=window + 1)).to_pydatetime()})
            customers = pd.read_sql(text("select customer_id, signup_at, first_order_at, last_active_at, "
                                         "spend_before, orders_before from customers"), conn)
        # The lifecycle stage at assignment, by experiments.cohorts' rules (all assigned at one time here).
        at = first
        last_active, signup = customers.pop("last_active_at"), customers.pop("signup_at")
        new = customers.pop("first_order_at").isna() & (signup <= at - pd.Timedelta(days=3)) & (
            signup > at - pd.Timedelta(days=8))
        customers["cohort"] = np.select(
            [new, last_active <= at - pd.Timedelta(days=90), last_active <= at - pd.Timedelta(days=45),
             last_active <= at - pd.Timedelta(days=30)],
            ["new_inactive", "silent_3m", "lapsed_1_3m", "dormant_30d"], "active")
    engine.dispose()
    joined = events.merge(assignments, on="customer_id")
    inside = joined[(joined.occurred_at >= joined.assigned_at)
                    & (joined.occurred_at < joined.assigned_at + pd.Timedelta(days=window))]
    kind = inside.event_type
    per = pd.DataFrame({
        "customer_id": inside.customer_id,
        "visits": (kind == "visit").astype(np.int64), "orders": (kind == "order").astype(np.int64),
        "revenue": np.where(kind == "order", inside.value.astype(float), 0.0),
        "redemptions": (kind == "coupon_redeemed").astype(np.int64),
        "unsubscribes": (kind == "unsubscribe").astype(np.int64),
        "complaints": (kind == "complaint").astype(np.int64),
    }).groupby("customer_id").sum()
    per = assignments[["customer_id", "variant"]].merge(per, left_on="customer_id", right_index=True, how="left")
    per = per.fillna(0)
    per = per.merge(customers, on="customer_id", how="left")
    metrics = pd.DataFrame({
        "variant": per.variant, "cohort": per.cohort,
        "spend_before": per.spend_before.astype(float).fillna(0), "orders_before": per.orders_before.astype(float).fillna(0),
        "returned": ((per.visits + per.orders) > 0).astype(float), "ordered": (per.orders > 0).astype(float),
        "revenue": per.revenue, "redeemed": (per.redemptions > 0).astype(float),
        "unsubscribed": (per.unsubscribes > 0).astype(float), "complained": (per.complaints > 0).astype(float),
    })
    stats = {}
    for variant, group in metrics.groupby("variant"):
        stats[variant] = {m: SampleStats.from_values(group[m].to_numpy()) for m in BUILTIN_METRICS}
    pairs = [(v, m) for v in stats if v != control for m in BUILTIN_METRICS]
    estimates = compare_many([stats[control][m] for _, m in pairs], [stats[v][m] for v, m in pairs],
                             [BUILTIN_METRICS[m].kind for _, m in pairs])
    out = [dict(variant=v, metric=m, segment=None, abs_uplift=e.abs_uplift, p_value=e.p_value, abs_ci=e.abs_ci,
                method=e.method) for (v, m), e in zip(pairs, estimates, strict=True)]
    # Segments: the primary metric per cohort, as the report's segment tables.
    cells = {key: SampleStats.from_values(g.returned.to_numpy()) for key, g in metrics.groupby(["cohort", "variant"])}
    keys = [(c, v) for c, v in cells if v != control and (c, control) in cells]
    estimates = compare_many([cells[(c, control)] for c, _ in keys], [cells[k] for k in keys],
                             [BUILTIN_METRICS["returned"].kind] * len(keys))
    out += [dict(variant=v, metric="returned", segment=f"cohort={c}", abs_uplift=e.abs_uplift, p_value=e.p_value,
                 abs_ci=e.abs_ci, method=e.method) for (c, v), e in zip(keys, estimates, strict=True)]
    # CUPED on the pre-period spend and orders.
    covariates = ["spend_before", "orders_before"]
    adjusted = {}
    for variant, group in metrics.groupby("variant"):
        x = group[covariates].to_numpy()
        for m in BUILTIN_METRICS:
            y = group[m].to_numpy()
            adjusted[(variant, m)] = CovariateStats(len(y), y.sum(), y @ y, x.sum(axis=0), x.T @ x, x.T @ y)
    for v, m in pairs:
        e = cuped(adjusted[(control, m)], adjusted[(v, m)])
        out.append(dict(variant=v, metric=m, segment="cuped", abs_uplift=float(e.abs_uplift),
                        p_value=float(e.p_value), abs_ci=(float(e.abs_ci[0]), float(e.abs_ci[1])), method=e.method))
    return out


def assignment_seconds(meta_url: str, size: int) -> float:
    """Seconds to assign the database's customers to a new experiment (another layer, so the
    simulated campaign does not exclude them), measured on its own, then removed again."""
    from sqlalchemy import text

    from experiments.assignment import assign
    from experiments.db import make_engine, session_scope
    from experiments.policy import ContactPolicy
    from experiments.simulate import LAUNCH, campaign_spec
    from experiments.store import create_experiment, get_experiment

    engine = make_engine(meta_url)
    spec = campaign_spec(f"assign-{size}").model_copy(update={"layer": "assignment-benchmark"})
    with session_scope(engine) as session:
        create_experiment(session, spec)
    start = time.perf_counter()
    summary = assign(engine, spec.name, as_of=LAUNCH, policy=ContactPolicy())
    seconds = time.perf_counter() - start
    assert summary.newly_assigned == size, summary
    with session_scope(engine) as session:
        session.delete(get_experiment(session, spec.name))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE assignments"))  # so the deleted rows do not slow the next report
    engine.dispose()
    return seconds


def customers_only(size: int, server: str) -> str:
    """A Recall Lab database holding only the simulated customers (copied once from the campaign's
    database): where the first experiment's assignment is measured, into an empty table."""
    import psycopg

    from experiments.db import open_engine

    url = _pg_database(f"assign_{size}", server)
    engine = open_engine(url)
    engine.dispose()
    dsn = lambda u: u.replace("postgresql+psycopg://", "postgresql://")  # noqa: E731
    with psycopg.connect(dsn(url)) as target:
        if target.execute("select count(*) from customers").fetchone()[0] != size:
            target.execute("truncate customers cascade")
            with psycopg.connect(dsn(f"{server}/recall_bench_{size}")) as source, \
                    source.cursor().copy("copy customers to stdout (format binary)") as out, \
                    target.cursor().copy("copy customers from stdin (format binary)") as into:
                for block in out:
                    into.write(block)
        target.execute("truncate assignments cascade")
    with psycopg.connect(dsn(url), autocommit=True) as target:
        target.execute("vacuum analyze customers")  # as autovacuum leaves a long-lived table
    return url


def differences(report: dict, baseline: list[dict]) -> tuple[float, int]:
    """Largest relative difference between the report's and the baseline's numbers, and how many
    comparisons were compared (those the report ran with the same method: not capped revenue)."""
    worst, compared = 0.0, 0
    ours = {(c["variant"], c["metric"], c["segment"]): c for c in report["comparisons"] + report["segments"]}
    ours.update({(c["variant"], c["metric"], "cuped"): c for c in report["cuped"]})
    for b in baseline:
        c = ours[(b["variant"], b["metric"], b["segment"])]
        if c["method"] != b["method"]:
            continue
        compared += 1
        for x, y in ((c["abs_uplift"], b["abs_uplift"]), (c["p_value"], b["p_value"]),
                     (c["abs_ci"][0], b["abs_ci"][0]), (c["abs_ci"][1], b["abs_ci"][1])):
            if x is None or y is None or not math.isfinite(y):
                continue
            worst = max(worst, abs(x - y) / max(abs(y), 1e-300))
    return worst, compared


# --------------------------------------------------------------------------- the run


# The report's process with a timer on every statement sent to the warehouse (Recall Lab's own SQLite
# registry left out): each statement's seconds, appended as JSON lines to $RECALL_BENCH_STATEMENTS.
# The listeners cost microseconds per statement, against the statements' seconds.
TIMED_REPORT = """
import json, os, re, time
from sqlalchemy import event
from sqlalchemy.engine import Engine

@event.listens_for(Engine, "before_cursor_execute")
def _start(conn, cursor, statement, parameters, context, executemany):
    conn.info.setdefault("bench_started", []).append(time.perf_counter())

@event.listens_for(Engine, "after_cursor_execute")
def _stop(conn, cursor, statement, parameters, context, executemany):
    seconds = time.perf_counter() - conn.info["bench_started"].pop()
    if conn.dialect.name != "sqlite":
        with open(os.environ["RECALL_BENCH_STATEMENTS"], "a") as out:
            out.write(json.dumps(dict(seconds=seconds, sql=re.sub(r"\\s+", " ", statement)[:160])) + "\\n")

import cli
cli.main()
"""


def statement_label(sql: str) -> str:
    """A short name for one of the report's statements, from its text."""
    lowered = sql.lower()
    for needle, label in (("customer_metrics", "revenue cap"), ("ntile", "ranges (NTILE)"), ("min(", "bounds"),
                          ("channel", "sends")):
        if needle in lowered:
            return label
    return "aggregate"


def machine() -> str:
    cpus = os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.processor() or platform.machine()}, {cpus} cores, {memory:.0f} GiB RAM, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000], help="DuckDB sizes")
    parser.add_argument("--pg-sizes", type=int, nargs="+", default=[1_000_000], help="PostgreSQL sizes")
    parser.add_argument("--backends", nargs="+", default=["duckdb", "postgresql"])
    parser.add_argument("--pg", default=PG_SERVER, help="PostgreSQL server URL without a database")
    parser.add_argument("--repeat", type=int, default=3, help="report runs per case (the median is shown)")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--no-baseline", action="store_true", help="skip the pandas baseline")
    parser.add_argument("--statement-times", action="store_true",
                        help="time each statement the reports send (printed per run)")
    parser.add_argument("--baseline-child", nargs=2, metavar=("META_URL", "NAME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_child:
        print(json.dumps(pandas_baseline(*args.baseline_child)))
        return

    print(f"machine: {machine()}")
    cases = [(b, n) for n in args.sizes for b in ("duckdb", *WAREHOUSES) if b in args.backends]
    cases += [("postgresql", n) for n in args.pg_sizes if "postgresql" in args.backends]
    rows = []
    for backend, size in cases:
        meta_url, data_url, built = build(backend, size, args.pg, args.rebuild)
        name = name_of(size)
        env = {**os.environ, "RECALL_DATABASE_URL": meta_url}
        command = [RECALL, "report", name, "--format", "json", "--cuped", "--segments", "cohort"]
        if args.statement_times:  # a script, not ``python -c``: DuckDB takes the latter for a REPL and draws a progress bar
            script = DATA / "timed_report.py"
            script.write_text(TIMED_REPORT)
            command[:1] = [sys.executable, str(script)]
        runs, statements = [], []
        for _ in range(args.repeat):
            timings = DATA / f"statements-{backend}-{size}.jsonl"
            timings.unlink(missing_ok=True)
            runs.append(run_measured(command, {**env, "RECALL_BENCH_STATEMENTS": str(timings)}))
            if args.statement_times:
                lines = [json.loads(line) for line in timings.read_text().splitlines()]
                statements.append([(statement_label(t["sql"]), round(t["seconds"], 2)) for t in lines])
                print(f"{backend} {size:,}: statements (seconds, in order): {statements[-1]}", flush=True)
        seconds, peak, stdout, _ = sorted(runs)[len(runs) // 2]  # the median run
        report = json.loads(stdout)
        row = dict(backend=backend, customers=size, events=built["events"], report_s=seconds, report_mb=peak,
                   report_runs=[round(r[0], 2) for r in runs], report_mb_runs=[round(r[1]) for r in runs],
                   assign_s=assignment_seconds(customers_only(size, args.pg), size) if backend == "postgresql" else None,
                   assign_again_s=assignment_seconds(meta_url, size) if backend == "postgresql" else None,
                   build_s=built["build_seconds"], load_average=os.getloadavg(),
                   cpu_s=sum(r[3] for r in runs) / len(runs), statements=statements or None)
        if not args.no_baseline and backend not in WAREHOUSES:
            b_seconds, b_peak, b_out, _ = run_measured([sys.executable, __file__, "--baseline-child", meta_url, name], env)
            worst, compared = differences(report, json.loads(b_out))
            row.update(pandas_s=b_seconds, pandas_mb=b_peak, speedup=b_seconds / seconds, max_rel_diff=worst,
                       compared=compared)
        rows.append(row)
        print(json.dumps(row), flush=True)

    print()
    print("| backend | customers | events | recall report (median; runs) | peak memory | pandas baseline | pandas memory "
          "| speed-up | max rel. diff | assignment stored | beside 1 other |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['backend']} | {r['customers']:,} | {r['events']:,} | {r['report_s']:.1f} s "
              f"({', '.join(f'{x:.1f}' for x in r['report_runs'])}) | "
              f"{r['report_mb']:,.0f} MB | "
              + (f"{r['pandas_s']:.1f} s | {r['pandas_mb']:,.0f} MB | {r['speedup']:.1f}× | "
                 f"{r['max_rel_diff']:.1e} ({r['compared']}) | " if "pandas_s" in r else "– | – | – | – | ")
              + (f"{r['assign_s']:.1f} s | {r['assign_again_s']:.1f} s |" if r.get("assign_s") else "– | – |"))


if __name__ == "__main__":
    main()

"""Imports and reports of Recall Lab's own database beside the same work in pandas, measured in one run.

Writes a per-customer results file of N customers (default 2M: customer id, variant, a 0/1 outcome,
revenue, a pre-period covariate, a cohort), then, ``--runs`` times, each step in a child process of its
own (wall seconds, CPU seconds (user + system) and peak RSS from ``os.wait4``, and the seconds of the
work itself, timed inside the process after its imports: Python, pandas, scipy and SQLAlchemy take a
second or two to load):

- baseline ``pandas.read_csv`` of the file, and ``recall import results`` of it into a fresh SQLite
  database and (with ``--pg``) a fresh PostgreSQL one;
- baseline ``pandas.read_csv`` of an events file of ``--events`` rows (default 10M: customer id, type,
  local time, amount), and ``recall import events`` of it into the same database (``--events 0``:
  skipped);
- baseline pandas + statsmodels computing the report's comparisons from the CSV (read included: per
  contacted variant a z-test of the outcome and a Welch t-test of revenue, the same per cohort for the
  outcome, and the χ² sample-ratio check), and ``recall report`` of the imported experiment.

It prints one table: each step's median (min–max) beside its baseline's, the ratio of each run's step to
the same run's baseline (median and range over the runs), its CPU seconds and peak memory, and the load
average over the run. The machine may be shared: the ratios, each taken within one run, are the figures
to compare. Not a test: it prints figures (README, "What a results file may hold, and how it is stored").

    .venv/bin/python benchmarks/imports.py
    .venv/bin/python benchmarks/imports.py --customers 2000000 --runs 3 \\
        --pg postgresql+psycopg://postgres@127.0.0.1:5432/recall_bench

``--pg`` names a database the benchmark may wipe (its public schema is dropped before each import).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMPORT = ["--experiment", "bench", "--variant-column", "variant", "--control", "control",
          "--metrics", "converted,revenue", "--covariates", "pre_spend", "--segments", "cohort",
          "--id-column", "customer_id", "--no-progress"]

TIMED = "\nprint(f'@@{time.perf_counter() - started}')"  # the work's seconds, on stdout's last line
PANDAS_READ = "import sys, time\nimport pandas\nstarted = time.perf_counter()\npandas.read_csv(sys.argv[1])" + TIMED
PANDAS_REPORT = """
import sys, time
import pandas as pd
from scipy.stats import chisquare
from statsmodels.stats.proportion import proportions_ztest
from statsmodels.stats.weightstats import ttest_ind

started = time.perf_counter()
data = pd.read_csv(sys.argv[1])
control = data[data.variant == "control"]
counts = data.variant.value_counts()
chisquare(counts.values)
for name, arm in data[data.variant != "control"].groupby("variant"):
    proportions_ztest([arm.converted.sum(), control.converted.sum()], [len(arm), len(control)])
    ttest_ind(arm.revenue, control.revenue, usevar="unequal")
    for cohort, cell in arm.groupby("cohort"):
        base = control[control.cohort == cohort]
        proportions_ztest([cell.converted.sum(), base.converted.sum()], [len(cell), len(base)])
""" + TIMED
# The modules each command loads lazily are imported before the clock starts, as pandas is for the
# baseline; only those: the whole process is the command's, as `recall` runs it.
RECALL_TIMED = ("import sys, time\nfrom cli import app\nimport {modules}\n"
                "started = time.perf_counter()\napp(sys.argv[1:], standalone_mode=False)" + TIMED)
RECALL_IMPORT = RECALL_TIMED.replace("{modules}", "experiments.importer")
RECALL_REPORT = RECALL_TIMED.replace("{modules}", "analysis.runs, analysis.render, scipy.special")
# The commands run as installed: from bytecode (pip compiles a package when it installs it, as pandas'
# was), not recompiled from source at every start as PYTHONDONTWRITEBYTECODE makes an editable
# checkout do (0.1 s of the report's start-up).
CHILD_ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}, "PYTHONPATH": str(ROOT)}


def compiled() -> None:
    """Recall Lab's modules compiled to bytecode (__pycache__), as an installed package has them."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "analysis", "cli", "experiments"], cwd=ROOT,
                   env=CHILD_ENV, check=True, stdout=subprocess.DEVNULL)


Sample = tuple[float, float, float, float]  # whole process s, the work's s, peak RSS MB, CPU s (user + system)


def reaped(command: list[str], env: dict[str, str] = CHILD_ENV) -> tuple[float, os.struct_rusage, str]:
    """A child process's wall seconds, its own rusage (reaped with ``os.wait4``) and its stdout; its stderr's
    end in the error when it fails."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, cwd=ROOT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(command)} failed:\n{err.read().decode()[-3000:]}")
        out.seek(0)
        return seconds, usage, out.read().decode()


def measured(command: list[str]) -> Sample:
    """A child process's wall seconds, the seconds it reports for its work (``@@s`` on its last line),
    its peak RSS in MB and its CPU seconds."""
    seconds, usage, out = reaped(command)
    work = float(out.rstrip().rsplit("@@", 1)[1])
    return seconds, work, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def write_results(path: Path, customers: int, seed: int = 1) -> None:
    """The issue's file: ids in scrambled order, three arms, ~10% converted, revenue of converters."""
    subprocess.run([sys.executable, "-c", f"""
import numpy as np, pandas as pd
rng = np.random.default_rng({seed})
n = {customers}
converted = (rng.random(n) < 0.1).astype(int)
pd.DataFrame({{
    "customer_id": [f"CUST{{i:010d}}" for i in rng.permutation(n)],
    "variant": rng.choice(["control", "sms_coupon5", "sms_coupon10"], n),
    "converted": converted,
    "revenue": np.where(converted == 1, np.round(rng.gamma(2.0, 60.0, n), 2), 0.0),
    "pre_spend": np.round(rng.gamma(1.5, 100.0, n), 2),
    "cohort": rng.choice(["dormant_30d", "lapsed_1_3m", "silent_3m"], n),
}}).to_csv({str(path)!r}, index=False)
"""], check=True)


def write_events(path: Path, rows: int, seed: int = 3) -> None:
    """Events of rows/3 customers over the four weeks before today, local time to the minute; orders carry
    an amount."""
    subprocess.run([sys.executable, "-c", f"""
import numpy as np, pandas as pd
rng = np.random.default_rng({seed})
n = {rows}
kinds = np.array(["visit", "visit", "visit", "order", "click", "delivered", "coupon_redeemed", "unsubscribe"])
kind = kinds[rng.integers(0, len(kinds), n)]
minutes = rng.integers(0, 28 * 24 * 60, n).astype("timedelta64[m]")
at = (np.datetime64("today", "m") - np.timedelta64(29, "D") + minutes).astype(str)
pd.DataFrame({{
    "customer_id": np.char.add("C", np.char.zfill(rng.integers(0, max(n // 3, 1), n).astype(str), 9)),
    "event_type": kind,
    "occurred_at": np.char.replace(at, "T", " "),
    "value": np.where(kind == "order", np.round(rng.uniform(5, 300, n), 2).astype(str), ""),
}}).to_csv({str(path)!r}, index=False)
"""], check=True)


def fresh(url: str) -> str:
    """An empty, migrated database at ``url`` (SQLite file removed; PostgreSQL public schema dropped)."""
    subprocess.run([sys.executable, "-c", f"""
from pathlib import Path
from sqlalchemy import text
from experiments.db import make_engine, upgrade
url = {url!r}
if url.startswith("sqlite:///"):
    for suffix in ("", "-wal", "-shm"):
        Path(url[len("sqlite:///"):] + suffix).unlink(missing_ok=True)
engine = make_engine(url)
if engine.dialect.name == "postgresql":
    with engine.begin() as c:
        c.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        c.execute(text("CREATE SCHEMA public"))
upgrade(engine)
"""], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return url


def spread(values: list[float], unit: str = "") -> str:
    return f"{statistics.median(values):.2f}{unit} ({min(values):.2f}–{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=10_000_000, help="rows of the events file (0: none)")
    parser.add_argument("--pg", help="a PostgreSQL database URL the benchmark may wipe")
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "recall-bench-imports")
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    compiled()
    path = args.folder / f"results-{args.customers}.csv"
    if not path.exists():
        write_results(path, args.customers)
    events = args.folder / f"events-{args.events}.csv"
    if args.events and not events.exists():
        write_events(events, args.events)
    backends = {"SQLite": f"sqlite:///{args.folder / 'bench.db'}", **({"PostgreSQL": args.pg} if args.pg else {})}
    # Each run: a list of (step, backend) → sample; a step's ratio is to its baseline of the same run.
    runs: list[dict[tuple[str, str], Sample]] = []
    loads = [os.getloadavg()[0]]
    for _ in range(args.runs):  # interleaved: the machine's load falls on every figure alike
        run: dict[tuple[str, str], Sample] = {}
        run[("read", "pandas")] = measured([sys.executable, "-c", PANDAS_READ, str(path)])
        run[("report", "pandas")] = measured([sys.executable, "-c", PANDAS_REPORT, str(path)])
        if args.events:
            run[("events", "pandas")] = measured([sys.executable, "-c", PANDAS_READ, str(events)])
        for backend, url in backends.items():
            fresh(url)
            run[("import", backend)] = measured([sys.executable, "-c", RECALL_IMPORT, "import", "results", str(path),
                                                 *IMPORT, "--db", url])
            run[("report", backend)] = measured([sys.executable, "-c", RECALL_REPORT, "report", "bench", "--db", url])
            if args.events:
                run[("events", backend)] = measured([sys.executable, "-c", RECALL_IMPORT, "import", "events",
                                                     str(events), "--no-progress", "--db", url])
        runs.append(run)
        loads.append(os.getloadavg()[0])

    size = path.stat().st_size / 1e6
    print(f"{args.customers:,} customers ({size:.0f} MB CSV)"
          + (f", {args.events:,} events ({events.stat().st_size / 1e6:.0f} MB)" if args.events else "")
          + f"; {args.runs} runs, {os.cpu_count()} cores, load average (1 min) {min(loads):.1f}–{max(loads):.1f} "
          "during the run. Seconds: median (min–max) over the runs; command = the whole process, work = timed "
          "inside it after its imports; CPU = the command's user + system seconds (a database server's are not "
          "counted); ratio = each run's figure over the same run's baseline")
    print("| step | backend | command s | work s | CPU s | peak MB | baseline | command s | work s | CPU s "
          "| ratio: command | ratio: work | ratio: CPU |")
    print("|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    steps = [("import", "read", "`pandas.read_csv`"), ("report", "report", "pandas + statsmodels"),
             *([("events", "events", "`pandas.read_csv`")] if args.events else [])]
    for step, baseline, name in steps:
        base = [run[(baseline, "pandas")] for run in runs]
        for backend in backends:
            mine = [run[(step, backend)] for run in runs]
            command = {"import": "import results", "report": "report",
                       "events": f"import events ({args.events:,})"}[step]
            print(f"| `recall {command}` | {backend} | {spread([s[0] for s in mine])} | {spread([s[1] for s in mine])} | "
                  f"{spread([s[3] for s in mine])} | {max(s[2] for s in mine):.0f} | {name} | "
                  f"{spread([s[0] for s in base])} | {spread([s[1] for s in base])} | {spread([s[3] for s in base])} | "
                  f"{spread([m[0] / b[0] for m, b in zip(mine, base)], '×')} | "
                  f"{spread([m[1] / b[1] for m, b in zip(mine, base)], '×')} | "
                  f"{spread([m[3] / b[3] for m, b in zip(mine, base)], '×')} |")


if __name__ == "__main__":
    main()

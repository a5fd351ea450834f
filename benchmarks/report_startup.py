"""`recall report` of imported per-customer results beside pandas + statsmodels doing the same comparisons.

The issue's target (issue 15): the report of a 2M-customer imported experiment in at most 0.25x the
time pandas + statsmodels take to compute its comparisons from the CSV (read and imports included).
Both are whole processes, as a user runs them: the installed ``recall`` command (its own start-up:
Python, SQLAlchemy, NumPy, SciPy's special functions), and ``python -c`` of the pandas script of
benchmarks/imports.py. Runs alternate, so the shared machine's load falls on both alike; each
figure is wall seconds and CPU seconds (user + system, ``os.wait4``), median (min-max).

``recall report`` is measured twice a run: *computed* (the stored analysis runs deleted first, as
after an import: the command computes the report and stores it) and *read back* (the run it stored
is current: the command reads and renders it, what a second report of unchanged data does).

The results file and the database (SQLite, or ``--db``) are built once in ``--folder`` and reused.

    .venv/bin/python benchmarks/report_startup.py [--customers 2000000] [--runs 5] [--db URL]

Not a test: it prints figures (README, "Importing results").
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from imports import CHILD_ENV, IMPORT, PANDAS_REPORT, ROOT, compiled, fresh, reaped, spread, write_results  # a sibling

RECALL = str(Path(sys.executable).with_name("recall"))


def measured(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of a child process."""
    seconds, usage, _ = reaped(command)
    return seconds, usage.ru_utime + usage.ru_stime


def forget_runs(url: str) -> None:
    """No stored report left: the next ``recall report`` computes (not timed)."""
    subprocess.run([sys.executable, "-c", f"""
from sqlalchemy import delete
from experiments.db import make_engine
from experiments.models import AnalysisRun
with make_engine({url!r}).begin() as connection:
    connection.execute(delete(AnalysisRun))
"""], check=True, cwd=ROOT, env=CHILD_ENV)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--db", help="database URL (default: SQLite in --folder); built once")
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "recall-bench-report")
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    compiled()
    path = args.folder / f"results-{args.customers}.csv"
    if not path.exists():
        write_results(path, args.customers)
    url = args.db or f"sqlite:///{args.folder / f'report-{args.customers}.db'}"
    built = args.folder / f"report-{args.customers}.built"
    if args.db or not built.exists():
        fresh(url)
        subprocess.run([RECALL, "import", "results", str(path), *IMPORT, "--db", url], check=True, cwd=ROOT,
                       env=CHILD_ENV, stdout=subprocess.DEVNULL)
        built.touch()
    load = os.getloadavg()[0]
    pandas, computed, stored = [], [], []
    measured([RECALL, "report", "bench", "--db", url])  # not counted: warms the page cache
    measured([sys.executable, "-c", PANDAS_REPORT, str(path)])
    for _ in range(args.runs):
        pandas.append(measured([sys.executable, "-c", PANDAS_REPORT, str(path)]))
        forget_runs(url)
        computed.append(measured([RECALL, "report", "bench", "--db", url]))
        stored.append(measured([RECALL, "report", "bench", "--db", url]))
    print(f"{args.customers:,} customers ({path.stat().st_size / 1e6:.0f} MB CSV), {args.runs} runs alternating, "
          f"{os.cpu_count()} cores, load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print("| | wall s | CPU s | ratio: wall | ratio: CPU |")
    print("|---|---:|---:|---:|---:|")
    print(f"| pandas + statsmodels (read + compute) | {spread([s[0] for s in pandas])} | "
          f"{spread([s[1] for s in pandas])} | | |")
    for name, samples in (("`recall report`, computed", computed), ("`recall report`, read back", stored)):
        ratios = [(r[0] / p[0], r[1] / p[1]) for p, r in zip(pandas, samples, strict=True)]  # run by run
        print(f"| {name} | {spread([s[0] for s in samples])} | {spread([s[1] for s in samples])} | "
              f"{spread([r[0] for r in ratios])}× | {spread([r[1] for r in ratios])}× |")

if __name__ == "__main__":
    main()

"""The least any implementation can take for issue 15's two unmet targets, beside their baselines in one run.

Issue 15 asks for ``recall import events`` of 10M events in at most 3x ``pandas.read_csv`` of the file,
and for ``recall report`` of a 2M-customer imported experiment in at most 0.25x pandas + statsmodels
doing its comparisons. This script measures what no implementation inside the project's rules can go
below, each as a whole process, alternating with its baseline (``--runs`` times, median (min-max)):

- **events into a row store**: the database's own C client loading the CSV as it is, with no Python,
  no validation, no transaction of ours and no repeat check: the ``sqlite3`` shell's ``.import`` into
  a table without key or index (journal and sync off), and ``psql``'s ``\\copy`` into an UNLOGGED table
  without key or index; then the same with an index on the natural key that makes an import idempotent
  (built once after the load, the cheapest way to have one; not unique, as the generated file repeats
  a few events, which an import stores once). Every row store the project could
  choose (SQLite, PostgreSQL) writes at least this much.
- **the report's libraries**: a Python process importing only SQLAlchemy (to read the database), NumPy
  and ``scipy.special`` (the t and chi-square tails), and then also Typer (the command line). The
  report's own work comes on top.

    .venv/bin/python benchmarks/floors.py [--events 10000000] [--customers 2000000] [--runs 3] \\
        [--pg postgresql://postgres@127.0.0.1:5432/recall_bench]

``--pg`` (a libpq URL) names a database in which the script creates and drops the table ``floor_events``.
The data files are the ones benchmarks/imports.py writes (the same generators, the same folder).
Not a test: it prints figures (README, "Issue 15's two unmet targets").
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from imports import PANDAS_READ, PANDAS_REPORT, reaped, spread, write_events, write_results  # a sibling

COLUMNS = "customer_id TEXT, event_type TEXT, occurred_at TEXT, value TEXT"
KEY = "(customer_id, occurred_at, event_type, value)"  # the events table's natural key, in its order
EVENTS_BASELINE, REPORT_BASELINE = "events: `pandas.read_csv`", "report: pandas + statsmodels (read + compute)"
LIBRARIES = {"SQLAlchemy + NumPy + scipy.special": "import sqlalchemy, numpy, scipy.special",
             "… + Typer": "import sqlalchemy, numpy, scipy.special, typer"}


def wall(command: list[str]) -> float:
    return reaped(command)[0]


def sqlite_load(database: Path, csv: Path, key: bool) -> list[str]:
    database.unlink(missing_ok=True)
    steps = ["PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF", f"CREATE TABLE e ({COLUMNS})",
             f".import --csv --skip 1 {csv} e"]
    return ["sqlite3", "-batch", *(a for step in steps for a in ("-cmd", step)), str(database),
            f"CREATE INDEX k ON e {KEY}" if key else "SELECT count(*) FROM e"]


def pg_load(url: str, csv: Path, key: bool) -> list[str]:
    return ["psql", url, "-q", "-v", "ON_ERROR_STOP=1",
            "-c", f"DROP TABLE IF EXISTS floor_events; CREATE UNLOGGED TABLE floor_events ({COLUMNS})",
            "-c", f"\\copy floor_events FROM '{csv}' WITH (FORMAT csv, HEADER)",
            *(["-c", f"CREATE INDEX ON floor_events {KEY}"] if key else []),
            "-c", "DROP TABLE floor_events"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--customers", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg", help="a libpq URL (postgresql://…) for psql's \\copy")
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "recall-bench-imports")
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    events, results = args.folder / f"events-{args.events}.csv", args.folder / f"results-{args.customers}.csv"
    if not events.exists():
        write_events(events, args.events)
    if not results.exists():
        write_results(results, args.customers)
    if shutil.which("sqlite3") is None or (args.pg and shutil.which("psql") is None):
        raise SystemExit("floors.py needs the sqlite3 shell (and psql with --pg) on PATH")
    database = args.folder / "floor.db"
    indexes = {False: "no key", True: "with the natural key"}
    rows: dict[str, list[float]] = {}

    def timed(name: str, command: list[str]) -> None:
        rows.setdefault(name, []).append(wall(command))

    load = [os.getloadavg()[0]]
    for _ in range(args.runs):  # alternating: the machine's load falls on every figure alike
        timed(EVENTS_BASELINE, [sys.executable, "-c", PANDAS_READ, str(events)])
        for key, what in indexes.items():
            timed(f"events: sqlite3 `.import`, {what}", sqlite_load(database, events, key))
            if args.pg:
                timed(f"events: psql `\\copy`, UNLOGGED, {what}", pg_load(args.pg, events, key))
        timed(REPORT_BASELINE, [sys.executable, "-c", PANDAS_REPORT, str(results)])
        for name, code in LIBRARIES.items():
            timed(f"report: importing {name}", [sys.executable, "-c", code])
        load.append(os.getloadavg()[0])
    database.unlink(missing_ok=True)

    print(f"{args.events:,} events ({events.stat().st_size / 1e6:.0f} MB), {args.customers:,} customers "
          f"({results.stat().st_size / 1e6:.0f} MB); {args.runs} runs, {os.cpu_count()} cores, load average "
          f"{min(load):.1f}–{max(load):.1f}. Wall seconds of the whole process, median (min–max); ratio = each "
          "run's figure over the same run's baseline (the target: events ≤ 3×, report ≤ 0.25×)")
    print("| step | seconds | ratio to its baseline |")
    print("|---|---:|---:|")
    for name, seconds in rows.items():
        base = rows[EVENTS_BASELINE if name.startswith("events") else REPORT_BASELINE]
        ratio = "" if seconds is base else spread([s / b for s, b in zip(seconds, base, strict=True)], "×")
        print(f"| {name} | {spread(seconds)} | {ratio} |")


if __name__ == "__main__":
    main()

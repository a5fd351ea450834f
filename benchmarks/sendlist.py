"""Send-list benchmark: `recall sendlist` of a 1M-customer designed experiment, on SQLite and PostgreSQL.

The experiment is :func:`experiments.simulate.simulate`'s campaign (a 10% control and three contacted
variants, one with a day-4 reminder; about three events a customer, unsubscribes and complaints
among them), with its simulated sends and holds removed: on its launch day every contacted
customer's first touch is due, and the export classifies, records and lists each of them.

Each run starts from the same database (a copy of a SQLite file; a PostgreSQL database created from
a template) and measures the command in its own process, as a user runs it: wall seconds, CPU
seconds (user + system of the command; PostgreSQL's own work is in the server, not in these) and
peak RSS. The median of ``--runs`` runs is printed with the range.

``--baseline REV`` also measures the implementation at git revision REV (e.g. the one before the
export moved into the database) on ``--baseline-size`` customers, in the same run, so the two
figures share the machine's load: its package is extracted with ``git archive`` and put first on
the path of its runs.

    .venv/bin/python benchmarks/sendlist.py
    .venv/bin/python benchmarks/sendlist.py --pg postgresql+psycopg://postgres@127.0.0.1:5432 --baseline 5ae1635

``--explain`` adds, for PostgreSQL, each statement's server time (auto_explain's EXPLAIN ANALYZE of one
more export). ``--pg`` is a server URL without a database: databases ``recall_bench_sendlist_*`` are created there
and dropped afterwards. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bulk_paths import (  # a sibling script: after the path
    CAMPAIGN,
    LAUNCH_DAY,
    RECALL,
    ROOT,
    machine,
)
from imports import reaped  # a sibling script too

PG_PREFIX = "recall_bench_sendlist"


def run_command(command: list[str], pythonpath: str) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MB) of a child process with ``pythonpath``'s packages."""
    seconds, usage, _ = reaped(command, {**os.environ, "PYTHONPATH": pythonpath})
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def child(*args: str, pythonpath: str = str(ROOT)) -> None:
    """A setup step of benchmarks/bulk_paths.py in its own process, with ``pythonpath``'s packages."""
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bulk_paths.py"), "--child", *args], check=True,
                   cwd=ROOT, env={**os.environ, "PYTHONPATH": pythonpath})


def _admin(server: str, *statements: str) -> None:
    code = ("import sys; from sqlalchemy import create_engine, text\n"
            "e = create_engine(sys.argv[1] + '/postgres', isolation_level='AUTOCOMMIT')\n"
            "with e.connect() as c:\n"
            "    for s in sys.argv[2:]: c.execute(text(s))\n")
    subprocess.run([sys.executable, "-c", code, server, *statements], check=True, cwd=ROOT)


class SQLiteDatabases:
    """A simulated campaign in a file, copied afresh for each run."""

    def __init__(self, folder: Path):
        self.folder = folder

    def template(self, size: int, tag: str, pythonpath: str) -> str:
        path = self.folder / f"template-{tag}-{size}.db"
        done = path.with_suffix(".done")
        if not done.exists():  # kept in --tmp: a second benchmark run reuses it
            path.unlink(missing_ok=True)
            child("simulate", f"sqlite:///{path}", str(size), pythonpath=pythonpath)
            done.touch()
        return str(path)

    def fresh(self, template: str) -> str:
        copy = self.folder / "run.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(template, copy)
        return f"sqlite:///{copy}"

    def cleanup_run(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.folder / 'run.db'}{suffix}").unlink(missing_ok=True)

    def cleanup(self) -> None:
        self.cleanup_run()


class PostgresDatabases:
    """A simulated campaign in a template database; each run gets a database created from it. With
    ``keep``, templates are kept for the next benchmark run and reused (marked complete by a comment)."""

    def __init__(self, server: str, keep: bool = False):
        self.server, self.keep = server, keep
        self.created: list[str] = []

    def template(self, size: int, tag: str, pythonpath: str) -> str:
        name = f"{PG_PREFIX}_{tag}_{size}"
        if self.keep and self._complete(name):
            return name
        child("pg-create", self.server, name)
        if not self.keep:
            self.created.append(name)
        child("simulate", f"{self.server}/{name}", str(size), pythonpath=pythonpath)
        _admin(self.server, f"COMMENT ON DATABASE \"{name}\" IS 'complete'")
        return name

    def _complete(self, name: str) -> bool:
        code = ("import sys; from sqlalchemy import create_engine, text\n"
                "e = create_engine(sys.argv[1] + '/postgres')\n"
                "with e.connect() as c:\n"
                "    print(c.scalar(text('SELECT shobj_description(oid, :c) FROM pg_database WHERE datname = :n'),"
                " {'c': 'pg_database', 'n': sys.argv[2]}))\n")
        found = subprocess.run([sys.executable, "-c", code, self.server, name], check=True, cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return found == "complete"

    def fresh(self, template: str) -> str:
        name = f"{PG_PREFIX}_run"
        _admin(self.server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        if name not in self.created:
            self.created.append(name)
        return f"{self.server}/{name}"

    def cleanup_run(self) -> None:
        _admin(self.server, f'DROP DATABASE IF EXISTS "{PG_PREFIX}_run" WITH (FORCE)')

    def cleanup(self) -> None:
        _admin(self.server, *(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in self.created))


def baseline_tree(revision: str, folder: Path) -> str:
    """The packages at ``revision``, extracted into ``folder``: a PYTHONPATH for the old implementation."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", revision, "experiments", "analysis", "cli", "views", "migrations",
                              "alembic.ini"], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return str(folder)


def measure(databases: SQLiteDatabases | PostgresDatabases, template: str, pythonpath: str, runs: int,
            out: Path) -> list[tuple[float, float, float]]:
    figures = []
    for _ in range(runs):
        url = databases.fresh(template)
        shutil.rmtree(out, ignore_errors=True)
        figures.append(run_command([RECALL, "sendlist", CAMPAIGN, "--out", str(out), "--due", LAUNCH_DAY,
                                    "--no-progress", "--db", url], pythonpath))
    databases.cleanup_run()
    return figures


def explain(databases: PostgresDatabases, template: str, pythonpath: str, out: Path) -> str:
    """One more export, in a child process, with every statement's server time (auto_explain's EXPLAIN
    ANALYZE of each statement the export sends, BUFFERS included): less noisy than the wall seconds."""
    url = databases.fresh(template)
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": pythonpath}
    try:
        return subprocess.run([sys.executable, __file__, "--explain-child", url, str(out)], check=True, cwd=ROOT,
                              env=env, capture_output=True, text=True).stdout
    finally:
        databases.cleanup_run()


def explain_child(url: str, out: str) -> None:
    """The export of :func:`explain`, run in-process: auto_explain's plans arrive as notices."""
    from datetime import date

    from sqlalchemy import event

    from experiments.access import cli_actor
    from experiments.db import make_engine
    from experiments.sendlist import write_send_lists

    engine = make_engine(url)
    plans: list[str] = []

    @event.listens_for(engine, "connect")
    def _explained(dbapi_connection, _record) -> None:  # noqa: ANN001
        dbapi_connection.add_notice_handler(lambda notice: plans.append(notice.message_primary or ""))
        cursor = dbapi_connection.cursor()
        cursor.execute("LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; "
                       "SET auto_explain.log_analyze = on; SET auto_explain.log_buffers = on; "
                       "SET auto_explain.log_timing = off; SET client_min_messages = log")
        cursor.close()
        dbapi_connection.commit()

    start = time.perf_counter()
    write_send_lists(engine, CAMPAIGN, out, actor=cli_actor(), due=date.fromisoformat(LAUNCH_DAY))
    print(f"    in-process: {time.perf_counter() - start:.2f} s wall; statements of 20 ms or more (server ms):")
    for plan in plans:
        lines = plan.splitlines()
        ms = float(lines[0].split()[1]) if lines and lines[0].startswith("duration:") else 0.0
        text = next((line[len("Query Text: "):] for line in lines if line.startswith("Query Text: ")), "")
        buffers = next((line.strip() for line in lines if line.startswith("  Buffers:")), "")  # the top node's
        if ms >= 20:
            print(f"    {ms:8.0f}  {' '.join(text.split())[:70]}  [{buffers}]")
    engine.dispose()


def summary(figures: list[tuple[float, float, float]]) -> str:
    wall, cpu, rss = zip(*figures)
    return (f"{statistics.median(wall):.1f} s ({min(wall):.1f}-{max(wall):.1f}) | "
            f"{statistics.median(cpu):.1f} s ({min(cpu):.1f}-{max(cpu):.1f}) | {max(rss):,.0f} MB")


def main() -> None:
    if sys.argv[1:2] == ["--explain-child"]:
        explain_child(*sys.argv[2:4])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg", help="PostgreSQL server URL without a database")
    parser.add_argument("--sqlite", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--baseline", help="git revision of the implementation to compare with")
    parser.add_argument("--baseline-size", type=int, default=200_000)
    parser.add_argument("--baseline-runs", type=int, default=1)
    parser.add_argument("--keep-pg", action="store_true", help="keep the PostgreSQL templates "
                        f"({PG_PREFIX}_<tag>_<size>) and reuse them in the next run (same schema revision only)")
    parser.add_argument("--explain", action="store_true", help="PostgreSQL: one more export per implementation, "
                        "printing each statement's server time (auto_explain; needs a superuser)")
    parser.add_argument("--tmp", type=Path, help="folder for the databases and lists (default: a new temporary "
                                                 "folder); a SQLite template already there is reused")
    args = parser.parse_args()

    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}", flush=True)
    folder = args.tmp or Path(tempfile.mkdtemp(prefix="recall-sendlist-"))
    folder.mkdir(parents=True, exist_ok=True)
    current = str(ROOT)
    old = baseline_tree(args.baseline, folder / "baseline") if args.baseline else None
    backends: list[tuple[str, SQLiteDatabases | PostgresDatabases]] = []
    if args.sqlite:
        backends.append(("sqlite", SQLiteDatabases(folder)))
    if args.pg:
        backends.append(("postgresql", PostgresDatabases(args.pg, keep=args.keep_pg)))
    rows = []
    plans: dict[str, str] = {}
    for backend, databases in backends:
        try:
            cases = [(args.size, "this tree", "current", current, args.runs)]
            if old:
                cases.append((args.baseline_size, f"{args.baseline} (before)", "baseline", old, args.baseline_runs))
            for size, label, tag, pythonpath, runs in cases:
                # Each implementation on a database built by its own code (its own schema revision).
                template = databases.template(size, tag, pythonpath)
                figures = measure(databases, template, pythonpath, runs, folder / "lists")
                listed = sum(1 for f in (folder / "lists").glob("*.csv") for _ in f.open(encoding="utf-8")) - \
                    len(list((folder / "lists").glob("*.csv")))
                rows.append((backend, label, size, listed, summary(figures), len(figures)))
                print(rows[-1], flush=True)
                if args.explain and isinstance(databases, PostgresDatabases):
                    plans[label] = explain(databases, template, pythonpath, folder / "lists")
                    print(plans[label], flush=True)
        finally:
            databases.cleanup()

    print()
    print("| backend | implementation | customers | touches listed | wall, median (range) | CPU of the command "
          "| peak RSS | runs |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for backend, label, size, listed, text, runs in rows:
        print(f"| {backend} | {label} | {size:,} | {listed:,} | {text} | {runs} |")
    print(f"(load average at the end: {os.getloadavg()[0]:.1f})")
    for label, text in plans.items():
        print(f"\nPostgreSQL, {label}:\n{text}", end="")


if __name__ == "__main__":
    main()

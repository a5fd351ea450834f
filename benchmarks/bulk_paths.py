"""Bulk paths benchmark: imports and send-list export at 200k and 1M rows, seconds and peak memory.

For each size N it writes, to a temporary folder,

- an events CSV of N rows (``customer_id, event_type, occurred_at, value``; about three events per
  customer) and
- a per-customer results CSV of N customers (ids in scrambled order, the worst case for the check
  that no customer appears twice),

then, on a fresh SQLite file and (with ``--pg``) a fresh PostgreSQL database, measures each in its own
process (wall seconds and peak RSS from ``os.wait4``, as benchmarks/warehouse.py does):

- ``recall import events FILE``,
- ``recall import results FILE …``,
- ``recall sendlist NAME --out DIR --due DAY`` for a simulated campaign of N assigned customers
  (:func:`experiments.simulate.simulate`; its simulated sends are removed first, so the export
  records every send itself), on its launch day: every contacted customer's first touch is due.

Peak memory that stays flat from 200k to 1M rows shows the paths stream. Not a test: it prints figures.
Everything else (migrations, the simulation, creating databases) also runs in child processes: a
child's peak RSS on Linux includes its parent's RSS when it was started, so the parent stays small.

    .venv/bin/python benchmarks/bulk_paths.py
    .venv/bin/python benchmarks/bulk_paths.py --sizes 200000 1000000 --pg postgresql+psycopg://postgres@127.0.0.1:5432

``--pg`` is a server URL without a database: databases ``recall_bulk_<backend step>_<N>`` are created
there and dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECALL = str(Path(sys.executable).with_name("recall"))
EVENT_TYPES = ("visit", "visit", "visit", "order", "click", "delivered", "coupon_redeemed", "unsubscribe")
ARMS = ("holdout", "sms_c5", "sms_c10")
CITIES = ("上海", "北京", "广州", "深圳", "杭州")
CAMPAIGN = "bulk-sendlist"
LAUNCH_DAY = "2026-09-01"  # experiments.simulate.LAUNCH, local (not imported: the parent process stays small)


def measured(command: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of a child process, reaped with ``os.wait4`` for its own rusage."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{err.read().decode()[-3000:]}")
        return seconds, usage.ru_maxrss / 1024, out.read().decode()


# --------------------------------------------------------------------------- input files


def write_events(path: Path, rows: int, seed: int = 1) -> None:
    """``rows`` events of ``rows // 3`` customers in December 2026, local time; orders carry a value."""
    rng = random.Random(seed)
    customers = max(rows // 3, 1)
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("customer_id,event_type,occurred_at,value\n")
        for _ in range(rows):
            kind = rng.choice(EVENT_TYPES)
            value = f"{rng.uniform(5, 300):.2f}" if kind == "order" else ""
            fh.write(f"C{rng.randrange(customers):09d},{kind},2026-12-{rng.randint(1, 28):02d} "
                     f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d},{value}\n")


def write_results(path: Path, customers: int, seed: int = 2) -> None:
    """One row per customer, ids in a scrambled (but duplicate-free) order: i ↦ i·7919 mod N."""
    rng = random.Random(seed)
    step = 7919 if customers % 7919 else 7907
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("user,arm,returned,revenue,pre_spend,city\n")
        for i in range(customers):
            returned = int(rng.random() < 0.1)
            revenue = f"{rng.uniform(10, 200):.2f}" if returned and rng.random() < 0.6 else "0"
            fh.write(f"U{(i * step) % customers:09d},{ARMS[i % 3]},{returned},{revenue},"
                     f"{rng.uniform(-50, 500):.2f},{CITIES[i % 5]}\n")


# --------------------------------------------------------------------------- databases


def sqlite_url(folder: Path, name: str) -> str:
    path = folder / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def child(*args: str) -> None:
    """Run a setup step of this script in its own process (keeps the measuring parent small)."""
    subprocess.run([sys.executable, __file__, "--child", *args], check=True, cwd=ROOT)


def pg_url(server: str, name: str) -> str:
    child("pg-create", server, name)
    return f"{server}/{name}"


def _pg_create(server: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'drop database if exists "{name}" with (force)'))
        conn.execute(text(f'create database "{name}"'))
    admin.dispose()


def _pg_drop(server: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'drop database if exists "{name}" with (force)'))
    admin.dispose()


def _migrate(url: str) -> None:
    from experiments.db import open_engine

    open_engine(url).dispose()


def _simulated_campaign(url: str, customers: int) -> str:
    """A simulated campaign of ``customers`` assigned customers, without its sends: the export records them."""
    from sqlalchemy import text

    from experiments.db import make_engine
    from experiments.simulate import simulate

    name = CAMPAIGN
    simulate(url, customers, name=name, chunk=min(customers, 1_000_000))
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("delete from sends"))
        conn.execute(text("delete from contact_holds"))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE sends")
    engine.dispose()
    return name


# --------------------------------------------------------------------------- the run


def machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, "
            f"Python {platform.python_version()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--pg", help="PostgreSQL server URL without a database, e.g. "
                                     "postgresql+psycopg://postgres@127.0.0.1:5432")
    parser.add_argument("--steps", nargs="+", default=["events", "results", "sendlist"],
                        choices=["events", "results", "sendlist"])
    parser.add_argument("--tmp", type=Path, help="folder for the files (default: a new temporary folder)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        action, *rest = args.child
        {"pg-create": _pg_create, "pg-drop": _pg_drop, "migrate": _migrate,
         "simulate": lambda url, n: _simulated_campaign(url, int(n))}[action](*rest)
        return

    print(f"machine: {machine()}", flush=True)
    folder = args.tmp or Path(tempfile.mkdtemp(prefix="recall-bulk-"))
    folder.mkdir(parents=True, exist_ok=True)
    backends = ["sqlite"] + (["postgresql"] if args.pg else [])
    rows: list[tuple[str, str, int, float, float, str]] = []

    def database(backend: str, step: str, size: int) -> str:
        name = f"recall_bulk_{step}_{size}"
        return sqlite_url(folder, name) if backend == "sqlite" else pg_url(args.pg, name)

    def cleanup(backend: str, step: str, size: int) -> None:
        if backend == "postgresql":
            child("pg-drop", args.pg, f"recall_bulk_{step}_{size}")
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{folder / f'recall_bulk_{step}_{size}.db'}{suffix}").unlink(missing_ok=True)

    for size in args.sizes:
        events, results = folder / f"events-{size}.csv", folder / f"results-{size}.csv"
        if "events" in args.steps:
            write_events(events, size)
        if "results" in args.steps:
            write_results(results, size)
        for backend in backends:
            if "events" in args.steps:
                url = database(backend, "events", size)
                child("migrate", url)
                seconds, peak, out = measured([RECALL, "import", "events", str(events), "--no-progress", "--db", url])
                rows.append((backend, "import events", size, seconds, peak, out.strip()))
                print(rows[-1], flush=True)
                cleanup(backend, "events", size)
            if "results" in args.steps:
                url = database(backend, "results", size)
                child("migrate", url)
                seconds, peak, out = measured([
                    RECALL, "import", "results", str(results), "--experiment", "bulk", "--variant-column", "arm",
                    "--control", "holdout", "--metrics", "returned,revenue", "--covariates", "pre_spend",
                    "--segments", "city", "--id-column", "user", "--no-progress", "--db", url])
                rows.append((backend, "import results", size, seconds, peak, out.strip()))
                print(rows[-1], flush=True)
                cleanup(backend, "results", size)
            if "sendlist" in args.steps:
                url = database(backend, "sendlist", size)
                t = time.perf_counter()
                child("simulate", url, str(size))
                name = CAMPAIGN
                print(f"  ({backend}: simulated {size:,} customers in {time.perf_counter() - t:.0f} s)", flush=True)
                out_dir = folder / f"lists-{backend}-{size}"
                seconds, peak, out = measured([RECALL, "sendlist", name, "--out", str(out_dir), "--due", LAUNCH_DAY,
                                               "--no-progress", "--db", url])
                listed = sum(1 for f in out_dir.glob("*.csv") for _ in f.open(encoding="utf-8")) - \
                    len(list(out_dir.glob("*.csv")))
                rows.append((backend, "sendlist", size, seconds, peak, f"{listed:,} touches listed"))
                print(rows[-1], flush=True)
                cleanup(backend, "sendlist", size)
        events.unlink(missing_ok=True)
        results.unlink(missing_ok=True)

    print()
    print("| backend | step | rows | seconds | rows/s | peak RSS |")
    print("|---|---|---:|---:|---:|---:|")
    for backend, step, size, seconds, peak, _ in rows:
        print(f"| {backend} | {step} | {size:,} | {seconds:.1f} | {size / seconds:,.0f} | {peak:,.0f} MB |")
    parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(this measuring process peaked at {parent:,.0f} MB: below every figure, so none is its own)")


if __name__ == "__main__":
    main()

"""Every fault is one line: real faults provoked on real databases, told in one line by the CLI.

Each case makes the fault happen for real (a closed port, two transactions that deadlock, a backend
terminated during a long import, a NUL byte, a number too large, a lock held by another session, a
full SQLite file) and checks what the user reads: one line on stderr that says what failed and what
to do, exit status 1, and the traceback only with ``--debug``.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, insert, text, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from cli import app
from experiments.db import run_in_transaction, session_scope
from experiments.faults import explain, is_transient, mask_passwords
from experiments.models import Customer
from tests.conftest import PROJECT_ROOT

CLOSED_PORT_URL = "postgresql+psycopg://postgres:s3cret@127.0.0.1:5433/recall"


def recall_process(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``recall ARGS`` as a user does: a process of its own (slow to start: used where it matters)."""
    return subprocess.run([sys.executable, "-c", "import cli; cli.main()", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **(env or {})}, timeout=120,
                          check=False)


def recall(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run ``recall ARGS`` in this process (the same root command, faster)."""
    return CliRunner().invoke(app, list(args), env=env)


def one_line_fault(run: subprocess.CompletedProcess | Result) -> str:
    """The single line a failed command printed (and nothing else on stderr)."""
    code = run.returncode if isinstance(run, subprocess.CompletedProcess) else run.exit_code
    assert code == 1, (code, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    assert "Traceback" not in run.stderr
    return lines[0]


@pytest.fixture
def postgres(engine: Engine) -> Engine:
    if engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL fault (RECALL_TEST_DATABASE_URL=postgresql+psycopg://...)")
    return engine


def add_customer(engine: Engine, **values: object) -> None:
    with session_scope(engine) as session:
        session.execute(insert(Customer), [{"customer_id": "C1", **values}])


def test_a_wrong_port_is_one_line_naming_the_database_without_its_password() -> None:
    line = one_line_fault(recall_process("experiment", "list", "--db", CLOSED_PORT_URL))
    assert line == ("error: cannot reach the database at postgresql+psycopg://postgres:***@127.0.0.1:5433/recall "
                    "(connection refused): is it running? check --db / RECALL_DATABASE_URL")
    assert "s3cret" not in line


def test_debug_shows_the_traceback_and_then_the_line() -> None:
    run = recall_process("--debug", "experiment", "list", "--db", CLOSED_PORT_URL)
    assert run.returncode == 1
    assert "Traceback (most recent call last)" in run.stderr and "OperationalError" in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("error: cannot reach the database at")
    same = recall("experiment", "list", "--db", CLOSED_PORT_URL, env={"RECALL_DEBUG": "1"})
    assert "Traceback (most recent call last)" in same.stderr and same.exit_code == 1


def test_usage_errors_keep_exit_status_2() -> None:
    assert recall("experiment", "show").exit_code == 2


def test_an_unknown_database_or_user_is_named(postgres: Engine) -> None:
    url = postgres.url.set(database="recall_h3_no_such_database").render_as_string(hide_password=False)
    assert "the database does not exist" in one_line_fault(recall("experiment", "list", "--db", url))
    url = postgres.url.set(username="recall_no_such_role").render_as_string(hide_password=False)
    line = one_line_fault(recall("experiment", "list", "--db", url))
    assert 'refused the sign-in' in line and 'role "recall_no_such_role" does not exist' in line


def test_passwords_are_masked_in_any_url_of_a_message() -> None:
    assert mask_passwords("at postgresql+psycopg://ana:p@ss@db:5432/x and sqlite:///a.db") == \
        "at postgresql+psycopg://ana:***@db:5432/x and sqlite:///a.db"


# --- PostgreSQL: transactions that meet each other --------------------------------------------------


def _deadlock(engine: Engine, retries: int) -> tuple[int, threading.Thread]:
    """Our transaction updates C2 then C1 while another updates C1 then C2: a real deadlock.

    Ours detects it first (deadlock_timeout 100 ms against the other's 10 s), so ours is the one
    PostgreSQL rolls back; the other then finishes. Returns how many times the work ran.
    """
    with session_scope(engine) as session:
        session.execute(insert(Customer), [{"customer_id": "C1"}, {"customer_id": "C2"}])
    holding_c1, holding_c2 = threading.Event(), threading.Event()

    def other() -> None:
        with engine.begin() as connection:
            connection.execute(text("SET LOCAL deadlock_timeout = '10s'"))
            connection.execute(update(Customer).where(Customer.customer_id == "C1").values(city="other"))
            holding_c1.set()
            holding_c2.wait(10)
            connection.execute(update(Customer).where(Customer.customer_id == "C2").values(city="other"))

    thread = threading.Thread(target=other)
    thread.start()
    holding_c1.wait(10)
    runs = 0

    def work(session: Session) -> None:
        nonlocal runs
        runs += 1
        session.execute(text("SET LOCAL deadlock_timeout = '100ms'"))
        session.execute(update(Customer).where(Customer.customer_id == "C2").values(city="ours"))
        if not holding_c2.is_set():
            holding_c2.set()
            time.sleep(0.3)  # the other transaction now waits for C2
        session.execute(update(Customer).where(Customer.customer_id == "C1").values(city="ours"))

    try:
        run_in_transaction(engine, work, retries=retries)
    finally:
        thread.join(20)
    return runs, thread


def test_a_deadlock_is_retried_once_and_then_succeeds(postgres: Engine) -> None:
    runs, _ = _deadlock(postgres, retries=1)
    assert runs == 2
    with postgres.connect() as connection:
        assert set(connection.scalars(text("SELECT city FROM customers"))) == {"ours"}


def test_a_deadlock_that_persists_is_one_clear_line(postgres: Engine) -> None:
    with pytest.raises(Exception) as caught:
        _deadlock(postgres, retries=0)
    assert is_transient(caught.value)
    message = explain(caught.value)
    assert message.startswith("deadlock with another command writing the same rows (retried once) (deadlock "
                              "detected): run the command again when the other one has finished")


def test_waiting_too_long_for_a_lock_is_one_line(postgres: Engine) -> None:
    url = postgres.url.render_as_string(hide_password=False)
    with postgres.begin() as holder:
        holder.execute(text("LOCK TABLE experiments IN ACCESS EXCLUSIVE MODE"))
        run = recall("experiment", "list", "--db", url, env={"PGOPTIONS": "-c lock_timeout=300ms"})
    assert "timed out waiting for a lock held by another command or user" in one_line_fault(run)


def test_a_connection_terminated_during_an_import_is_one_line(postgres: Engine, hillstrom_path: Path) -> None:
    url = postgres.url.render_as_string(hide_password=False)
    name = f"recall-fault-{os.getpid()}"
    # Stored as a few Parquet blocks, the file's rows are written in milliseconds: a lock held on their
    # table keeps the import's first block waiting (an active INSERT) until it is terminated.
    holder = postgres.connect()
    holder.execute(text("LOCK TABLE result_blocks IN SHARE MODE"))
    command = subprocess.Popen(
        [sys.executable, "-c", "import cli; cli.main()", "import", "results", str(hillstrom_path), "--db", url,
         "--experiment", "killed", "--variant-column", "segment", "--control", "No E-Mail",
         "--metrics", "visit,conversion,spend", "--no-progress"],
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "PGAPPNAME": name},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = False
    with postgres.connect() as watcher:
        while command.poll() is None and not killed:  # terminate it mid-write, the moment it writes
            killed = bool(watcher.scalar(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = :name "
                "AND state = 'active' AND (query ILIKE 'COPY%' OR query ILIKE 'INSERT%')"), {"name": name}))
            watcher.commit()
            time.sleep(0.01)
    holder.close()
    stdout, stderr = command.communicate(timeout=120)
    assert killed, "the import ended before it could be interrupted"
    line = one_line_fault(subprocess.CompletedProcess(command.args, command.returncode, stdout, stderr))
    assert "connection" in line and "run the command again" in line
    with postgres.connect() as connection:  # the import was atomic: nothing of it stayed
        assert connection.scalar(text("SELECT count(*) FROM experiments WHERE name = 'killed'")) == 0


def test_a_nul_byte_is_one_line(postgres: Engine, tmp_path: Path) -> None:
    with pytest.raises(Exception) as caught:
        add_customer(postgres, city="上\x00海")
    assert explain(caught.value).startswith("text contains a NUL (0x00) byte, which PostgreSQL cannot store")
    events = tmp_path / "events.csv"
    events.write_text("customer_id,event_type,occurred_at,value\nD\x00001,order,2026-11-01 12:00,10\n",
                      encoding="utf-8")
    line = one_line_fault(recall("import", "events", str(events), "--no-progress"))
    assert "NUL" in line or "0x00" in line or "control character" in line


def test_a_number_out_of_range_for_its_column_is_one_line(postgres: Engine) -> None:
    with pytest.raises(Exception) as caught:
        add_customer(postgres, orders_before=2**40)
    assert explain(caught.value).startswith("a number is out of range for its column")
    with pytest.raises(Exception) as caught:
        add_customer(postgres, spend_before=Decimal("1e20"))
    assert explain(caught.value).startswith("a number is out of range for its column (numeric field overflow)")


def test_a_read_only_database_and_a_denied_table_are_one_line(postgres: Engine) -> None:
    url = postgres.url.render_as_string(hide_password=False)
    spec = str(PROJECT_ROOT / "examples" / "winback-coupon.toml")
    run = recall("experiment", "create", spec, "--db", url, env={"PGOPTIONS": "-c default_transaction_read_only=on"})
    assert "the database is read-only for this connection" in one_line_fault(run)

    with postgres.begin() as connection:
        connection.execute(text("DROP ROLE IF EXISTS recall_fault_outsider"))
        connection.execute(text("CREATE ROLE recall_fault_outsider LOGIN"))
    try:
        outsider = postgres.url.set(username="recall_fault_outsider").render_as_string(hide_password=False)
        line = one_line_fault(recall("experiment", "list", "--db", outsider))
        assert line.startswith("error: the database user may not use the schema") and "grant it USAGE" in line
        with postgres.begin() as connection:
            connection.execute(text("GRANT USAGE ON SCHEMA public TO recall_fault_outsider"))
        line = one_line_fault(recall("experiment", "list", "--db", outsider))
        assert line.startswith("error: permission denied at") and "grant the database user access" in line
    finally:
        with postgres.begin() as connection:
            connection.execute(text("DROP OWNED BY recall_fault_outsider"))
            connection.execute(text("DROP ROLE recall_fault_outsider"))


# --- SQLite and the operating system ----------------------------------------------------------------


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "faults.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (x BLOB)")
    yield path


def test_a_full_sqlite_database_is_one_line(sqlite_file: Path) -> None:
    engine = create_engine(f"sqlite:///{sqlite_file}")
    with pytest.raises(Exception) as caught, engine.begin() as connection:
        connection.execute(text("PRAGMA max_page_count = 3"))  # a disk that holds three pages
        connection.execute(text("INSERT INTO t VALUES (zeroblob(100000))"))
    assert explain(caught.value).startswith("the disk holding the SQLite database is full")
    engine.dispose()


def test_a_locked_sqlite_database_is_one_line(sqlite_file: Path) -> None:
    holder = sqlite3.connect(sqlite_file)
    holder.execute("BEGIN EXCLUSIVE")
    engine = create_engine(f"sqlite:///{sqlite_file}", connect_args={"timeout": 0})
    try:
        with pytest.raises(Exception) as caught, engine.begin() as connection:
            connection.execute(text("INSERT INTO t VALUES (1)"))
        assert explain(caught.value).startswith("timed out waiting for another command that is writing")
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()


def test_a_read_only_sqlite_database_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    recall("db", "upgrade", "--db", f"sqlite:///{path}")
    spec = str(PROJECT_ROOT / "examples" / "winback-coupon.toml")
    run = recall("experiment", "create", spec, "--db", f"sqlite:///file:{path}?mode=ro&uri=true")
    assert "the SQLite database is read-only" in one_line_fault(run)


def test_an_integer_too_large_for_sqlite_is_one_line(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'big.db'}")
    with pytest.raises(OverflowError) as caught, engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
        connection.execute(text("INSERT INTO t VALUES (:x)"), {"x": 2**70})
    assert explain(caught.value).startswith("a number is too large (")
    engine.dispose()


def test_a_full_disk_is_one_line() -> None:
    with pytest.raises(OSError) as caught, open("/dev/full", "w") as full:  # noqa: PTH123
        full.write("x")
        full.flush()
    assert explain(caught.value) == "the disk is full: free space, then run the command again"


def test_an_unexpected_error_says_how_to_report_it() -> None:
    assert explain(KeyError("x")) == ("unexpected error (KeyError: 'x'): run the command again with --debug and "
                                      "report the traceback")

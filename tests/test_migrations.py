"""Alembic is the only way the schema is made: up, down and up again, and in step with the models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from experiments.db import (
    SCHEMA_REVISION,
    current_revision,
    downgrade,
    ensure_schema,
    head_revision,
    make_engine,
    table_names,
    upgrade,
)
from experiments.models import Base
from tests.conftest import PROJECT_ROOT

TABLES = {"customers", "experiments", "variants", "metrics", "assignments", "sends", "events", "result_tables",
          "result_blocks", "result_sums",
          "contact_holds", "analysis_runs", "users", "audit_log", "imports", "launch_requests", "experiment_notes",
          "targeting_models", "target_scores"}


def test_up_down_up(engine) -> None:  # noqa: ANN001
    assert TABLES <= table_names(engine)
    assert current_revision(engine) == head_revision()
    downgrade(engine, "base")
    assert not TABLES & table_names(engine)
    upgrade(engine)
    assert TABLES <= table_names(engine)
    downgrade(engine, "base")
    ensure_schema(engine)  # first use migrates by itself
    assert current_revision(engine) == head_revision()


def test_models_match_migrations(engine) -> None:  # noqa: ANN001
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_the_schema_revision_is_the_newest_migration() -> None:
    # ensure_schema compares databases with SCHEMA_REVISION: a new migration must move it.
    assert SCHEMA_REVISION == head_revision()


def test_three_first_runs_at_once_migrate_once(tmp_path: Path) -> None:
    # An empty database (PostgreSQL: the schema dropped) and three commands started together.
    url = os.environ.get("RECALL_TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'first-run.db'}"
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    env = {**os.environ, "RECALL_DATABASE_URL": url, "PYTHONPATH": str(PROJECT_ROOT)}
    runs = [subprocess.Popen([sys.executable, "-c", "import cli; cli.main()", "experiment", "list"], env=env, cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(run.wait(timeout=120), run.stderr.read()) for run in runs]
    for run in runs:
        run.stdout.close()
        run.stderr.close()
    assert [code for code, _ in results] == [0, 0, 0], results
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    engine.dispose()


def test_0012_reorders_the_events_key_of_a_database_holding_events(engine) -> None:  # noqa: ANN001
    from sqlalchemy import exc, inspect

    downgrade(engine, "0011")
    insert = text("INSERT INTO events (customer_id, event_type, occurred_at, value) VALUES (:c, :t, :at, :v)")
    rows = [{"c": f"C{i % 3}", "t": ("visit", "order")[i % 2], "at": f"2026-12-0{1 + i % 4} 10:00:00", "v": i % 2 * 5}
            for i in range(12)]
    with engine.begin() as connection:
        connection.execute(insert, rows)
    upgrade(engine)
    names = inspect(engine)
    assert [u["column_names"] for u in names.get_unique_constraints("events")] == \
        [["customer_id", "occurred_at", "event_type", "value"]]
    assert "ix_events_customer_time" not in {i["name"] for i in names.get_indexes("events")}
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM events")) == 12
        with pytest.raises(exc.IntegrityError):
            connection.execute(insert, rows[5])
    downgrade(engine, "0011")
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM events")) == 12
    upgrade(engine)

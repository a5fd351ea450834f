"""Alembic is the only way the schema is made: up, down and up again, and in step with the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from experiments.db import (
    SCHEMA_REVISION,
    current_revision,
    downgrade,
    ensure_schema,
    head_revision,
    table_names,
    upgrade,
)
from experiments.models import Base

TABLES = {"customers", "experiments", "variants", "metrics", "assignments", "sends", "events", "metric_values",
          "contact_holds", "analysis_runs", "users", "audit_log",
          "segment_values", "imports", "launch_requests"}


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

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
from experiments.result_tables import NAME as RESULTS_TABLE

TABLES = {"customers", "experiments", "variants", "metrics", "assignments", "sends", "events", "result_tables",
          "contact_holds", "analysis_runs", "users", "audit_log", "imports"}


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


def _not_results(name: str | None, kind: str, _parents: dict) -> bool:
    return not (kind == "table" and name is not None and RESULTS_TABLE.match(name))


def test_models_match_migrations(engine) -> None:  # noqa: ANN001
    with engine.connect() as connection:
        # Imports create one results_<id> table per imported experiment (experiments/result_tables.py):
        # made by the import, not by a migration, so they are not the models' to match.
        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": _not_results})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_the_schema_revision_is_the_newest_migration() -> None:
    # ensure_schema compares databases with SCHEMA_REVISION: a new migration must move it.
    assert SCHEMA_REVISION == head_revision()

"""Engine and schema: one URL selects SQLite (default) or PostgreSQL; Alembic makes the schema."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, insert, inspect
from sqlalchemy.orm import Session, sessionmaker

from experiments.config import PROJECT_ROOT, database_url

ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API objects
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def make_engine(url: str | None = None) -> Engine:
    engine = create_engine(database_url(url))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def alembic_config() -> Config:
    cfg = Config(str(ALEMBIC_INI))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (what ``recall db upgrade`` and first use do)."""
    cfg = alembic_config()
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    cfg = alembic_config()
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def ensure_schema(engine: Engine) -> None:
    """Migrate on first use, so a newcomer never runs a setup step by hand."""
    if current_revision(engine) != head_revision():
        upgrade(engine)


def open_engine(url: str | None = None) -> Engine:
    engine = make_engine(url)
    ensure_schema(engine)
    return engine


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on any error."""
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session, session.begin():
        yield session


def bulk_insert(session: Session, model: type, rows: list[dict[str, Any]], chunk: int = 20_000) -> None:
    """Insert many rows in the session's transaction: COPY on PostgreSQL, chunked executemany elsewhere.

    The one dialect-specific write path, kept here so bulk loads (imports, demo, simulation) share it.
    """
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg":
        columns = list(rows[0])
        table = model.__table__.name
        with connection.connection.driver_connection.cursor() as cursor:
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([_plain(row[c]) for c in columns])
        return
    for start in range(0, len(rows), chunk):
        session.execute(insert(model), rows[start:start + chunk])


def _plain(value: Any) -> Any:
    # psycopg would write an Enum member's name; the schema stores its value.
    return value.value if isinstance(value, enum.Enum) else value


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())

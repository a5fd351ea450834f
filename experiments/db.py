"""Engine and schema: one URL selects SQLite (default) or PostgreSQL; Alembic makes the schema.

Transactions: :func:`session_scope`, and :func:`run_in_transaction`, which runs one again after a
deadlock. Also the bulk-load write paths, the only dialect-specific writes: COPY (:func:`bulk_insert`,
and of Arrow batches, :func:`bulk_loader`, in :mod:`experiments.bulk_load`) and foreign keys checked once per load
(:func:`foreign_keys_checked_once`) on PostgreSQL.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, DateTime, Engine, Table, create_engine, event, insert, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from experiments.config import PROJECT_ROOT, database_url
from experiments.bulk_load import bulk_loader  # noqa: F401 - imported from here by the importer
from experiments.dialects import register_sqlite_functions
from experiments.faults import is_transient

if TYPE_CHECKING:
    from alembic.config import Config

ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"
T = TypeVar("T")


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API objects
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()
    register_sqlite_functions(dbapi_connection)


# How long a SQLite connection waits for another's write to finish before "database is locked": the app
# and the demo builder, an import or a send list write the same file, and a campaign's transaction can
# take several seconds on a loaded machine (sqlite3's default is 5 s).
SQLITE_BUSY_SECONDS = 60


def make_engine(url: str | None = None) -> Engine:
    url = database_url(url)
    sqlite = url.startswith("sqlite")
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS} if sqlite and "timeout=" not in url else {})
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def alembic_config() -> Config:
    from alembic.config import Config  # Alembic (and its templates) only when a schema is checked or migrated

    cfg = Config(str(ALEMBIC_INI))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    return cfg


# The key of the PostgreSQL advisory lock every migration holds (any constant the project owns).
SCHEMA_LOCK_KEY = 0x5245_4341_4C4C  # "RECALL"


@contextmanager
def migrating(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the database's migration lock until it has committed.

    Three ``recall`` commands started at once on an empty database would otherwise all create the
    tables and all insert into ``alembic_version`` (UniqueViolation). Under the lock the second one
    finds the schema made, because Alembic reads the revision again once the lock is granted.
    PostgreSQL: a transaction-level advisory lock, released at commit or rollback. SQLite: an
    exclusive lock on a file beside the database, released after the commit.
    """
    with _sqlite_file_lock(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
        yield connection


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        yield  # nothing to lock beside: not SQLite, in memory, or a file: URI (its path is not a plain file name)
        return
    import fcntl

    with open(f"{database}-migrate.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (what ``recall db upgrade`` and first use do), under the lock."""
    from alembic import command

    cfg = alembic_config()
    with migrating(engine) as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    from alembic import command

    cfg = alembic_config()
    with migrating(engine) as connection:
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


# The newest migration (tests/test_migrations.py checks it): knowing it here recognises an up-to-date
# database with one query, without loading Alembic, a tenth of a second of every command's start.
SCHEMA_REVISION = "0013"


def ensure_schema(engine: Engine) -> None:
    """Migrate on first use, so a newcomer never runs a setup step by hand.

    The quick check runs without a lock; :func:`upgrade` takes the lock and checks again.
    """
    with engine.connect() as connection:
        try:  # one query: asking the inspector first whether the table exists took 15 ms on PostgreSQL
            stored = connection.scalar(text("SELECT version_num FROM alembic_version"))
        except DBAPIError:  # no alembic_version yet: a new database (the failed transaction is rolled back)
            stored = None
    if stored != SCHEMA_REVISION:
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


def run_in_transaction(engine: Engine, work: Callable[[Session], T], *, retries: int = 1,
                       pause: float = 0.2) -> T:
    """``work(session)`` in one transaction (:func:`session_scope`), run again after a deadlock or a
    serialization failure, at most ``retries`` times.

    PostgreSQL rolls the losing transaction of a deadlock back whole, so running ``work`` again is
    safe when ``work`` only writes through ``session`` (no files, no other connections). A fault that
    persists is raised; the CLI turns it into one line (experiments.faults).
    """
    for attempt in range(retries + 1):
        try:
            with session_scope(engine) as session:
                return work(session)
        except Exception as exc:  # wrapped by SQLAlchemy or raw from the driver (COPY)
            if attempt == retries or not is_transient(exc):
                raise
            time.sleep(pause * (attempt + 1))
    raise AssertionError("unreachable")


def _copies(session: Session) -> bool:
    connection = session.connection()
    return connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg"


def _copy(session: Session, model: type, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """PostgreSQL's COPY FROM STDIN of plain value rows in ``columns`` order."""
    cursor_of = session.connection().connection.driver_connection.cursor
    with cursor_of() as cursor, cursor.copy(f"COPY {model.__table__.name} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def bulk_insert(session: Session, model: type, rows: list[dict[str, Any]], chunk: int = 20_000) -> None:
    """Insert many rows in the session's transaction: COPY on PostgreSQL, chunked executemany elsewhere.

    Rows as dicts (the demo, the simulation, events checked row by row) share it; imports that read
    Arrow blocks write through :func:`experiments.bulk_load.bulk_loader` instead.
    """
    if not rows:
        return
    if _copies(session):
        columns = list(rows[0])
        _copy(session, model, columns, ([_plain(row[c]) for c in columns] for row in rows))
        return
    keys = rows[0].keys()
    uniform = all(row.keys() == keys for row in rows)
    if uniform and session.connection().dialect.name == "sqlite":
        _sqlite_executemany(session, model.__table__, list(keys), rows, chunk)
        return
    # Rows of one shape go through Core's executemany: the ORM's bulk path splits a batch wherever the
    # pattern of None values changes (one statement per run of rows), many times slower on SQLite.
    statement = model.__table__.insert() if uniform else insert(model)
    for start in range(0, len(rows), chunk):
        session.execute(statement, rows[start:start + chunk])


def _sqlite_executemany(session: Session, table: Table, keys: list[str], rows: list[dict[str, Any]],
                        chunk: int) -> None:
    """Rows of one shape straight to the driver's executemany, each column converted by its type's own
    bind processor (the values SQLAlchemy itself would bind, scalar column defaults included), one
    column at a time: Core's
    per-row parameter handling costs more than SQLite's insert (half of the demo's build)."""
    connection = session.connection()
    missing = [c for c in table.columns if c.name not in keys and c.default is not None]
    defaults = {c.name: c.default.arg for c in missing}
    if not all(c.default.is_scalar for c in missing):  # computed defaults: Core computes them per row
        for start in range(0, len(rows), chunk):
            session.execute(table.insert(), rows[start:start + chunk])
        return
    keys = keys + list(defaults)
    processors = [_fast_datetime(p) if isinstance(table.c[k].type, DateTime) else p
                  for k in keys for p in [table.c[k].type._cached_bind_processor(connection.dialect)]]
    sql = (f"INSERT INTO {table.name} ({', '.join(keys)}) "  # noqa: S608 - names from the mapped table
           f"VALUES ({', '.join('?' for _ in keys)})")
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        columns = [[row[k] for row in part] if k not in defaults else [defaults[k]] * len(part) for k in keys]
        columns = [list(map(p, c)) if p else c for p, c in zip(processors, columns, strict=True)]
        connection.exec_driver_sql(sql, list(zip(*columns, strict=True)))


def _fast_datetime(process: Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
    """SQLite's DateTime text (2026-11-23 04:00:00.000000, the default storage format) written by
    ``isoformat`` for plain datetimes, a few times faster than the general processor."""
    if process is None:
        return None

    def fast(value: Any) -> Any:
        if type(value) is datetime and value.tzinfo is None:
            return value.isoformat(" ", "microseconds")
        return process(value)

    return fast


def _plain(value: Any) -> Any:
    # psycopg would write an Enum member's name; the schema stores its value.
    return value.value if isinstance(value, enum.Enum) else value


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


# Above this many new rows, PostgreSQL bulk loads skip the per-row foreign-key checks; they wait at
# most LOCK_TIMEOUT for the table's lock.
BULK_LOAD_ROWS = 200_000
LOCK_TIMEOUT = "5s"


@contextmanager
def foreign_keys_checked_once(session: Session, model: type, rows: int) -> Iterator[None]:
    """On PostgreSQL, for a load of many ``rows`` into ``model``'s table: drop the table's foreign keys
    for the load and add them back after it, validated in one pass over the table.

    This is the bulk-load recipe of the PostgreSQL manual ("Populating a Database"): each row's two
    key-check triggers cost more than the COPY itself (about 9 of 12 s per million rows measured).
    The constraints are re-created from their own catalog definitions, and DDL is transactional: an
    error anywhere leaves the schema as it was. The table is locked for the load; when the lock or
    the right to alter the table cannot be had, rows are checked one by one as usual.
    """
    connection = session.connection()
    if connection.dialect.name != "postgresql" or rows < BULK_LOAD_ROWS:
        yield
        return
    table = model.__table__.name
    quote = connection.dialect.identifier_preparer.quote
    constraints = connection.execute(text(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = CAST(:table AS regclass) AND contype = 'f' ORDER BY conname"), {"table": table}).all()
    lock_timeout = connection.scalar(text("SELECT current_setting('lock_timeout')"))
    savepoint = connection.begin_nested()
    try:
        connection.execute(text("SELECT set_config('lock_timeout', :value, true)"), {"value": LOCK_TIMEOUT})
        for name, _ in constraints:
            connection.execute(text(f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}"))
        connection.execute(text("SELECT set_config('lock_timeout', :value, true)"), {"value": lock_timeout})
    except DBAPIError:
        savepoint.rollback()
        yield
        return
    savepoint.commit()
    yield
    for name, definition in constraints:
        connection.execute(text(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}"))



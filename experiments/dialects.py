"""The one place with dialect-specific SQL: date arithmetic, which SQL has no portable spelling for,
the numeric type sums are taken in (DuckDB's DECIMAL overflows where PostgreSQL's NUMERIC does not),
and the assignment hash (sha256 has a different name and return type in every database).
A warehouse dialect (BigQuery, Snowflake, Trino) would add its spelling of these here.

Two warehouses are spelled here. ClickHouse (dialect name ``clickhousedb``) compiles with
clickhouse-connect's maintained dialect. Spark SQL compiles with :class:`SparkDialect`, a small
dialect of SQLAlchemy's default compiler: the Databricks dialect also speaks Spark SQL, but it is
tied to the Databricks SQL connector (a Databricks warehouse over HTTP) and cannot run on a local
session or on Spark Connect; :mod:`experiments.engines` is the DB-API both run through.

What differs, and where it is handled:

- dates: ``timestamp + n days`` (:class:`add_days`): an INTERVAL literal; ClickHouse's addDays;
- integer division: Spark and ClickHouse divide integers exactly (7 / 2 = 3.5), so their dialects
  do not cast the divisor (``div_is_floordiv = False``) and ``//`` compiles to FLOOR(a / b);
- float sums (:class:`as_number`): DOUBLE on DuckDB and Spark, Float64 on ClickHouse;
- range splitting (:data:`CUSTOMERS_PER_STATEMENT`): NTILE over the customer ids, which every
  engine here has;
- the sha256 assignment hash (:class:`hash_bucket`);
- NULL: ClickHouse fills a LEFT JOIN's missing side with 0 and '' instead of NULL unless
  ``join_use_nulls = 1``, which :data:`CLICKHOUSE_SETTINGS` sets on every connection.

Everything else in the analysis queries is plain SQLAlchemy Core that any dialect compiles.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy import DateTime, Integer, Numeric, String, Table, exists, insert, literal, select, true, type_coerce
from sqlalchemy.dialects import registry
from sqlalchemy.engine import default
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import compiler as sql_compiler
from sqlalchemy.sql.functions import FunctionElement


# Customers per aggregate statement. The sums add up, so a report can run one statement per range of
# customer ids. DuckDB runs inside the report's process: a million customers at a time keeps its
# memory flat whatever the total (and is faster: 10M customers in 5.7 s instead of 5.9 s). A server
# (PostgreSQL) plans one statement better: 10 ranges took 52 s at 10M instead of about 30 s.
# Spark and ClickHouse plan one statement across their cores and spill their joins to disk.
CUSTOMERS_PER_STATEMENT: dict[str, int] = {"duckdb": 1_000_000}

# Session settings of every ClickHouse connection a source opens: NULLs as in SQL (see the module
# docstring), and joins that merge both sides in customer order instead of building a hash table of
# the events: at 10M customers in chDB the report took 29 s and 0.9 GB instead of 89 s and 4.5 GB.
CLICKHOUSE_SETTINGS = {"join_use_nulls": 1, "join_algorithm": "full_sorting_merge,hash"}


class SparkIdentifierPreparer(sql_compiler.IdentifierPreparer):
    """Spark quotes identifiers with backticks."""

    def __init__(self, dialect: default.DefaultDialect) -> None:
        super().__init__(dialect, initial_quote="`", escape_quote="`")


class SparkDialect(default.DefaultDialect):
    """Spark SQL for SQLAlchemy Core's SELECTs (``spark+local:///PATH``, ``sc://host:15002``)."""

    name = "spark"
    driver = "local"
    paramstyle = "pyformat"
    preparer = SparkIdentifierPreparer
    div_is_floordiv = False
    supports_statement_cache = True
    supports_native_boolean = True
    supports_native_decimal = True
    supports_sane_rowcount = False
    default_paramstyle = "pyformat"

    @classmethod
    def import_dbapi(cls):  # noqa: ANN206 - a DB-API module
        from experiments import engines

        return engines

    def create_connect_args(self, url):  # noqa: ANN001, ANN201 - a SQLAlchemy URL
        return [], {"warehouse": url.database}

    def _get_server_version_info(self, connection):  # noqa: ANN001, ANN202
        return None

    def _get_default_schema_name(self, connection):  # noqa: ANN001, ANN202
        return "default"

    def do_ping(self, dbapi_connection) -> bool:  # noqa: ANN001
        return True

    def has_table(self, connection, table_name, schema=None, **kw) -> bool:  # noqa: ANN001
        raise NotImplementedError("a Spark source is only read through the analysis' SELECTs")


class SparkConnectDialect(SparkDialect):
    """A Spark cluster through Spark Connect: ``sc://host:15002/;token=…`` as Spark spells it, or
    ``spark+connect://host:15002`` (its query string becomes Spark Connect's ``;key=value`` part)."""

    driver = "connect"

    def create_connect_args(self, url):  # noqa: ANN001, ANN201
        params = url.database or "" if url.get_backend_name() == "sc" else "".join(
            f";{k}={v}" for k, v in url.query.items())
        return [], {"remote": f"sc://{url.host}:{url.port or 15002}/{params}"}


registry.register("spark", "experiments.dialects", "SparkDialect")
registry.register("spark.local", "experiments.dialects", "SparkDialect")
registry.register("spark.connect", "experiments.dialects", "SparkConnectDialect")
registry.register("sc", "experiments.dialects", "SparkConnectDialect")
registry.register("clickhousedb", "experiments.engines", "ClickHouseSourceDialect")
registry.register("clickhousedb.connect", "experiments.engines", "ClickHouseSourceDialect")
registry.register("clickhousedb.chdb", "experiments.engines", "ChdbDialect")


class add_days(FunctionElement):  # noqa: N801 - reads as a SQL function
    """``timestamp + n days`` for a literal integer ``n`` (negative goes back)."""

    type = DateTime()
    inherit_cache = True

    def __init__(self, timestamp, days: int):  # noqa: ANN001 - a column expression
        self.days = int(days)
        super().__init__(timestamp)


@compiles(add_days)
def _add_days_default(element: add_days, compiler, **kw) -> str:  # noqa: ANN001
    (timestamp,) = element.clauses
    return f"({compiler.process(timestamp, **kw)} + INTERVAL '{element.days} days')"


@compiles(add_days, "clickhousedb")
def _add_days_clickhouse(element: add_days, compiler, **kw) -> str:  # noqa: ANN001
    (timestamp,) = element.clauses
    return f"addDays({compiler.process(timestamp, **kw)}, {element.days})"


@compiles(add_days, "sqlite")
def _add_days_sqlite(element: add_days, compiler, **kw) -> str:  # noqa: ANN001
    # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff'; keep that format so
    # the comparison with stored values stays a correct string comparison.
    (timestamp,) = element.clauses
    return f"strftime('%Y-%m-%d %H:%M:%f000', {compiler.process(timestamp, **kw)}, '{element.days:+d} days')"


class as_number(FunctionElement):  # noqa: N801 - reads as a SQL function
    """A value to sum, square and cube, as a double on every dialect (DOUBLE PRECISION; DOUBLE on
    DuckDB): DuckDB's DECIMAL overflows past 38 digits when a cube of NUMERIC(18, 4) is taken."""

    type = Numeric(18, 4)
    inherit_cache = True


@compiles(as_number)
def _as_number_default(element: as_number, compiler, **kw) -> str:  # noqa: ANN001
    (value,) = element.clauses
    return f"CAST({compiler.process(value, **kw)} AS DOUBLE PRECISION)"


@compiles(as_number, "clickhousedb")
def _as_number_clickhouse(element: as_number, compiler, **kw) -> str:  # noqa: ANN001
    (value,) = element.clauses
    return f"toFloat64({compiler.process(value, **kw)})"


@compiles(as_number, "duckdb")
@compiles(as_number, "spark")
def _as_number_duckdb(element: as_number, compiler, **kw) -> str:  # noqa: ANN001
    (value,) = element.clauses
    return f"CAST({compiler.process(value, **kw)} AS DOUBLE)"


class hash_bucket(FunctionElement):  # noqa: N801 - reads as a SQL function
    """``experiments.assignment.bucket(salt, customer_id)`` computed by the database: the first 8 bytes
    of sha256("salt:customer_id") as an unsigned big-endian integer, modulo ``buckets``.

    Hashing where the customers are saves sending every customer id to Python and back: assigning
    10M customers becomes INSERT … SELECT. Each dialect must give exactly :func:`buckets`' numbers
    (``tests/test_assignment.py`` checks it on every database the suite runs on).
    """

    type = Integer()
    inherit_cache = True

    def __init__(self, salt: str, customer_id, buckets: int):  # noqa: ANN001 - a column expression
        self.salt, self.buckets = salt, int(buckets)
        super().__init__(customer_id)


def _salted(element: hash_bucket, compiler, **kw) -> tuple[str, str]:  # noqa: ANN001
    (customer_id,) = element.clauses
    return compiler.process(literal(f"{element.salt}:"), **kw), compiler.process(customer_id, **kw)


@compiles(hash_bucket, "postgresql")
def _hash_bucket_postgresql(element: hash_bucket, compiler, **kw) -> str:  # noqa: ANN001
    salt, customer_id = _salted(element, compiler, **kw)
    # The 8 bytes as two unsigned 32-bit halves (bigint has no unsigned 64-bit type):
    # (hi·2³² + lo) mod m = ((hi mod m)·(2³² mod m) + lo) mod m. The digest is computed once, in a
    # scalar subquery (OFFSET 0 keeps PostgreSQL from inlining it into every get_byte).
    hi, lo = ("|".join(f"(get_byte(h, {k}) :: BIGINT << {24 - 8 * (k - first)})" for k in range(first, first + 4))
              for first in (0, 4))
    m = element.buckets
    return (f"(SELECT CAST(mod(mod({hi}, {m}) * {2 ** 32 % m} + ({lo}), {m}) AS INTEGER) "
            f"FROM (SELECT sha256(convert_to({salt} || {customer_id}, 'UTF8')) AS h OFFSET 0) AS digest)")


@compiles(hash_bucket, "duckdb")
def _hash_bucket_duckdb(element: hash_bucket, compiler, **kw) -> str:  # noqa: ANN001
    salt, customer_id = _salted(element, compiler, **kw)
    return (f"CAST(CAST(('0x' || substr(sha256({salt} || {customer_id}), 1, 16)) AS UBIGINT) "
            f"% {element.buckets} AS INTEGER)")


@compiles(hash_bucket, "spark")
def _hash_bucket_spark(element: hash_bucket, compiler, **kw) -> str:  # noqa: ANN001
    salt, customer_id = _salted(element, compiler, **kw)
    # conv() reads the 16 hex digits as an unsigned 64-bit number (as a decimal string).
    return (f"CAST(pmod(CAST(conv(substr(sha2(concat({salt}, {customer_id}), 256), 1, 16), 16, 10) "
            f"AS DECIMAL(20, 0)), {element.buckets}) AS INT)")


@compiles(hash_bucket, "clickhousedb")
def _hash_bucket_clickhouse(element: hash_bucket, compiler, **kw) -> str:  # noqa: ANN001
    salt, customer_id = _salted(element, compiler, **kw)
    # SHA256 returns the 32 raw bytes; reinterpretAsUInt64 reads little-endian, hence reverse().
    return (f"toInt32(modulo(reinterpretAsUInt64(reverse(substring(SHA256(concat({salt}, {customer_id})), 1, 8))), "
            f"{element.buckets}))")


@compiles(hash_bucket, "sqlite")
def _hash_bucket_sqlite(element: hash_bucket, compiler, **kw) -> str:  # noqa: ANN001
    salt, customer_id = _salted(element, compiler, **kw)
    return f"recall_hash_bucket({salt}, {customer_id}, {element.buckets})"


def register_sqlite_functions(dbapi_connection) -> None:  # noqa: ANN001 - a sqlite3 connection
    """SQLite has no sha256: give each connection :class:`hash_bucket` as a Python function."""

    def recall_hash_bucket(salted: str, customer_id: str, buckets: int) -> int:
        digest = hashlib.sha256(f"{salted}{customer_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % buckets

    dbapi_connection.create_function("recall_hash_bucket", 3, recall_hash_bucket, deterministic=True)


# --- send lists (experiments/sendlist.py) ---------------------------------------------------------

from collections.abc import Iterator  # this block's own import, kept with it


def stream_rows(connection, statement, rows_at_a_time: int) -> Iterator[list[tuple]]:  # noqa: ANN001 - Core objects
    """The rows of ``statement`` as plain DB-API tuples, ``rows_at_a_time`` at a time: a million rows
    cost a fraction of a second, against about a second through SQLAlchemy's result rows. PostgreSQL
    streams them from a server-side (named) cursor, so memory stays flat; SQLite's cursor steps through
    the result as it is fetched. Parameters are rendered inline: only for statements of numbers and
    names the program made, never for customer data."""
    sql = str(statement.compile(connection, compile_kwargs={"literal_binds": True}))
    driver = connection.connection.dbapi_connection
    cursor = driver.cursor(name="recall_rows") if connection.dialect.name == "postgresql" else driver.cursor()
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(rows_at_a_time):
            yield rows
    finally:
        cursor.close()


def begin_writing(connection) -> None:  # noqa: ANN001 - a Connection
    """SQLite: take the database's write lock now (BEGIN IMMEDIATE), for a transaction that reads the
    main database (into temporary tables) before it writes to it. SQLite's driver begins a transaction
    only at the first INSERT; one begun by a write to a temporary table holds a read snapshot of the
    main database, and once another connection commits (the app signing someone in) its first write
    there fails at once with "database is locked" (SQLITE_BUSY_SNAPSHOT), without waiting. Taken at
    the start, the lock waits for other writers instead. No-op elsewhere, or inside a transaction."""
    if connection.dialect.name != "sqlite":
        return
    driver = connection.connection.driver_connection
    if not driver.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def without_jit(connection) -> None:  # noqa: ANN001 - a Connection
    """PostgreSQL: no JIT compilation for the rest of the transaction. A send list's statements are
    costed in the millions, so JIT compiles each of them, for about 2 s, to save a fraction of that:
    the statements of a million customers ran 2-3 times slower with it."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL jit = off")


SORT_MEMORY = "256MB"


def with_sort_memory(connection) -> None:  # noqa: ANN001 - a Connection
    """PostgreSQL: ``work_mem`` of :data:`SORT_MEMORY` for the rest of the transaction, so that a
    million keys are sorted in memory (the default 4 MB spills them to disk); one session's sorts."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SET LOCAL work_mem = '{SORT_MEMORY}'")


def analyze_table(connection, name: str) -> None:  # noqa: ANN001 - a Connection
    """PostgreSQL: statistics of a just-filled temporary table (autovacuum never sees one), so that the
    planner knows it holds a million rows, not a few hundred. SQLite plans by its indexes."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"ANALYZE {name}")


def filled_in_key_order(connection, table) -> None:  # noqa: ANN001 - a Connection and a Table
    """PostgreSQL: ``table``, a temporary table just created, as a heap without its primary key. It is
    filled once, in key order, and read back whole: keeping its B-tree up to date row by row cost more
    than the rest of the fill (0.6 of 1.5 s of the server's CPU for a million rows), and the table is
    read back in that order anyway (:func:`in_stored_order`). SQLite keeps the key: there the key is
    the table (WITHOUT ROWID), which costs nothing more and gives key order for free."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"ALTER TABLE {table.name} DROP CONSTRAINT {table.name}_pkey")


def in_stored_order(connection, statement, *keys):  # noqa: ANN001, ANN201 - Core objects
    """``statement`` (over one table of :func:`filled_in_key_order`) in ``keys``' order, for an INSERT
    whose target's index grows by appending when rows come in that order. PostgreSQL: no ORDER BY,
    which would sort a million rows: a sequential scan returns a temporary heap in the order it was
    filled (order here is only for speed; the rows are the same in any order)."""
    return statement if connection.dialect.name == "postgresql" else statement.order_by(*keys)


# --- the events import (experiments/importer.py) --------------------------------------------------


_COUNTED = {"preserve_rowcount": True}  # SQLAlchemy drops an INSERT's row count unless asked to keep it


def insert_new_rows(connection, target: Table, staged: Table, key: Sequence[str]) -> int:  # noqa: ANN001
    """Copy into ``target`` the rows of ``staged`` whose ``key`` (``target``'s unique key, in its column
    order) is not stored yet, each once, in the key's order so the key's B-tree fills page by page;
    returns how many were stored. Compared as strings: an enum column of ``target`` holds its text.

    PostgreSQL: an anti-join and a plain INSERT of the distinct rows. ON CONFLICT DO NOTHING inserts
    each row speculatively (an extra WAL record and a second look at the key per row): 2M events into
    an empty table took 10.1 s that way against 6.7 s (EXPLAIN ANALYZE). A concurrent import that
    stores the same rows first makes this INSERT wait for it and then fail on the unique key; the
    importer then runs again and skips them (experiments.importer._in_one_transaction): the key stays
    the arbiter. The sort compares text bytewise (COLLATE "C"): only the order of writing depends on
    it, and 2M keys sorted in 2.0 s instead of 3.3 s with the database's C.UTF-8 (strcoll).
    SQLite: INSERT … ON CONFLICT DO NOTHING (one writer at a time; the conflict check is the insert's
    own descent of the key's B-tree)."""
    dialect = connection.dialect.name
    mine, theirs = [staged.c[name] for name in key], [target.c[name] for name in key]
    if dialect == "postgresql":
        ordered = [c.collate("C").label(c.name) if isinstance(t.type, String) else c for c, t in zip(mine, theirs)]
        stored = exists().where(*(type_coerce(t, String) == c if isinstance(t.type, String) else t == c
                                  for t, c in zip(theirs, mine)))
        rows = select(*ordered).where(~stored).distinct().order_by(*ordered)
        return connection.execute(insert(target).from_select(list(key), rows), execution_options=_COUNTED).rowcount
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        rows = select(*mine).where(true()).order_by(*mine)  # WHERE: SQLite's parser needs it before ON CONFLICT
        return connection.execute(sqlite_insert(target).from_select(list(key), rows).on_conflict_do_nothing(),
                                  execution_options=_COUNTED).rowcount
    raise NotImplementedError(f"no bulk insert of new rows for {dialect}")

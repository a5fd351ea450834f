"""The one place with dialect-specific SQL: date arithmetic, which SQL has no portable spelling for,
the numeric type sums are taken in (DuckDB's DECIMAL overflows where PostgreSQL's NUMERIC does not),
and the assignment hash (sha256 has a different name and return type in every database).
A warehouse dialect (BigQuery, Snowflake, Trino, ClickHouse) would add its spelling of these here.

Everything else in the analysis queries is plain SQLAlchemy Core that any dialect compiles.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import DateTime, Integer, Numeric, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


# Customers per aggregate statement. The sums add up, so a report can run one statement per range of
# customer ids. DuckDB runs inside the report's process: a million customers at a time keeps its
# memory flat whatever the total (and is faster: 10M customers in 5.7 s instead of 5.9 s). A server
# (PostgreSQL) plans one statement better: 10 ranges took 52 s at 10M instead of about 30 s.
CUSTOMERS_PER_STATEMENT: dict[str, int] = {"duckdb": 1_000_000}


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


@compiles(as_number, "duckdb")
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


def without_jit(connection) -> None:  # noqa: ANN001 - a Connection
    """PostgreSQL: no JIT compilation for the rest of the transaction. A send list's statements are
    costed in the millions, so JIT compiles each of them, for about 2 s, to save a fraction of that:
    the statements of a million customers ran 2-3 times slower with it."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL jit = off")

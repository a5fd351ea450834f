"""The one place with dialect-specific SQL: date arithmetic, which SQL has no portable spelling for,
and the numeric type sums are taken in (DuckDB's DECIMAL overflows where PostgreSQL's NUMERIC does not).
A warehouse dialect (BigQuery, Snowflake, Trino, ClickHouse) would add its spelling of these two here.

Everything else in the analysis queries is plain SQLAlchemy Core that any dialect compiles.
"""

from __future__ import annotations

from sqlalchemy import DateTime, Numeric
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


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
    """A value to sum, square and cube: exact NUMERIC where sums of products stay exact (PostgreSQL;
    SQLite stores it as REAL anyway), DOUBLE on DuckDB, whose DECIMAL overflows past 38 digits when
    a cube of NUMERIC(18, 4) is taken."""

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

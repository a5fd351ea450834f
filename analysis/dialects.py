"""The one place with dialect-specific SQL: date arithmetic, which SQL has no portable spelling for.

Everything else in the analysis queries is plain SQLAlchemy Core that any dialect compiles.
"""

from __future__ import annotations

from sqlalchemy import DateTime
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


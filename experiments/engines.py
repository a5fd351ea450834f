"""Connections to the engines SQLAlchemy has no maintained driver for here: Spark SQL and chDB.

Spark: a DB-API 2.0 module over a SparkSession, so that the analysis' SQLAlchemy Core statements,
compiled by :class:`experiments.dialects.SparkDialect`, run as ``spark.sql(statement).collect()``,
the same code for a local session (``spark+local:///PATH``: Parquet tables in PATH, registered as
views) and a cluster through Spark Connect (``sc://host:15002``, ``spark+connect://host:15002``:
the cluster's catalog tables). Only the few aggregated rows come back to Python.

ClickHouse: clickhouse-connect's own SQLAlchemy dialect speaks to servers (``clickhousedb://``)
and, through chDB's clickhouse-connect backend, to an in-process ClickHouse over a local
directory (``clickhousedb+chdb:///PATH``); :class:`ChdbDialect` only turns that URL into
clickhouse-connect's chDB arguments.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from clickhouse_connect.cc_sqlalchemy.dialect import ClickHouseDialect

# DB-API module attributes (PEP 249).
apilevel = "2.0"
threadsafety = 1
paramstyle = "pyformat"

DEBIAN_JAVA_17 = Path("/usr/lib/jvm/java-17-openjdk-amd64")
SPARK_LOCAL_MASTER = os.environ.get("RECALL_SPARK_MASTER", "local[2]")
SPARK_CONNECT_RETRIES = int(os.environ.get("RECALL_SPARK_CONNECT_RETRIES", "4"))
CHDB_ENGINE_OPTIONS = ("config-file",)  # URL query keys passed to chDB's engine, not to clickhouse-connect
READS = re.compile(r"^\s*\(*\s*(SELECT|WITH|VALUES|SHOW|DESCRIBE)\b", re.IGNORECASE)


class Error(Exception):
    pass


class Warning(Exception):  # noqa: A001 - the name PEP 249 gives it
    pass


class InterfaceError(Error):
    pass


class DatabaseError(Error):
    pass


class OperationalError(DatabaseError):
    """The engine could not be reached or started (no Java, an unreachable cluster)."""


class ProgrammingError(DatabaseError):
    """The statement is wrong for this warehouse: a missing table or column, no grant."""


class NotSupportedError(DatabaseError):
    """A write: the source is read-only."""


IntegrityError = InternalError = DataError = DatabaseError


def java_home() -> str | None:
    """JAVA_HOME for Spark's local mode: the environment's, else Debian's Java 17 when installed
    (``openjdk-17-jre-headless``; another JDK on the path may be too new or too old for Spark)."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    if (DEBIAN_JAVA_17 / "bin" / "java").exists():
        os.environ["JAVA_HOME"] = str(DEBIAN_JAVA_17)
        return str(DEBIAN_JAVA_17)
    return None


def local_spark():  # noqa: ANN201 - a pyspark SparkSession
    """The process's local SparkSession, started on first use (about 12 s) and then shared."""
    if java_home() is None:
        raise OperationalError("Spark's local mode needs Java 17: install Debian's openjdk-17-jre-headless "
                               "(make install does) or set JAVA_HOME")
    from pyspark.sql import SparkSession

    try:
        session = (SparkSession.builder.master(SPARK_LOCAL_MASTER).appName("recall-lab")
                   .config("spark.ui.enabled", "false")
                   .config("spark.ui.showConsoleProgress", "false")
                   .config("spark.sql.session.timeZone", "UTC")
                   .config("spark.sql.shuffle.partitions", os.environ.get("RECALL_SPARK_PARTITIONS", "8"))
                   .config("spark.driver.memory", os.environ.get("RECALL_SPARK_DRIVER_MEMORY", "2g"))
                   .getOrCreate())
    except Exception as exc:  # noqa: BLE001 - py4j and pyspark raise several kinds
        raise OperationalError(f"Spark's local session did not start: {_first_line(exc)}") from exc
    session.sparkContext.setLogLevel("ERROR")
    return session


def register_parquet_tables(session, folder: Path) -> list[str]:  # noqa: ANN001 - a SparkSession
    """Each ``folder/NAME/`` directory of Parquet files (or ``folder/NAME.parquet``) as view NAME."""
    names = []
    for entry in sorted(folder.iterdir()):
        name = entry.name.removesuffix(".parquet")
        if entry.name.startswith((".", "_")) or not (entry.is_dir() or entry.suffix == ".parquet"):
            continue
        try:
            session.read.parquet(str(entry)).createOrReplaceTempView(name)
        except Exception as exc:  # noqa: BLE001 - py4j and pyspark raise several kinds
            # Which table: an unreadable directory (file permissions) or a broken file is one of them.
            raise ProgrammingError(f"cannot read table {name} at {entry}: {_first_line(exc)}") from exc
        names.append(name)
    return names


def connect(*, warehouse: str | None = None, remote: str | None = None) -> Connection:
    """A connection to a local Parquet warehouse (its own Spark session over the process's shared
    SparkContext: views of two warehouses never mix) or to a Spark Connect endpoint."""
    if remote is not None:
        try:
            from pyspark.sql import SparkSession

            from pyspark.sql.connect.client.retries import DefaultPolicy

            session = SparkSession.builder.remote(remote).getOrCreate()
            # Spark Connect retries an unreachable server for 10 minutes by default: a report says
            # so after a few seconds instead.
            session.client.set_retry_policies([DefaultPolicy(max_retries=SPARK_CONNECT_RETRIES)])
            # Times are naive UTC everywhere in Recall Lab: a table's TIMESTAMP (an instant) compares
            # with them in UTC.
            session.conf.set("spark.sql.session.timeZone", "UTC")
            return Connection(session)
        except Exception as exc:  # noqa: BLE001
            raise OperationalError(f"cannot reach Spark Connect: {_first_line(exc)}") from exc
    folder = Path(warehouse or "")
    if not folder.is_dir():
        raise OperationalError(f"no warehouse directory at {folder}: write one with recall simulate --db "
                               f"spark+local:///{folder}, or give the directory of your Parquet tables")
    session = local_spark().newSession()
    try:
        register_parquet_tables(session, folder)
    except ProgrammingError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ProgrammingError(f"cannot read the Parquet tables in {folder}: {_first_line(exc)}") from exc
    return Connection(session)


class Connection:
    """A SparkSession behind the DB-API: no transactions (reads only)."""

    def __init__(self, session) -> None:  # noqa: ANN001 - a SparkSession
        self.session = session

    def cursor(self) -> Cursor:
        return Cursor(self)

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass  # the shared SparkContext outlives a connection; a Connect session ends with the process


class Cursor:
    arraysize = 1

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.description: list[tuple] | None = None
        self.rowcount = -1
        self._rows: list[tuple] = []

    def execute(self, operation: str, parameters: dict[str, Any] | None = None) -> None:
        if not READS.match(operation):
            raise NotSupportedError("this Spark source is read-only: only SELECT statements run")
        sql = operation % {k: spark_literal(v) for k, v in parameters.items()} if parameters is not None else operation
        try:
            frame = self.connection.session.sql(sql)
            self._rows = [tuple(row) for row in frame.collect()]
        except Exception as exc:  # noqa: BLE001 - AnalysisException, Py4JJavaError, SparkConnectGrpcException
            kind = ProgrammingError if _is_analysis_error(exc) else OperationalError
            raise kind(_first_line(exc)) from exc
        self.description = [(f.name, f.dataType.simpleString(), None, None, None, None, f.nullable)
                            for f in frame.schema.fields]
        self.rowcount = len(self._rows)

    def executemany(self, operation: str, seq_of_parameters) -> None:  # noqa: ANN001
        raise NotSupportedError("this Spark source is read-only")

    def fetchone(self) -> tuple | None:
        return self._rows.pop(0) if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[tuple]:
        size = size or self.arraysize
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    def fetchall(self) -> list[tuple]:
        rows, self._rows = self._rows, []
        return rows

    def close(self) -> None:
        self._rows = []

    def setinputsizes(self, sizes) -> None:  # noqa: ANN001
        pass

    def setoutputsize(self, size, column=None) -> None:  # noqa: ANN001
        pass


def spark_literal(value: Any) -> str:  # noqa: ANN401 - any bound parameter
    """A Python value as a Spark SQL literal (the statement is sent as text, like pyhive does)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):  # repr round-trips every double, nan and inf included
        return f"CAST('{value!r}' AS DOUBLE)"
    if isinstance(value, Decimal):
        return f"{value:f}BD"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:  # an instant: Spark's TIMESTAMP (the session's zone is UTC)
            return f"TIMESTAMP '{value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(' ')}+00:00'"
        return f"TIMESTAMP_NTZ '{value.isoformat(' ')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise NotSupportedError(f"no Spark SQL literal for {type(value).__name__}")


def _is_analysis_error(exc: BaseException) -> bool:
    return type(exc).__name__ in ("AnalysisException", "ParseException") or "AnalysisException" in str(exc)[:200]


def _first_line(exc: BaseException) -> str:
    """The first line that says something: py4j's first line only names the Java call that failed
    (``An error occurred while calling o43.parquet.``), the Java exception is on the next."""
    lines = [line.strip() for line in (str(exc).strip() or type(exc).__name__).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("An error occurred while calling"):
        return lines[1].removeprefix(":").strip()
    return lines[0]


class ClickHouseSourceDialect(ClickHouseDialect):
    """clickhouse-connect's dialect (``clickhousedb://``), registered under its own name for this
    process with one change: ClickHouse divides integers exactly, so ``a / b`` needs no cast and
    ``a // b`` must floor (see :mod:`experiments.dialects`)."""

    div_is_floordiv = False
    supports_statement_cache = False  # as clickhouse-connect's: its compiler keeps state per statement


class ChdbDialect(ClickHouseSourceDialect):
    """``clickhousedb+chdb:///PATH``: clickhouse-connect's dialect over chDB's in-process engine
    (the compiler, types and cursor are clickhouse-connect's; only the URL is read here)."""

    driver = "chdb"
    supports_statement_cache = False

    def create_connect_args(self, url):  # noqa: ANN001, ANN201 - a SQLAlchemy URL
        kwargs = {str(k): v for k, v in url.query.items()}
        # chDB's own engine options (``?config-file=users.xml``: its users and their grants), the rest
        # clickhouse-connect's arguments.
        options = {k: kwargs.pop(k) for k in CHDB_ENGINE_OPTIONS if k in kwargs}
        return [], {"interface": "chdb", "path": url.database or ":memory:", **kwargs,
                    **({"chdb_options": options} if options else {})}

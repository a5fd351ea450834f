"""Read-only sources: an experiment analysed where the team's data already lives.

A spec's ``[source]`` section maps the tables and columns the analysis needs (assignments, events,
optionally customers and sends) onto any SQLAlchemy URL: a PostgreSQL replica, a DuckDB file,
Parquet/CSV files that DuckDB reads as views, Spark SQL (``spark+local:///PATH`` over a directory
of Parquet tables, or a cluster through Spark Connect: ``sc://host:15002``) or ClickHouse
(``clickhousedb://user@host:8123/db`` for a server, ``clickhousedb+chdb:///PATH`` in-process).
Nothing is copied into Recall Lab; the connection is opened read-only. The defaults are the layout ``recall simulate`` writes, so a simulated warehouse
needs only ``url``::

    [source]
    url = "duckdb:///warehouse.duckdb"      # or url_env = "WAREHOUSE_URL" to keep credentials out
    segments = ["cohort"]                   # columns of the customers table to break results down by

    [source.assignments]
    table = "recall_assignments"
    experiment = "campaign"                 # rows of this experiment: campaign = the experiment's name
    customer_id = "user_id"
    variant = "arm"                         # holds variant names
    assigned_at = "assigned_ts"

    [source.event_types]                    # our event type = their value
    order = "pay_success"
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import Engine, column, create_engine, event, false, literal_column, select, table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.engine import make_url

from experiments.dialects import CLICKHOUSE_SETTINGS
from experiments.models import EventType

DUCKDB_MEMORY_LIMIT = "320MB"  # RECALL_DUCKDB_MEMORY_LIMIT overrides it; a report runs one statement per million customers
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=63)]
TableName = Annotated[str, Field(pattern=r"^([A-Za-z_][A-Za-z0-9_]*\.)?[A-Za-z_][A-Za-z0-9_]*$", max_length=127)]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    table: TableName


class AssignmentsTable(_Table):
    """Who is in which variant since when; ``experiment`` (optional) selects this experiment's rows."""

    table: TableName = "assignments"
    experiment: Identifier | None = "experiment"
    customer_id: Identifier = "customer_id"
    variant: Identifier = "variant"
    assigned_at: Identifier = "assigned_at"


class EventsTable(_Table):
    """What customers did: visits, orders (``value`` = amount in ¥), redemptions, unsubscribes."""

    table: TableName = "events"
    customer_id: Identifier = "customer_id"
    event_type: Identifier = "event_type"
    occurred_at: Identifier = "occurred_at"
    value: Identifier = "value"


class CustomersTable(_Table):
    """Pre-period covariates for CUPED and the segment columns; optional."""

    table: TableName = "customers"
    customer_id: Identifier = "customer_id"
    spend_before: Identifier | None = "spend_before"
    orders_before: Identifier | None = "orders_before"


class SendsTable(_Table):
    """Touches sent, for costs (every step counts); without it every contacted customer counts once."""

    table: TableName = "sends"
    experiment: Identifier | None = "experiment"
    customer_id: Identifier = "customer_id"
    variant: Identifier = "variant"
    channel: Identifier = "channel"
    # 0 = each customer's first touch: contacted customers are counted as step-0 rows, in the same
    # scan as the touches; none (or a first touch that can be skipped): counted as distinct customers.
    step: Identifier | None = "step"


class SourceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = None
    url_env: Identifier | None = None  # the name of an environment variable holding the URL
    assignments: AssignmentsTable = Field(default_factory=AssignmentsTable)
    events: EventsTable = Field(default_factory=EventsTable)
    customers: CustomersTable | None = Field(default_factory=CustomersTable)
    sends: SendsTable | None = Field(default_factory=SendsTable)
    event_types: dict[EventType, str] = Field(default_factory=dict)
    segments: list[Identifier] = Field(default_factory=list, max_length=3)

    @model_validator(mode="after")
    def _one_url(self) -> SourceSpec:
        if (self.url is None) == (self.url_env is None):
            raise PydanticCustomError("source_url", "give exactly one of url and url_env")
        if self.url is not None:
            try:
                make_url(self.url)
            except Exception:  # noqa: BLE001 - SQLAlchemy raises several kinds for a bad URL
                raise PydanticCustomError("source_url", "not a SQLAlchemy database URL: {url}",
                                          {"url": self.url}) from None
        if self.segments and self.customers is None:
            raise PydanticCustomError("source_segments", "segments are columns of the customers table: map it")
        return self

    def resolved_url(self) -> str:
        if self.url is not None:
            return self.url
        value = os.environ.get(self.url_env or "")
        if not value:
            raise ValueError(f"source: the environment variable {self.url_env} (url_env) is not set")
        return value

    def event_value(self, kind: EventType) -> str:
        """Their spelling of one of our event types (ours when not mapped)."""
        return self.event_types.get(kind, kind.value)


def _sqlite_read_only(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API objects
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def read_only_engine(url: str) -> Engine:
    """An engine that cannot write: DuckDB opens the file read-only, PostgreSQL runs read-only
    transactions, SQLite sets ``query_only``, the Spark DB-API runs SELECTs only, ClickHouse runs
    with ``readonly = 2`` (reads, and the session settings of :data:`CLICKHOUSE_SETTINGS`).
    Other dialects, and on a cluster every one, rely on the account's grants too."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "clickhousedb":
        return create_engine(url, connect_args={**CLICKHOUSE_SETTINGS, "readonly": 2})
    if parsed.get_backend_name() == "duckdb":
        # DuckDB takes 80% of RAM by default; a bound keeps the report's process small and makes
        # DuckDB spill its hash tables to disk instead of growing with the number of customers.
        config = {"memory_limit": os.environ.get("RECALL_DUCKDB_MEMORY_LIMIT", DUCKDB_MEMORY_LIMIT),
                  "preserve_insertion_order": False}  # sums need no order; it lets DuckDB stream more
        in_memory = parsed.database in (None, "", ":memory:")
        return create_engine(url, connect_args={"config": config, **({} if in_memory else {"read_only": True})})
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, execution_options={"postgresql_readonly": True})
    engine = create_engine(url)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_read_only)
    return engine


class SourceError(ValueError):
    """A source that cannot be read as its ``[source]`` says: one line naming it and what to fix."""


# What engines say about a missing grant or an unreachable server (PostgreSQL, Spark, ClickHouse).
_NO_GRANT = re.compile(r"permission denied|not enough privileges|ACCESS_DENIED|INSUFFICIENT_PERMISSIONS"
                       r"|Code: 497", re.IGNORECASE)
# Spark's local mode reads Parquet files: a refused read is the files' permissions, not a grant.
_UNREADABLE_FILES = re.compile(r"cannot read table .*(AccessDenied|Permission denied)", re.IGNORECASE)
_UNREACHABLE = re.compile(r"cannot reach|could not connect|connection refused|UNAVAILABLE|Name or service not known"
                          r"|timed out|did not start|needs Java|no warehouse directory|Failed to establish",
                          re.IGNORECASE)


def _mapped(source: SourceSpec) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(section, table, {key: column}) of every mapped table; segments belong to the customers'."""
    for section in ("assignments", "events", "customers", "sends"):
        mapped = getattr(source, section)
        if mapped is None:
            continue
        columns = {key: value for key, value in mapped.model_dump().items() if key != "table" and value}
        if section == "customers":
            columns.update({f"segments ({s})": s for s in source.segments})
        yield section, mapped.table, columns


def _probe(engine: Engine, source: SourceSpec) -> str | None:
    """What is wrong with the mapped tables: the first one the account may not read, or a missing
    table or column; each probed with a query that reads no rows."""
    with engine.connect() as conn:
        for section, name, columns in _mapped(source):
            schema, _, bare = name.rpartition(".")
            raw = table(bare, *[column(c) for c in dict.fromkeys(columns.values())], schema=schema or None)
            try:
                conn.execute(select(literal_column("1")).select_from(raw).where(false())).all()
            except DBAPIError as exc:
                if _NO_GRANT.search(str(exc.orig)):
                    return (f"the account may not read table {name} ([source.{section}] table); "
                            f"grant it SELECT on {name}")
                return f"table {name} does not exist there; fix [source.{section}] table or create it"
            for key, value in columns.items():
                try:
                    conn.execute(select(raw.c[value]).where(false())).all()
                except DBAPIError:
                    where = f"[source] {key}" if key.startswith("segments") else f"[source.{section}] {key}"
                    return f"table {name} has no column {value}; fix {where}"
    return None


_SECRET = re.compile(r"(token|password)(=|%3D)[^;&%\s']*", re.IGNORECASE)


def masked_url(url: str) -> str:
    """The URL without its secrets: the password, and a Spark Connect token (``;token=…``)."""
    masked = _SECRET.sub(r"\1\2***", url)
    parsed = make_url(masked)
    return parsed.render_as_string(hide_password=True) if parsed.password else masked


def describe_source_error(engine: Engine, source: SourceSpec, url: str, experiment: str, message: str) -> str:
    """One line: which source failed, why, and the ``[source]`` key (or grant) to fix."""
    where = f"the source of {experiment!r} ({masked_url(url)})"
    first = _SECRET.sub(r"\1\2***", message.strip().splitlines()[0][:300]) if message.strip() else "unknown error"
    if _UNREACHABLE.search(message):
        return f"{where} cannot be reached; check url or url_env and that the server runs ({first})"
    if _UNREADABLE_FILES.search(message):
        return f"{where}: {first}; let the account that runs the report read that table's directory and files"
    try:
        found = _probe(engine, source)
    except DBAPIError:
        found = None
    if found:
        return f"{where}: {found} ({first})" if _NO_GRANT.search(message) else f"{where}: {found}"
    if _NO_GRANT.search(message):
        return (f"{where}: the account may not read a mapped table; grant it SELECT on the tables [source] maps "
                f"(see README) ({first})")
    return f"{where} failed: {first}"

"""Loading Arrow batches into a table of Recall Lab's own database: the dialect-specific bulk writes.

A load has two halves, so that they overlap (benchmarks/imports.py measures it):

* :func:`prepare` turns a batch into what the database's driver takes, and runs on the importer's
  reading thread: pyarrow's CSV writer for PostgreSQL's COPY (C++, the GIL released), Python values
  for SQLite (the one conversion sqlite3 needs, made column by column: numbers through numpy, and a
  column of few distinct strings, such as variant labels or segments, from its dictionary, so 2M
  rows hold three string objects instead of 2M);
* :func:`bulk_loader`'s store writes a prepared batch in the session's transaction, on the session's
  thread: one COPY for the whole load on PostgreSQL (the server parses one batch while the next is
  prepared); on SQLite an ``executemany`` of multi-row INSERTs, during which sqlite3 releases the GIL,
  so the reading thread parses and checks the next block meanwhile.

Elsewhere (DuckDB as Recall Lab's own database, say) the rows go through SQLAlchemy's executemany.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    import pyarrow as pa

SQLITE_PARAMETERS = 32_766  # SQLITE_MAX_VARIABLE_NUMBER since SQLite 3.32
# Rows per multi-row INSERT on SQLite: the statement's own cost is paid once per this many rows. 500 took
# 10-20% less CPU than 100 on 2M rows of 6 columns; more gains nothing measurable.
SQLITE_ROWS_PER_STATEMENT = 500
FEW_DISTINCT = 1_000  # a string column with at most this many values is converted through its dictionary


@dataclass(frozen=True)
class Prepared:
    """A batch as the driver takes it: ``payload`` is CSV bytes (COPY), lists of statement parameters
    (SQLite: ``per_statement`` rows each, then ``rest``), or row dicts (elsewhere)."""

    kind: str
    rows: int
    names: tuple[str, ...]
    payload: Any
    per_statement: int = 0
    rest: list | None = None


def prepare(kind: str, batch: pa.RecordBatch) -> Prepared:
    """``batch`` made ready for a :func:`bulk_loader` of ``kind`` (:func:`loader_kind`). Thread-safe: it
    touches no connection."""
    names = tuple(batch.schema.names)
    if kind == "copy":
        import pyarrow.csv as pacsv

        buffer = io.BytesIO()
        pacsv.write_csv(batch, buffer, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
        return Prepared(kind, batch.num_rows, names, buffer.getbuffer())
    if kind == "sqlite":
        batch = _as_sqlite_stores(batch)
    columns = [_python_values(array) for array in batch.columns]
    if kind != "sqlite":
        return Prepared(kind, batch.num_rows, names,
                        [dict(zip(names, row, strict=True)) for row in zip(*columns)])
    width = len(columns)
    per_statement = max(1, min(SQLITE_ROWS_PER_STATEMENT, SQLITE_PARAMETERS // max(width, 1)))
    rows = zip(*columns)  # each statement's parameters made straight from the rows: no copy of the batch
    statements = [list(itertools.chain.from_iterable(itertools.islice(rows, per_statement)))
                  for _ in range(batch.num_rows // per_statement)]
    return Prepared(kind, batch.num_rows, names, statements, per_statement,
                    list(itertools.chain.from_iterable(rows)))


def _python_values(array: pa.Array) -> list:
    """A column as Python values, without a Python object per row where a shared one will do."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.null_count == 0 and (pa.types.is_floating(array.type) or pa.types.is_integer(array.type)):
        return array.to_numpy().tolist()
    if (pa.types.is_string(array.type) and len(array) > FEW_DISTINCT  # customer ids: told by their first values
            and pc.count_distinct(array.slice(0, 2 * FEW_DISTINCT)).as_py() <= FEW_DISTINCT):
        encoded = pc.dictionary_encode(array)
        if len(encoded.dictionary) <= FEW_DISTINCT and encoded.indices.null_count == 0:
            return np.array(encoded.dictionary.to_pylist(), dtype=object)[encoded.indices.to_numpy()].tolist()
    return array.to_pylist()


def _as_sqlite_stores(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Times and amounts as SQLAlchemy stores them in SQLite (text 'YYYY-MM-DD HH:MM:SS.ffffff', REAL), so
    rows written here compare equal to rows written through the ORM (events' natural key). A cast, not
    ``strftime``: the same text (tests/test_import.py), at a twentieth of the cost."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays = []
    for array in batch.columns:
        if pa.types.is_timestamp(array.type):
            array = pc.cast(pc.cast(array, pa.timestamp("us")), pa.string())
        elif pa.types.is_decimal(array.type):
            array = pc.cast(array, pa.float64())
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def loader_kind(session: Session) -> str:
    """How :func:`bulk_loader` writes to the session's database: "copy" (PostgreSQL through psycopg),
    "sqlite", or "rows" (SQLAlchemy's executemany)."""
    dialect = session.connection().dialect
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        return "copy"
    return "sqlite" if dialect.name == "sqlite" else "rows"


@contextmanager
def bulk_loader(session: Session, table: Table) -> Iterator[Callable[[Any], None]]:
    """A function that appends batches (Arrow batches, or :func:`prepare`'s of them; columns named and
    ordered as ``table``'s) in the session's transaction, for as long as the context lasts."""
    kind = loader_kind(session)

    def prepared(batch: Any) -> Prepared:
        return batch if isinstance(batch, Prepared) else prepare(kind, batch)

    if kind == "copy":
        names = [column.name for column in table.columns]
        cursor_of = session.connection().connection.driver_connection.cursor
        with cursor_of() as cursor, cursor.copy(
                f"COPY {table.name} ({', '.join(names)}) FROM STDIN (FORMAT csv)") as copy:
            yield lambda batch: copy.write(prepared(batch).payload)
        return
    if kind == "sqlite":
        yield lambda batch: _sqlite_insert(session, table, prepared(batch))
        return

    def write(batch: Any) -> None:
        rows = prepared(batch).payload
        if rows:
            session.execute(insert(table), rows)

    yield write


def _sqlite_insert(session: Session, table: Table, batch: Prepared) -> None:
    if not batch.rows:
        return
    names = ", ".join(batch.names)
    one = "(" + ", ".join("?" * len(batch.names)) + ")"
    cursor = session.connection().connection.driver_connection.cursor()
    try:
        if batch.payload:
            cursor.executemany(f"INSERT INTO {table.name} ({names}) VALUES {', '.join([one] * batch.per_statement)}",
                               batch.payload)
        if batch.rest:
            rows = len(batch.rest) // len(batch.names)
            cursor.execute(f"INSERT INTO {table.name} ({names}) VALUES {', '.join([one] * rows)}", batch.rest)
    finally:
        cursor.close()

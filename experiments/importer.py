"""Importing outcomes: events, or per-customer results of a test run elsewhere.

Both imports are atomic and idempotent, check the actor's ``import`` permission, and record
themselves in the audit log (file name, rows, SHA-256) in their own transaction:

* A bad row rejects the whole file with a message ``FILE, line N, field F: reason``, where N is the
  line in the file (the header is line 1, so the first data row is line 2) — the number an editor shows.
* Events: the file is read twice, as a stream. The first pass hashes the (decompressed) content and
  checks the bytes (gzip, UTF-8) and the CSV structure; the second validates the rows ``chunk`` at a
  time and writes each validated chunk with :func:`experiments.db.bulk_insert` (COPY on PostgreSQL),
  all inside one transaction: an error in a later chunk rolls back the earlier ones. Events already
  present (same customer, type, time and value) are skipped and counted, so overlapping exports can be
  imported one after the other; each chunk looks them up in the database.
* Results: parsed by pyarrow a block at a time (the content hashed as it is read) and checked a column
  at a time, into blocks of the experiment's own (:mod:`experiments.result_tables`); when a check
  fails, read again row by row to name the first bad line (see "Results of a test run elsewhere" below).
* The SHA-256 of the content is recorded in ``imports``; the same content imported again changes
  nothing. Memory is bounded by a chunk or block, whatever the file's size.
* Customer ids, labels and segment values go through :mod:`experiments.identifiers` (the one
  normalisation); an event dated after the clock (beyond :func:`clock_skew`) is refused.

Files are CSV, optionally gzip-compressed, in UTF-8 (a byte-order mark is tolerated).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import json
import os
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    MetaData,
    String,
    delete,
    exc,
    exists,
    func,
    select,
    type_coerce,
)
from sqlalchemy import Table as SqlTable
from sqlalchemy.orm import Session

from experiments import result_tables
from experiments.access import Actor, Permission, require
from experiments.audit import Action, record
from experiments.catalog import Channel
from experiments.config import settings, to_stored_utc
from experiments.bulk_load import loader_kind, prepare
from experiments.db import bulk_insert, bulk_loader, run_in_transaction
from experiments.dialects import analyze_table, insert_new_rows, with_sort_memory, without_jit
from experiments.identifiers import MAX_ID_LENGTH, InvalidIdentifier, check_name, normalise_customer_id
from experiments.models import (
    Event,
    EventType,
    Experiment,
    ExperimentSource,
    ExperimentStatus,
    ImportRecord,
    MetricDefinition,
    MetricKind,
    MetricRole,
    Money,
    ResultTable,
    Send,
    Variant,
)
from experiments.store import utcnow

GZIP_MAGIC = b"\x1f\x8b"
EVENT_COLUMNS = ("customer_id", "event_type", "occurred_at")  # "value" is optional (empty → 0)
CENT = Decimal("0.01")
MAX_MONEY = Decimal("1e12")  # models.Money is NUMERIC(14, 2)
EXPERIMENT_NAME = re.compile(r"^\w[\w.\-]{0,63}$")  # a spec's name pattern; 64 characters, the salt's length
KEY_CHUNK = 500  # customers per look-up of existing events (well under every backend's parameter limit)
CHUNK = 50_000  # data rows validated and written at a time: memory is bounded by this, not by the file
READ_BLOCK = 1 << 20  # bytes read from the file at a time
# An event may be dated this far after the importing machine's clock (clocks differ); later is refused.
CLOCK_SKEW_MINUTES = 10.0


def progress_bar(show: bool):  # noqa: ANN201 - a rich Progress
    """:func:`experiments.assignment.progress_bar`, imported when a load starts: the import command need not
    load the assignment module (and rich's progress) to start."""
    from experiments.assignment import progress_bar as bar

    return bar(show)


def clock_skew() -> timedelta:
    """The tolerance, RECALL_CLOCK_SKEW_MINUTES (default 10 minutes)."""
    return timedelta(minutes=float(os.environ.get("RECALL_CLOCK_SKEW_MINUTES", CLOCK_SKEW_MINUTES)))


class ImportFailed(ValueError):
    """A file that cannot be imported; the message names the file, line and field."""


@dataclass(frozen=True)
class ImportResult:
    """What an import did. ``rows``: data rows in the file; ``inserted`` + ``skipped_duplicates`` (already
    stored) can be fewer when the file repeats a row, which counts once."""

    kind: str
    file: str
    rows: int
    inserted: int
    skipped_duplicates: int
    already_imported: bool
    experiment: str | None = None
    late_unsubscribes: int = 0
    warnings: tuple[str, ...] = ()


# Reading a file ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    line: int  # in the file, header = line 1
    values: dict[str, str]


class _Unreadable(ImportFailed):
    """The bytes themselves are bad (I/O, gzip, UTF-8): reported before any CSV problem of the file."""


class _Content(io.RawIOBase):
    """A file's decompressed bytes as a stream, hashed and checked as UTF-8 while they are read.

    Checking here, with our own decoder, names the byte offset of bad UTF-8 exactly as decoding the
    whole file would (counted after a byte-order mark), whichever block it falls in.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path, self.name = path, path.name
        try:
            self._file = path.open("rb")
            self.gzipped = self._file.read(2) == GZIP_MAGIC
            self._file.seek(0)
        except OSError as error:
            raise _Unreadable(f"{path}: cannot read the file ({error.strerror or error})") from None
        self._stream = gzip.GzipFile(fileobj=self._file, mode="rb") if self.gzipped else self._file
        self.sha256 = hashlib.sha256()
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._head: bytes | None = b""  # the first bytes, until a byte-order mark is ruled in or out
        self._checked = 0  # bytes after the byte-order mark given to the decoder

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def drain(self) -> None:
        """Read to the end, so a bad byte anywhere is reported (before a CSV problem found earlier)."""
        while self._read(READ_BLOCK):
            pass

    def release(self) -> None:
        """Close the file. (``close``, which the text wrapper calls when it is collected, leaves it open:
        :meth:`drain` may still need to read on.)"""
        self._stream.close()
        self._file.close()

    def _read(self, size: int) -> bytes:
        data = self._raw(size)
        while self._head is not None and data and len(self._head) + len(data) < 3:  # a whole BOM, or none
            more = self._raw(size)
            if not more:
                break
            data += more
        self.sha256.update(data)
        self._check(data)
        return data

    def _raw(self, size: int) -> bytes:
        try:
            return self._stream.read(size)
        except (OSError, EOFError, zlib.error) as error:
            if self.gzipped:
                raise _Unreadable(f"{self.name}: not a readable gzip file") from None
            raise _Unreadable(f"{self.path}: cannot read the file ({getattr(error, 'strerror', None) or error})"
                              ) from None

    def _check(self, data: bytes) -> None:
        final = not data
        if self._head is not None:
            data, self._head = self._head + data, None
            if data.startswith(codecs.BOM_UTF8):
                data = data[len(codecs.BOM_UTF8):]
        pending = len(self._decoder.getstate()[0])  # bytes of a character split across blocks
        try:
            self._decoder.decode(data, final)
        except UnicodeDecodeError as error:
            raise _Unreadable(f"{self.name}: not UTF-8 text (byte {self._checked - pending + error.start})") from None
        self._checked += len(data)


@dataclass(frozen=True)
class _Scan:
    """What the first pass learns: the content's hash, the header, the number of non-blank rows, and
    the distinct values of one column (the variant labels of a results file: few)."""

    sha256: str
    header: list[str]
    rows: int
    distinct: frozenset[str] = frozenset()


@dataclass
class _Table:
    """A CSV file read as a stream (never whole): its name and, after :meth:`scan`, header and hash."""

    path: Path
    scanned: _Scan | None = field(default=None, repr=False)
    _head: list[str] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def header(self) -> list[str]:
        if self.scanned is None:
            assert self._head is not None
            return self._head
        return self.scanned.header

    def require(self, columns: Sequence[str]) -> None:
        missing = [c for c in dict.fromkeys(columns) if c not in self.header]
        if missing:
            plural = "s" if len(missing) > 1 else ""
            raise ImportFailed(f"{self.name}, line 1, field{plural} {', '.join(missing)}: missing column{plural}; "
                               f"the header has: {', '.join(self.header)}")

    def error(self, line: int, field: str, reason: str) -> ImportFailed:
        return ImportFailed(f"{self.name}, line {line}, field {field}: {reason}")

    def scan(self, distinct: str | None = None) -> _Scan:
        """First pass: hash, bytes and CSV structure, row count. A bad byte anywhere in the file is
        reported before a CSV problem, as when the file was decoded whole before being parsed."""
        content = _Content(self.path)
        try:
            try:
                header, rows = _parse_csv(self.name, content)
                column = distinct if distinct in header else None
                values: set[str] = set()
                n = 0
                for row in rows:
                    n += 1
                    if column is not None:
                        values.add(row.values[column])
            except _Unreadable:
                raise
            except ImportFailed:
                content.drain()
                raise
            self.scanned = _Scan(content.sha256.hexdigest(), header, n, frozenset(values))
            return self.scanned
        finally:
            content.release()

    def chunks(self, size: int) -> Iterator[list[_Row]]:
        """Second pass: the non-blank rows, ``size`` at a time. The content must still be what was scanned."""
        assert self.scanned is not None
        content = _Content(self.path)
        try:
            _, rows = _parse_csv(self.name, content)
            chunk: list[_Row] = []
            for row in rows:
                chunk.append(row)
                if len(chunk) == size:
                    yield chunk
                    chunk = []
            content.drain()
            if content.sha256.hexdigest() != self.scanned.sha256:
                raise ImportFailed(f"{self.name}: the file changed while it was being imported; import it again")
            if chunk:
                yield chunk
        finally:
            content.release()

    def first_line(self, column: str, value: str) -> int:
        """The line on which ``column`` first holds ``value`` (one more pass, only to word an error)."""
        content = _Content(self.path)
        try:
            _, rows = _parse_csv(self.name, content)
            return next((row.line for row in rows if row.values[column] == value), 0)
        finally:
            content.release()

    def digest(self) -> _Scan:
        """The content's hash (one pass at the speed of hashlib) and the header, without the row count:
        what the fast path needs before it parses. A bad header is reported after any bad byte."""
        try:
            with self.path.open("rb") as raw:
                gzipped = raw.read(2) == GZIP_MAGIC
                raw.seek(0)
                stream = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
                sha256 = hashlib.sha256()
                while block := stream.read(READ_BLOCK):
                    sha256.update(block)
        except (OSError, EOFError, zlib.error):
            self.scan()  # words the problem (unreadable, not gzip)
            raise
        self.scanned = _Scan(sha256.hexdigest(), self.head(), 0)
        self._gzipped = gzipped
        return self.scanned

    def head(self) -> list[str]:
        """The header, checked, reading no further: what :meth:`hashed_blocks` needs before it parses (it
        hashes the content as it reads it). A bad header is reported after any bad byte."""
        content = _Content(self.path)
        try:
            header, _ = _parse_csv(self.name, content)
        except _Unreadable:
            raise
        except ImportFailed:
            content.release()
            self.scan()  # a bad byte anywhere comes first
            raise
        finally:
            content.release()
        self._head, self._gzipped = header, content.gzipped
        return header

    def hashed_blocks(self, columns: list[str]) -> Iterator[pa.RecordBatch]:
        """:meth:`blocks` after :meth:`head`, hashing the (decompressed) content as pyarrow reads it, one
        pass instead of two: once every block is read, the file is :attr:`scanned` (its hash is what
        :meth:`digest` gives)."""
        content = _Hashed(self.path, self._gzipped)
        rows = 0
        try:
            with self._reader(pa.PythonFile(content, mode="r"), columns) as reader:
                for block in reader:
                    rows += block.num_rows
                    yield block
            content.drain()
        except (pa.ArrowException, OSError):
            raise _Recheck from None
        finally:
            content.release()
        self.scanned = _Scan(content.sha256.hexdigest(), self.header, rows)

    def stat(self) -> tuple[int, int]:
        """Size and modification time: a file changed during a fast-path import is noticed."""
        status = self.path.stat()
        return status.st_size, status.st_mtime_ns

    def blocks(self, columns: list[str]) -> Iterator[pa.RecordBatch]:
        """The fast path's reader: ``columns`` as strings, a block of rows at a time, parsed by pyarrow.
        Anything it cannot parse (bad bytes, a row of the wrong length) raises _Recheck."""
        try:
            stream = pa.input_stream(str(self.path), compression="gzip" if self._gzipped else None)
            with self._reader(stream, columns) as reader:
                yield from reader
        except (pa.ArrowException, OSError):
            raise _Recheck from None

    def _reader(self, source: pa.NativeFile, columns: list[str]) -> pacsv.CSVStreamingReader:
        """pyarrow's streaming CSV reader of ``columns`` as strings (empty is "", never null), a block at a time."""
        return pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(column_names=self.header, skip_rows=1, block_size=BLOCK_SIZE),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(include_columns=columns,
                                                 column_types={c: pa.string() for c in columns},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False))


class _Hashed:
    """A file's (decompressed) bytes as pyarrow reads them (``pa.PythonFile``), hashed on the way; any
    problem reading them is an OSError (the exact reader words it)."""

    def __init__(self, path: Path, gzipped: bool) -> None:
        self._file = path.open("rb")
        self._stream = gzip.GzipFile(fileobj=self._file, mode="rb") if gzipped else self._file
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._stream.read(size)
        except (EOFError, zlib.error) as error:
            raise OSError(str(error)) from None
        self.sha256.update(data)  # hashlib lets go of the GIL for large blocks
        return data

    def drain(self) -> None:
        while self.read(READ_BLOCK):
            pass

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self) -> None:
        self.release()

    def release(self) -> None:
        self._stream.close()
        self._file.close()


def _parse_csv(name: str, content: _Content) -> tuple[list[str], Iterator[_Row]]:
    """The header, checked, and an iterator over the non-blank rows (each checked for its value count)."""
    text = io.TextIOWrapper(io.BufferedReader(content, READ_BLOCK), encoding="utf-8-sig", newline="")
    reader = csv.reader(text, strict=True)
    try:
        header = [h.strip() for h in next(reader, [])]
    except csv.Error as error:
        raise ImportFailed(f"{name}, line {reader.line_num}: not valid CSV ({error})") from None
    if not any(header):
        raise ImportFailed(f"{name}: the file is empty (the first line must name the columns)")
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise ImportFailed(f"{name}, line 1: column {', '.join(repeated)} appears more than once")

    def rows() -> Iterator[_Row]:
        line = reader.line_num + 1  # where the next record starts (a quoted value may span lines)
        try:
            for values in reader:
                if any(v.strip() for v in values):
                    if len(values) != len(header):
                        raise ImportFailed(f"{name}, line {line}: {len(values)} values for {len(header)} columns")
                    yield _Row(line, dict(zip(header, (v.strip() for v in values), strict=True)))
                line = reader.line_num + 1
        except csv.Error as error:
            raise ImportFailed(f"{name}, line {reader.line_num}: not valid CSV ({error})") from None

    return header, rows()


# Transactions and the record of imported files ----------------------------------------------------

T = TypeVar("T")


def _in_one_transaction(engine: Engine, write: Callable[[Session], T]) -> T:
    """Run ``write`` in one transaction, twice if a concurrent import of the same rows won the race.

    The second run sees the other import's rows and record, so it skips them (or finds the file
    already imported) instead of failing on a unique constraint. A deadlock or serialization failure
    with another import is retried once too (:func:`experiments.db.run_in_transaction`).
    """
    dbapi_integrity_error = engine.dialect.dbapi.IntegrityError  # bulk_insert's COPY raises the driver's
    for attempt in (1, 2):
        try:
            return run_in_transaction(engine, write)
        except (exc.IntegrityError, dbapi_integrity_error):
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _already_imported(session: Session, kind: str, sha256: str, target: str) -> bool:
    return session.scalar(select(func.count()).select_from(ImportRecord).where(
        ImportRecord.kind == kind, ImportRecord.sha256 == sha256, ImportRecord.target == target)) > 0


def _record(session: Session, kind: str, table: _Table, rows: int, *, target: str, sha256: str) -> ImportRecord:
    stored = ImportRecord(kind=kind, target=target, file_name=table.name, sha256=sha256, rows=rows,
                          imported_at=utcnow())
    session.add(stored)
    return stored


def _customer_id(table: _Table, line: int, field: str, value: str) -> str:
    """The stored form of a customer id (experiments.identifiers: the one normalisation)."""
    try:
        return normalise_customer_id(value)
    except InvalidIdentifier as error:
        raise table.error(line, field, str(error)) from None


# Events ---------------------------------------------------------------------------------------


NATURAL_KEY = ("customer_id", "occurred_at", "event_type", "value")


@dataclass(frozen=True)
class _EventKey:
    """An event's natural key (models.Event's uq_events_natural_key, whose column order is NATURAL_KEY)."""

    customer_id: str
    event_type: EventType
    occurred_at: datetime  # naive UTC
    value: Decimal  # quantized to cents, as stored


def import_events(engine: Engine, path: str | Path, *, actor: Actor, chunk: int = CHUNK, progress: bool = False,
                  now: datetime | None = None) -> ImportResult:
    """Import ``customer_id, event_type, occurred_at[, value]`` rows from a CSV (or .csv.gz) file.

    The fast path parses with pyarrow and checks a column at a time into a temporary staging table,
    then adds the events not already stored in one INSERT … SELECT; a file it cannot take (a problem
    to name, times with offsets, amounts to round) is read row by row instead, ``chunk`` rows at a time.
    Either way in one transaction; ``progress`` shows a progress bar. An event dated more than
    :func:`clock_skew` after ``now`` (default: the clock, UTC) is refused.
    """
    require(actor, Permission.IMPORT)
    table = _Table(Path(path))
    scan = table.digest()
    skew = clock_skew()
    latest = (now or utcnow()) + skew

    def write(session: Session) -> ImportResult:
        previous = session.scalar(select(ImportRecord.rows).where(
            ImportRecord.kind == "events", ImportRecord.sha256 == scan.sha256, ImportRecord.target == ""))
        if previous is not None:
            return ImportResult("events", table.name, previous, 0, 0, True)
        table.require(EVENT_COLUMNS)
        # Recorded first (its row count once known): the write opens the transaction, which on SQLite
        # the savepoint below must sit inside (sqlite3 begins one only before a write, and a SAVEPOINT
        # outside one is a transaction of its own, committed by its RELEASE); a concurrent import of the
        # same file waits on the record's key and then finds the file imported.
        imported = _record(session, "events", table, 0, target="", sha256=scan.sha256)
        session.flush()
        # Events above this id are this import's own: a repeat of one is a repeat within the file.
        last_id_before = session.scalar(select(func.max(Event.id))) or 0
        with progress_bar(progress) as bar:
            task = bar.add_task(f"importing {table.name}", total=None)
            savepoint = session.begin_nested()
            try:
                rows, inserted, skipped = _load_events_fast(session, table, latest, lambda n: bar.advance(task, n))
                savepoint.commit()
            except _Recheck:
                savepoint.rollback()
                bar.reset(task)
                rows, inserted, skipped = _load_events_exact(session, table, latest, skew, last_id_before, chunk,
                                                             lambda n: bar.advance(task, n))
        imported.rows = rows
        record(session, actor, Action.IMPORT_EVENTS, table.name, file=table.name, rows=rows, sha256=scan.sha256)
        late = _late_unsubscribes(session, last_id_before) if inserted else 0
        return ImportResult("events", table.name, rows, inserted, skipped, False, late_unsubscribes=late)

    return _in_one_transaction(engine, write)


def _load_events_exact(session: Session, table: _Table, latest: datetime, skew: timedelta, last_id_before: int,
                       chunk: int, advance: Callable[[int], None]) -> tuple[int, int, int]:
    """Row by row, ``chunk`` rows at a time: (rows, inserted, skipped as already stored)."""
    scan = table.scan()  # the bytes and the CSV structure first, as the fast path did not name them
    inserted = skipped = 0
    for rows in table.chunks(chunk):
        events = _parse_events(table, rows, latest, skew)
        stored = _stored_events(session, events, last_id_before)
        new = [e for e in events if e not in stored]
        skipped += sum(1 for e in events if stored.get(e) is False)
        bulk_insert(session, Event, [
            dict(customer_id=e.customer_id, event_type=e.event_type, occurred_at=e.occurred_at, value=e.value)
            for e in new
        ])
        inserted += len(new)
        advance(len(rows))
    return scan.rows, inserted, skipped


# What the fast path takes as is (anything else goes row by row): local times without an offset, amounts
# ≥ 0 of at most 12 digits and 2 decimals (no rounding to do; below MAX_MONEY).
LOCAL_TIME = r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?$"
PLAIN_AMOUNT = r"^\d{1,12}(\.\d{1,2})?$"


def _load_events_fast(session: Session, table: _Table, latest: datetime,
                      advance: Callable[[int], None]) -> tuple[int, int, int]:
    """(rows, inserted, skipped as already stored); raises _Recheck for anything to word or convert."""
    if session.connection().dialect.name not in ("sqlite", "postgresql"):
        raise _Recheck  # insert_new_rows is spelled for these two; the row-by-row path works anywhere
    staging = SqlTable("import_events", MetaData(), Column("customer_id", String(MAX_ID_LENGTH)),
                       Column("event_type", String(16)), Column("occurred_at", DateTime), Column("value", Money),
                       prefixes=["TEMPORARY"])
    connection = session.connection()
    without_jit(connection)
    with_sort_memory(connection)
    staging.create(connection)
    rows = 0
    before = table.stat()
    kind = loader_kind(session)
    with bulk_loader(session, staging) as store:
        for batch in _read_ahead(prepare(kind, block) for block in _checked_events(table, latest)):
            store(batch)
            rows += batch.rows
            advance(batch.rows)
    if table.stat() != before:
        raise ImportFailed(f"{table.name}: the file changed while it was being imported; import it again")
    analyze_table(connection, staging.name)
    staged = staging.c
    present = exists().where(Event.customer_id == staged.customer_id, Event.occurred_at == staged.occurred_at,
                             type_coerce(Event.event_type, String) == staged.event_type, Event.value == staged.value)
    # Already stored, each counted once (a repeat within the file counts once): few rows to make distinct.
    skipped = session.scalar(select(func.count()).select_from(select(*staged).where(present).distinct().subquery()))
    # Rows already stored and repeats within the file left out; in the key's order, so the key's B-tree
    # grows page by page rather than at random places.
    inserted = insert_new_rows(connection, Event.__table__, staging, NATURAL_KEY)
    staging.drop(connection)
    return rows, inserted, skipped


def _checked_events(table: _Table, latest: datetime) -> Iterator[pa.RecordBatch]:
    """The fast path's blocks: customer id, event type, occurred_at (naive UTC), value (cents)."""
    columns = [*EVENT_COLUMNS, *(["value"] if "value" in table.header else [])]
    allowed = pa.array([t.value for t in EventType])
    zone = settings().timezone.key
    for block in table.blocks(columns):
        kinds = pc.utf8_lower(pc.utf8_trim(block["event_type"], characters=_SPACE))
        times = pc.utf8_trim(block["occurred_at"], characters=_SPACE)
        if not (pc.all(pc.is_in(kinds, allowed)).as_py() is not False
                and pc.all(pc.match_substring_regex(times, LOCAL_TIME)).as_py() is not False):
            raise _Recheck
        try:
            at = pc.cast(pc.assume_timezone(pc.cast(times, pa.timestamp("us")), zone, ambiguous="raise",
                                            nonexistent="raise"), pa.timestamp("us"))
        except pa.ArrowInvalid:
            raise _Recheck from None
        if block.num_rows and pc.max(at).as_py() > latest:
            raise _Recheck
        if "value" in columns:
            amounts = pc.utf8_trim(block["value"], characters=_SPACE)
            amounts = pc.if_else(pc.equal(amounts, ""), "0", amounts)
            if pc.all(pc.match_substring_regex(amounts, PLAIN_AMOUNT)).as_py() is False:
                raise _Recheck
            values = pc.cast(amounts, pa.decimal128(14, 2))
        else:
            values = pa.array([Decimal("0.00")] * block.num_rows, pa.decimal128(14, 2))
        yield pa.RecordBatch.from_arrays([_fast_ids(block["customer_id"]), kinds, at, values],
                                         names=["customer_id", "event_type", "occurred_at", "value"])


def _parse_events(table: _Table, rows: Iterable[_Row], latest: datetime, skew: timedelta) -> list[_EventKey]:
    """Validated events in file order, none after ``latest`` (naive UTC); a repeat within the rows counts once."""
    allowed = {t.value: t for t in EventType}
    events: dict[_EventKey, None] = {}
    for row in rows:
        line, values = row.line, row.values
        customer = _customer_id(table, line, "customer_id", values["customer_id"])
        event_type = allowed.get(values["event_type"].lower())
        if event_type is None:
            raise table.error(line, "event_type", f"unknown event type {values['event_type']!r}; "
                                                  f"allowed: {', '.join(allowed)}")
        occurred_at = _timestamp(table, line, values["occurred_at"])
        if occurred_at > latest:
            raise table.error(line, "occurred_at", f"{values['occurred_at']} is in the future (more than "
                              f"{skew.total_seconds() / 60:g} minutes after now; RECALL_CLOCK_SKEW_MINUTES)")
        amount = _money(table, line, values.get("value", ""))
        events.setdefault(_EventKey(customer, event_type, occurred_at, amount))
    return list(events)


def _timestamp(table: _Table, line: int, value: str) -> datetime:
    """ISO date or date-time; local time (settings().timezone) unless it carries an offset; → naive UTC."""
    try:
        return to_stored_utc(datetime.fromisoformat(value))
    except (ValueError, OverflowError):
        raise table.error(line, "occurred_at", f"not an ISO date-time such as 2026-12-01 10:00: {value!r}") from None


def _money(table: _Table, line: int, value: str) -> Decimal:
    """A ¥ amount ≥ 0 in cents; empty means 0 (most events carry no amount)."""
    if not value:
        return Decimal("0.00")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise table.error(line, "value", f"not a number: {value!r}") from None
    if not amount.is_finite():
        raise table.error(line, "value", f"not a finite number: {value!r}")
    if amount < 0:
        raise table.error(line, "value", f"negative value {value} (values are ¥ amounts ≥ 0)")
    cents = amount.quantize(CENT) + 0 if amount < MAX_MONEY else MAX_MONEY  # + 0 turns -0.00 into 0.00
    if cents >= MAX_MONEY:
        raise table.error(line, "value", f"value {value} is too large (at most {MAX_MONEY - CENT:,})")
    return cents


def _stored_events(session: Session, events: Sequence[_EventKey], last_id_before: int) -> dict[_EventKey, bool]:
    """The events of ``events`` already stored, each with whether this import stored it (an earlier
    chunk: a repeat within the file) or it was there before.

    Looked up by customer and the chunk's time range (an index range scan on every backend; exact
    (customer, time) pairs made PostgreSQL's planner scan the whole table); only the chunk's own keys
    are kept from what comes back, so memory stays bounded by the chunk.
    """
    if not events:
        return {}
    wanted = set(events)
    customers = sorted({e.customer_id for e in events})
    first, last = min(e.occurred_at for e in events), max(e.occurred_at for e in events)
    found: dict[_EventKey, bool] = {}
    for start in range(0, len(customers), KEY_CHUNK):
        rows = session.execute(
            select(Event.customer_id, Event.event_type, Event.occurred_at, Event.value, Event.id).where(
                Event.customer_id.in_(customers[start:start + KEY_CHUNK]),
                Event.occurred_at.between(first, last),
            )
        )
        for c, t, at, v, i in rows:
            key = _EventKey(c, t, at, Decimal(v).quantize(CENT))
            if key in wanted:
                found[key] = i > last_id_before
    return found


def _late_unsubscribes(session: Session, last_id_before: int) -> int:
    """Sends scheduled after a customer had already unsubscribed, for the customers this import stored
    an unsubscribe of: the unsubscribe came in late. One statement: no list of customers in memory."""
    unsubscribed_now = select(Event.customer_id).where(Event.id > last_id_before,
                                                       Event.event_type == EventType.UNSUBSCRIBE)
    return session.scalar(select(func.count()).select_from(Send).where(
        Send.customer_id.in_(unsubscribed_now),
        Send.scheduled_at > select(func.min(Event.occurred_at)).where(
            Event.customer_id == Send.customer_id, Event.event_type == EventType.UNSUBSCRIBE
        ).scalar_subquery(),
    )) or 0


# Results of a test run elsewhere -------------------------------------------------------------------
#
# The fast path parses the file with pyarrow's CSV reader, a block at a time, and checks each block a
# column at a time (vectorized): no Python code runs per row. It only *detects* a problem; then the
# file is read again by the exact reader above (``_Table``: the editor's line numbers, whatever blank
# lines or values spanning lines the file has) and checked row by row (``_parse_results``), which words
# the first bad row. A file only the exact reader can parse (a line of spaces, say) imports that way.

TRUE_WORDS = ("1", "true", "t", "yes", "y", "是")  # binary outcomes as pandas, BigQuery and spreadsheets write them
FALSE_WORDS = ("0", "false", "f", "no", "n", "否")
MAX_VALUE = 1e9  # |a result value| at most (¥ amounts, counts): 1e308 would turn sums, and the report, into ∞
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_SPACE = " \t\r\n\u3000\u00a0\ufeff"  # the white space identifiers strip
# Bytes of CSV parsed at a time by the fast path: memory is bounded by this (and pyarrow's read-ahead of a few
# blocks). Reading 10M events: 8 MB blocks peaked at 634 MB, 2 MB at 328 MB, for the same CPU.
BLOCK_SIZE = 2 << 20


@dataclass(frozen=True)
class _Columns:
    """Which columns of a results file mean what (checked once, before the file is read)."""

    variant: str
    metrics: tuple[str, ...]
    covariates: tuple[str, ...]
    segments: tuple[str, ...]
    customer_id: str | None  # None: the data row number (1, 2, …) is the customer id
    factors: tuple[str, ...] = ()  # a factorial's factor columns: each row's level (empty for the control)

    @property
    def numeric(self) -> tuple[str, ...]:
        return self.metrics + self.covariates

    @property
    def read(self) -> list[str]:
        return list(dict.fromkeys(c for c in (self.customer_id, self.variant, *self.numeric, *self.segments,
                                              *self.factors) if c))


@dataclass(frozen=True)
class _Customer:
    customer_id: str
    label: str
    values: dict[str, float]  # metric or covariate → value
    segments: dict[str, str]


class _Recheck(Exception):
    """The fast path found a problem (or could not parse the file): read it again row by row."""


@dataclass
class _Loaded:
    """What a load stored: rows, which numeric columns held only 0 and 1, the distinct factor levels, the
    sufficient statistics of every cell (variant, variant × segment value), and the content's SHA-256."""

    sums: result_tables.CellSums
    numeric: tuple[str, ...]  # the value columns' names, in stored order
    rows: int = 0
    binary: dict[str, bool] = field(default_factory=dict)
    levels: set[tuple[str, ...]] = field(default_factory=set)  # distinct (label, level of each factor)
    sha256: str = ""

    @classmethod
    def of(cls, columns: _Columns) -> _Loaded:
        values = [result_tables.value_column(i) for i in range(len(columns.numeric))]
        segments = {result_tables.segment_column(i): s for i, s in enumerate(columns.segments)}
        return cls(result_tables.CellSums(values, segments), columns.numeric)

    @property
    def labels(self) -> dict[str, int]:
        """Customers per label."""
        return self.sums.counts()

    def add(self, rows: pa.Table) -> None:
        """A block of stored rows (:meth:`_Block.stored`'s columns)."""
        self.sums.add(rows)
        self.rows += rows.num_rows
        for i, name in enumerate(self.numeric):
            if self.binary.get(name, True):
                values = result_tables.numpy_view(rows[result_tables.value_column(i)])
                self.binary[name] = bool(((values == 0) | (values == 1)).all())

    def add_levels(self, labels: pa.Array, levels: dict[str, pa.Array]) -> None:
        if levels:
            self.levels |= _distinct_levels(labels, levels)


def import_results(
    engine: Engine,
    path: str | Path,
    *,
    actor: Actor,
    experiment: str,
    variant_column: str,
    control: str,
    metrics: Sequence[str],
    id_column: str | None = None,
    covariates: Sequence[str] = (),
    segments: Sequence[str] = (),
    shares: dict[str, float] | None = None,
    channel: str | None = None,
    factors: Sequence[str] = (),
    chunk: int = CHUNK,
    progress: bool = False,
) -> ImportResult:
    """Create experiment ``experiment`` (imported, stopped) from per-customer results, one row per customer.

    Variants are the labels of ``variant_column``: ``control`` first, then the others sorted. Shares are
    ``shares`` (one per label, summing to 1) or equal; ``channel`` is what the contacted variants used.
    The rows are stored as blocks of the experiment's own (:mod:`experiments.result_tables`), written
    and published with the experiment in one transaction.
    ``chunk``: rows at a time when the file is read row by row; ``progress`` shows a progress bar.
    ``factors``: a factorial's factor columns, each holding the row's level (empty for the control):
    the cells' levels are checked (:func:`_factorial_design`) and stored with the experiment.

    The same file imported again with the same arguments changes nothing. The content is hashed while it
    is read (one pass); only when the experiment already exists is it hashed first, to tell the same
    import again from a clash of names.
    """
    require(actor, Permission.IMPORT)
    columns = _results_columns(experiment, variant_column, metrics, id_column, covariates, segments, channel,
                               factors)
    table = _Table(Path(path))
    table.head()
    arguments = dict(experiment=experiment, variant_column=variant_column, control=control, metrics=list(metrics),
                     id_column=id_column, covariates=list(covariates), segments=list(segments), shares=shares,
                     channel=channel, **({"factors": list(factors)} if factors else {}))

    def write(session: Session) -> ImportResult:
        if session.scalar(select(Experiment.id).where(Experiment.name == experiment)) is not None:
            key = _arguments_key(table.digest().sha256, **arguments)
            previous = session.scalar(select(ImportRecord.rows).where(
                ImportRecord.kind == "results", ImportRecord.sha256 == key, ImportRecord.target == experiment))
            if previous is not None:
                return ImportResult("results", table.name, previous, 0, 0, True, experiment)
            raise ImportFailed(f"{table.name}: experiment {experiment!r} already exists; choose another --experiment")
        # A record without its experiment (deleted since): import again, recording afresh.
        session.execute(delete(ImportRecord).where(ImportRecord.kind == "results", ImportRecord.target == experiment))
        table.require(columns.read)
        stored = _store_experiment(session, table, columns, experiment)
        loaded = _load(session, table, columns, stored.id, chunk, progress)
        if not loaded.rows:
            raise ImportFailed(f"{table.name}: no data rows")
        labels = _labels(table, columns, loaded, control, shares)
        _store_variants(session, stored, labels, _shares(labels, shares), control, channel)
        if columns.factors:
            from experiments.factorial import design_to_json

            design = _factorial_design(table, columns, loaded, control)
            stored.spec_json = json.dumps({"factorial": design_to_json(design)}, ensure_ascii=False)
        for metric in stored.metrics:
            metric.kind = MetricKind.BINARY if loaded.binary[metric.name] else MetricKind.CONTINUOUS
        session.add(ResultTable(experiment_id=stored.id, segments=json.dumps(list(columns.segments), ensure_ascii=False),
                                rows=loaded.rows))
        result_tables.store_sums(session.connection(), stored.id, loaded.sums)
        _record(session, "results", table, loaded.rows, target=experiment,
                sha256=_arguments_key(loaded.sha256, **arguments))
        record(session, actor, Action.IMPORT_RESULTS, experiment, file=table.name, rows=loaded.rows,
               sha256=loaded.sha256)
        return ImportResult("results", table.name, loaded.rows, loaded.rows, 0, False, experiment,
                            warnings=_small_labels(table, columns, loaded))

    return _in_one_transaction(engine, write)


def _load(session: Session, table: _Table, columns: _Columns, experiment_id: int, chunk: int,
          progress: bool) -> _Loaded:
    """Validate and store every row: the fast path, or the exact one when the fast path finds a problem."""
    with progress_bar(progress) as bar:
        task = bar.add_task(f"importing {table.name}", total=None)
        savepoint = session.begin_nested()
        try:
            loaded = _load_fast(session, table, columns, experiment_id, lambda n: bar.advance(task, n))
            savepoint.commit()
            return loaded
        except _Recheck:
            savepoint.rollback()  # drops the blocks stored so far
        bar.reset(task)
        return _load_exact(session, table, columns, experiment_id, chunk, lambda n: bar.advance(task, n))


@dataclass(frozen=True)
class _Block:
    """A block of rows read and checked by the fast path, as the columns to store."""

    customer_ids: pa.Array
    labels: pa.Array  # dictionary-encoded, as segments
    numbers: dict[str, pa.Array]
    segments: dict[str, pa.Array]
    levels: dict[str, pa.Array] = field(default_factory=dict)  # factor → each row's level, trimmed

    def stored(self) -> pa.RecordBatch:
        """The rows as :mod:`experiments.result_tables` stores them."""
        return pa.RecordBatch.from_arrays(
            [self.customer_ids, self.labels, *self.numbers.values(), *self.segments.values()],
            names=["customer_id", "variant", *[result_tables.value_column(i) for i in range(len(self.numbers))],
                   *[result_tables.segment_column(i) for i in range(len(self.segments))]])


@dataclass
class _Blocks:
    """Checked rows on their way to the database, cut into blocks of exactly ROWS_PER_BLOCK rows (the last
    fewer) whichever reader made them, so both store the same blocks."""

    pending: list[pa.RecordBatch] = field(default_factory=list)
    rows: int = 0

    def add(self, batch: pa.RecordBatch) -> Iterator[pa.Table]:
        """The blocks ``batch`` completes."""
        self.pending.append(batch)
        self.rows += batch.num_rows
        while self.rows >= result_tables.ROWS_PER_BLOCK:
            rows = pa.Table.from_batches(self.pending)
            self.pending = rows.slice(result_tables.ROWS_PER_BLOCK).to_batches()
            self.rows -= result_tables.ROWS_PER_BLOCK
            yield rows.slice(0, result_tables.ROWS_PER_BLOCK)

    def finish(self) -> Iterator[pa.Table]:
        if self.rows:
            yield pa.Table.from_batches(self.pending)
        self.pending, self.rows = [], 0


def _one_piece(rows: pa.Table) -> pa.Table:
    """Each column one array, and each label column's dictionary the values it uses, sorted: the same block
    byte for byte whichever reader, in pieces of whatever size, made the rows."""
    rows = rows.unify_dictionaries().combine_chunks()
    return pa.Table.from_arrays([_sorted_dictionary(c.chunk(0)) if pa.types.is_dictionary(c.type) else c.chunk(0)
                                 for c in rows.columns], names=rows.column_names)


def _sorted_dictionary(labels: pa.DictionaryArray) -> pa.DictionaryArray:
    codes = result_tables.numpy_view(labels.indices)
    values = labels.dictionary.to_pylist()
    order = sorted(np.flatnonzero(np.bincount(codes, minlength=len(values))).tolist(), key=values.__getitem__)
    remap = np.zeros(len(values), np.int32)
    remap[order] = np.arange(len(order), dtype=np.int32)
    return pa.DictionaryArray.from_arrays(result_tables.arrow_view(remap[codes]),
                                          labels.dictionary.take(result_tables.arrow_view(np.array(order, np.int32))))


def _store(connection: Connection, loaded: _Loaded, experiment_id: int, seq: int, rows: pa.Table) -> None:
    """Sum a block and store it (encoding it releases the GIL: the reading thread meanwhile parses on)."""
    rows = _one_piece(rows)
    loaded.add(rows)
    result_tables.store_block(connection, experiment_id, seq, rows.num_rows, result_tables.encode_block(rows))


def _checked_blocks(table: _Table, columns: _Columns) -> Iterator[_Block]:
    rows = 0
    for block in table.hashed_blocks(columns.read):
        customer_ids = (_fast_ids(block[columns.customer_id]) if columns.customer_id
                        else pc.cast(_row_numbers(rows + 1, block.num_rows), pa.string()))
        numbers = {m: _fast_numbers(block[m], non_negative=True) for m in columns.metrics}
        numbers |= {c: _fast_numbers(block[c], non_negative=False) for c in columns.covariates}
        rows += block.num_rows
        yield _Block(customer_ids, _fast_names(block[columns.variant]), numbers,
                     {s: _fast_names(block[s]) for s in columns.segments},
                     {f: pc.utf8_trim(block[f], characters=_SPACE) for f in columns.factors})


def _row_numbers(first: int, n: int) -> pa.Array:
    """first, first + 1, …: the customer ids of a file without an id column."""
    return result_tables.arrow_view(np.arange(first, first + n, dtype=np.int64))


def _read_ahead(blocks: Iterator[T]) -> Iterator[T]:
    """``blocks``, the next one prepared by a thread while the caller stores this one: pyarrow parses and
    checks without holding the GIL, so reading overlaps the database's writing (measured in
    benchmarks/imports.py)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(next, blocks, None)
        while (block := pending.result()) is not None:
            pending = pool.submit(next, blocks, None)
            yield block


def _load_fast(session: Session, table: _Table, columns: _Columns, experiment_id: int,
               advance: Callable[[int], None]) -> _Loaded:
    loaded = _Loaded.of(columns)
    ids = _Repeats()
    before = table.stat()

    def checked() -> Iterator[pa.Table]:
        """Runs on the reading thread: parse and check while the session's thread sums, encodes and writes."""
        blocks = _Blocks()
        for block in _checked_blocks(table, columns):
            ids.add(block.customer_ids)
            loaded.add_levels(block.labels, block.levels)
            yield from blocks.add(block.stored())
        yield from blocks.finish()

    connection = session.connection()
    for seq, rows in enumerate(_read_ahead(checked())):
        _store(connection, loaded, experiment_id, seq, rows)
        advance(rows.num_rows)
    if ids.found():
        raise _Recheck  # a customer appears twice (or two ids share a hash): the exact path tells
    if table.stat() != before:
        raise ImportFailed(f"{table.name}: the file changed while it was being imported; import it again")
    assert table.scanned is not None
    loaded.sha256 = table.scanned.sha256
    return loaded


# SplitMix64's multipliers: each 8 bytes of an id are folded into its hash with a multiply-xorshift round.
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


class _Repeats:
    """Whether a customer id appears twice, block by block on the reading thread: each id's 64-bit hash
    (:func:`_id_hashes`, numpy over the Arrow ids' bytes), sorted once at the end. 8 bytes per customer
    instead of a hash table of the ids: on 2M ids 0.06 s and 16 MB, against 0.37 s for pyarrow's
    count_distinct (and the ids kept), or 0.3 s of ``import duckdb`` alone (it imports pandas) for DuckDB's
    ``hash``. Two ids of one hash (about 1 in 10⁷ at 2M customers) send the file to the exact reader,
    which tells a repeat from a coincidence."""

    def __init__(self) -> None:
        self._hashes: list[np.ndarray] = []

    def add(self, ids: pa.Array) -> None:
        self._hashes.append(_id_hashes(ids))

    def found(self) -> bool:
        if not self._hashes:
            return False
        hashes = np.concatenate(self._hashes)
        self._hashes = []
        hashes.sort()
        return bool((hashes[1:] == hashes[:-1]).any())


def _id_hashes(ids: pa.Array) -> np.ndarray:
    """A 64-bit hash of each string's UTF-8 bytes, vectorized: each string copied from the data buffer into
    a row of whole 8-byte words (a window per row start, zeroed past its length; the length is hashed
    too), the words folded in one column at a time. 0.04 s for 2M ids."""
    ids = ids.cast(pa.string())
    if not len(ids):
        return np.empty(0, np.uint64)
    offsets = np.frombuffer(ids.buffers()[1], np.int32, len(ids) + 1, ids.offset * 4)
    lengths = np.diff(offsets)
    width = max(8, -(-int(lengths.max()) // 8) * 8)
    data = np.frombuffer(ids.buffers()[2], np.uint8, offsets[-1]) if offsets[-1] else np.empty(0, np.uint8)
    rows = np.lib.stride_tricks.sliding_window_view(np.concatenate([data, np.zeros(width, np.uint8)]),
                                                    width)[offsets[:-1]]
    rows &= np.tril(np.full((width + 1, width), 0xFF, np.uint8), -1)[lengths]  # row L keeps L bytes
    hashes = lengths.astype(np.uint64) * _MIX[0]
    for word in rows.view(np.uint64).T:  # unsigned multiplication wraps around, as a hash wants
        hashes ^= word
        hashes *= _MIX[1]
        hashes ^= hashes >> np.uint64(31)
    hashes *= _MIX[2]
    hashes ^= hashes >> np.uint64(29)
    return hashes


def _fast_ids(values: pa.Array) -> pa.Array:
    """Customer ids as :func:`normalise_customer_id` stores them; raises _Recheck when one has none."""
    if not pc.all(pc.string_is_ascii(values)).as_py():
        try:  # NFC, full-width spaces: the one normalisation, value by value
            return pa.array([normalise_customer_id(v) for v in values.to_pylist()], pa.string())
        except InvalidIdentifier:
            raise _Recheck from None
    stripped = pc.ascii_trim(values, characters=_SPACE[:4])  # the rest of _SPACE is not ASCII
    lengths = pc.min_max(pc.binary_length(stripped))
    if (lengths["min"].as_py() == 0 or (lengths["max"].as_py() or 0) > MAX_ID_LENGTH
            or not pc.all(pc.ascii_is_printable(stripped)).as_py()):  # control characters (NUL, tab…)
        raise _Recheck
    return stripped


def _fast_names(values: pa.Array) -> pa.DictionaryArray:
    """Labels or segment values as :func:`check_name` stores them, dictionary-encoded (stored, summed and
    grouped by their index): each distinct value checked once."""
    encoded = pc.dictionary_encode(values)
    distinct = encoded.dictionary.to_pylist()
    try:
        checked = [check_name(v, "label") for v in distinct]
    except InvalidIdentifier:
        raise _Recheck from None
    if checked == distinct:
        return encoded
    return _encoded(checked, encoded.indices)


def _encoded(values: list[str], indices: pa.Array) -> pa.DictionaryArray:
    """Row i holds ``values[indices[i]]``: as a dictionary array, each value once in its dictionary."""
    distinct = list(dict.fromkeys(values))
    position = {value: i for i, value in enumerate(distinct)}
    remap = np.array([position[value] for value in values], np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(remap[indices.to_numpy(zero_copy_only=False)], pa.int32()),
                                          pa.array(distinct, pa.string()))


def _fast_numbers(values: pa.Array, *, non_negative: bool) -> pa.Array:
    """Finite numbers within ±MAX_VALUE (≥ 0 for outcomes), or a binary outcome's word as 1 or 0."""
    try:
        numbers = pc.cast(values, pa.float64())
    except pa.ArrowInvalid:  # words (true, 是…), surrounding spaces, or a value that is no number
        stripped = pc.utf8_lower(pc.utf8_trim(values, characters=_SPACE))
        true, false = pc.is_in(stripped, pa.array(TRUE_WORDS)), pc.is_in(stripped, pa.array(FALSE_WORDS))
        number = pc.match_substring_regex(stripped, NUMBER.pattern)
        if not pc.all(pc.or_(pc.or_(true, false), number)).as_py():
            raise _Recheck from None
        numbers = pc.if_else(true, 1.0, pc.if_else(false, 0.0, pc.cast(pc.if_else(number, stripped, "0"),
                                                                        pa.float64())))
    if len(numbers):
        view = result_tables.numpy_view(numbers)
        lowest, highest = view.min(), view.max()  # NaN in either if anywhere
        if not (-MAX_VALUE <= lowest and highest <= MAX_VALUE and (lowest >= 0 or not non_negative)):
            raise _Recheck
    return numbers


def _load_exact(session: Session, table: _Table, columns: _Columns, experiment_id: int, chunk: int,
                advance: Callable[[int], None]) -> _Loaded:
    """Read and check row by row (the first bad row named exactly), storing the same blocks as the fast path."""
    loaded = _Loaded.of(columns)
    loaded.sha256 = table.digest().sha256  # the content; table.chunks checks that it stays the same
    first_line: dict[str, int] = {}  # customer → line: only on this path, which a well-formed file never takes
    blocks = _Blocks()
    connection = session.connection()
    seq = read = 0

    def store(completed: Iterator[pa.Table]) -> None:
        nonlocal seq
        for rows in completed:
            _store(connection, loaded, experiment_id, seq, rows)
            seq += 1

    for rows in table.chunks(chunk):
        customers = _parse_results(table, columns, rows, read, first_line)
        read += len(customers)
        labels = pc.dictionary_encode(pa.array([c.label for c in customers], pa.string()))
        numbers = {n: pa.array([c.values[n] for c in customers], pa.float64()) for n in columns.numeric}
        segments = {s: pc.dictionary_encode(pa.array([c.segments[s] for c in customers], pa.string()))
                    for s in columns.segments}
        loaded.add_levels(labels, {f: pa.array([r.values[f] for r in rows], pa.string()) for f in columns.factors})
        store(blocks.add(_Block(pa.array([c.customer_id for c in customers], pa.string()), labels, numbers,
                                segments).stored()))
        advance(len(rows))
    store(blocks.finish())
    return loaded


def _results_columns(experiment: str, variant_column: str, metrics: Sequence[str], id_column: str | None,
                     covariates: Sequence[str], segments: Sequence[str], channel: str | None,
                     factors: Sequence[str] = ()) -> _Columns:
    """The arguments, checked before the file is read: they are the user's, not the file's, mistakes."""
    if not EXPERIMENT_NAME.match(experiment):
        raise ImportFailed(f"--experiment: {experiment!r} is not a name: up to 64 letters, digits, '_', '.' or '-', "
                           "starting with a letter or digit")
    if not metrics:
        raise ImportFailed("--metrics: name at least one metric column")
    numeric = [*metrics, *covariates]
    repeated = sorted({n for n in numeric if numeric.count(n) > 1})
    if repeated:
        raise ImportFailed(f"--metrics/--covariates: {', '.join(repeated)} named more than once")
    too_long = [n for n in [*numeric, *segments] if len(n) > MAX_ID_LENGTH]
    if too_long:
        raise ImportFailed(f"--metrics/--covariates/--segments: column names longer than {MAX_ID_LENGTH} "
                           f"characters: {', '.join(too_long)}")
    for name in dict.fromkeys(segments):
        try:
            check_name(name, "segment column name")
        except InvalidIdentifier as error:
            raise ImportFailed(f"--segments: {error}") from None
    if channel is not None and channel not in {c.value for c in Channel}:
        raise ImportFailed(f"--channel: unknown channel {channel!r}; "
                           f"choose one of {', '.join(c.value for c in Channel)}")
    _check_factor_names(factors, [variant_column, *numeric, *segments, *([id_column] if id_column else [])])
    return _Columns(variant_column, tuple(metrics), tuple(covariates), tuple(dict.fromkeys(segments)), id_column,
                    tuple(factors))


def _arguments_key(sha256: str, **arguments: object) -> str:
    """The file's content and the import's arguments: the same import twice is recognised."""
    return hashlib.sha256((sha256 + json.dumps(arguments, sort_keys=True)).encode()).hexdigest()


def _parse_results(table: _Table, columns: _Columns, rows: list[_Row], before: int,
                   first_line: dict[str, int]) -> list[_Customer]:
    """Validated customers of one chunk, row by row; ``before`` data rows came earlier, and
    ``first_line`` maps every customer seen so far to its line (updated)."""
    customers = []
    for number, row in enumerate(rows, start=before + 1):
        line, values = row.line, row.values
        if columns.customer_id:
            customer_id = _customer_id(table, line, columns.customer_id, values[columns.customer_id])
        else:
            customer_id = str(number)
        if customer_id in first_line:
            raise table.error(line, columns.customer_id or "row", f"customer {customer_id!r} appears twice "
                                                                  f"(first on line {first_line[customer_id]})")
        first_line[customer_id] = line
        label = _name(table, line, columns.variant, values[columns.variant], "variant label")
        numbers = {m: _number(table, line, m, values[m], non_negative=True) for m in columns.metrics}
        numbers |= {c: _number(table, line, c, values[c], non_negative=False) for c in columns.covariates}
        labels = {s: _name(table, line, s, values[s], "segment value") for s in columns.segments}
        customers.append(_Customer(customer_id, label, numbers, labels))
    return customers


def _name(table: _Table, line: int, field: str, value: str, what: str) -> str:
    try:
        return check_name(value, what)
    except InvalidIdentifier as error:
        raise table.error(line, field, str(error)) from None


def _number(table: _Table, line: int, field: str, value: str, *, non_negative: bool) -> float:
    """A finite number within ±MAX_VALUE, or a binary outcome's word (true/false, yes/no, t/f, y/n, 是/否)
    as 1 or 0; outcomes (metrics) are counts or amounts, so also ≥ 0. Covariates may be negative."""
    word = value.strip(_SPACE).lower()
    if not word:
        raise table.error(line, field, "empty value")
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return 1.0 if word in TRUE_WORDS else 0.0
    if not NUMBER.match(word):
        try:
            float(word)
        except ValueError:
            raise table.error(line, field, f"not a number: {value!r} (binary outcomes may also be written "
                                           "true/false, yes/no, t/f, y/n or 是/否)") from None
        raise table.error(line, field, f"not a finite number: {value!r}")
    number = float(word)
    if not abs(number) <= MAX_VALUE:
        raise table.error(line, field, f"value {value} is out of range (at most {MAX_VALUE:,.0f} in absolute value)")
    if non_negative and number < 0:
        raise table.error(line, field, f"negative value {value} (outcomes are counts or amounts ≥ 0)")
    return number + 0.0  # -0.0 → 0.0


def _labels(table: _Table, columns: _Columns, loaded: _Loaded, control: str,
            shares: dict[str, float] | None) -> list[str]:
    """The variant labels: the control first, then the others sorted (stable whatever the row order).
    With ``--shares`` (the design), a label the design does not name is refused with its first line."""
    found = set(loaded.labels)
    if control not in found:
        raise ImportFailed(f"{table.name}, field {columns.variant}: the control label {control!r} does not occur; "
                           f"labels found: {', '.join(sorted(found))}")
    if shares is not None:
        missing, unknown = found - set(shares), set(shares) - found
        if missing or unknown:
            where = ""
            if missing:
                first = min(missing, key=lambda label: table.first_line(columns.variant, label))
                where = (f" ({table.name}, line {table.first_line(columns.variant, first)}, field {columns.variant}: "
                         f"variant label {first!r} is not in the design)")
            raise ImportFailed(f"--shares: give one share per label; missing: {', '.join(sorted(missing)) or '-'}, "
                               f"unknown: {', '.join(sorted(unknown)) or '-'}{where}")
    return [control, *sorted(found - {control})]


def _small_labels(table: _Table, columns: _Columns, loaded: _Loaded) -> tuple[str, ...]:
    """Warnings for labels held by so few customers that they are most likely typos."""
    return tuple(
        f"{table.name}, field {columns.variant}: label {label!r} is held by only {n:,} customer{'s' * (n != 1)} "
        f"(fewer than {result_tables.SMALL_ARM_CUSTOMERS} and than {result_tables.SMALL_ARM_SHARE:.0%} of the file): "
        "a typo? The report's sample-ratio check counts it as a mismatch"
        for label, n in sorted(loaded.labels.items()) if result_tables.is_small_arm(n, loaded.rows))


def _shares(labels: list[str], shares: dict[str, float] | None) -> dict[str, float]:
    if shares is None:
        return {label: 1 / len(labels) for label in labels}
    total = sum(shares.values())
    if any(not (0 < s <= 1) for s in shares.values()) or abs(total - 1) > 1e-6:
        raise ImportFailed(f"--shares: shares must be positive and sum to 1; they sum to {total:g}")
    return {label: shares[label] for label in labels}


def _store_experiment(session: Session, table: _Table, columns: _Columns, name: str) -> Experiment:
    """The experiment and its metric definitions, flushed so they have ids; the variants follow once
    every label is known, and metric kinds once every value has been read (placeholders until then)."""
    now = utcnow()
    experiment = Experiment(
        name=name, hypothesis=f"imported from {table.name}", cohort="imported", primary_metric=columns.metrics[0],
        salt=name, status=ExperimentStatus.STOPPED, source=ExperimentSource.IMPORTED, spec_json="{}",
        created_at=now, launched_at=now,
    )
    roles = [(m, MetricRole.METRIC) for m in columns.metrics] + [(c, MetricRole.COVARIATE) for c in columns.covariates]
    experiment.metrics = [
        MetricDefinition(position=i, name=column, kind=MetricKind.BINARY, role=role)
        for i, (column, role) in enumerate(roles)
    ]
    session.add(experiment)
    session.flush()
    return experiment


def _store_variants(session: Session, experiment: Experiment, labels: list[str], shares: dict[str, float],
                    control: str, channel: str | None) -> None:
    experiment.variants = [
        Variant(position=i, name=label, share=shares[label], is_control=label == control,
                channel=None if label == control else channel, coupon=Decimal("0"), template="")
        for i, label in enumerate(labels)
    ]
    session.flush()


# Factorial results (--factors) --------------------------------------------------------------------
#
# Each load collects the distinct (label, level of each factor) combinations, a block at a time and
# vectorized (few: one per cell when the file is right). A combination that breaks a rule sends us
# through the file once more, row by row, only to name the first line that breaks it.


def _check_factor_names(factors: Sequence[str], others: Sequence[str]) -> None:
    repeated = sorted({f for f in factors if factors.count(f) > 1})
    if repeated:
        raise ImportFailed(f"--factors: {', '.join(repeated)} named more than once")
    taken = [f for f in factors if f in others]
    if taken:
        raise ImportFailed(f"--factors: {', '.join(taken)} is already the variant, id, a metric, covariate or "
                           "segment column")
    for name in factors:
        try:
            check_name(name, "factor column name")
        except InvalidIdentifier as error:
            raise ImportFailed(f"--factors: {error}") from None


def _distinct_levels(labels: pa.Array, levels: dict[str, pa.Array]) -> set[tuple[str, ...]]:
    """The distinct (label, level, …) rows of a block, grouped by pyarrow (no Python per row)."""
    names = ["__label", *levels]
    grouped = pa.table([labels, *levels.values()], names=names).group_by(names).aggregate([])
    return set(zip(*(grouped[n].to_pylist() for n in names), strict=True))


def _factorial_design(table: _Table, columns: _Columns, loaded: _Loaded, control: str):  # noqa: ANN202 - a Design
    """The cells' levels, checked: the control has none, every contacted row its cell's one level of
    each factor, at most MAX_CELLS cells, and the cells a full factorial or a regular fraction
    (:func:`experiments.factorial.checked_design`). Errors name the file, line and field."""
    from experiments.factorial import MAX_CELLS, DesignProblem, checked_design

    cells: dict[str, set[tuple[str, ...]]] = {}
    for label, *levels in loaded.levels:
        cells.setdefault(label, set()).add(tuple(levels))
    contacted = {label: found for label, found in cells.items() if label != control}
    if (any(level for levels in cells.get(control, set()) for level in levels)
            or any(len(found) > 1 or not all(next(iter(found))) for found in contacted.values())
            or len(contacted) > MAX_CELLS):
        _first_bad_level(table, columns, control)
        raise ImportFailed(f"{table.name}, fields {', '.join(columns.factors)}: the cells' levels are inconsistent")
    try:
        return checked_design({label: dict(zip(columns.factors, next(iter(found)), strict=True))
                               for label, found in sorted(contacted.items())}, columns.factors)
    except DesignProblem as problem:
        line = table.first_line(problem.factor, problem.level) if problem.factor and problem.level else 0
        where = f", line {line}" if line else ""
        field = problem.factor or ", ".join(columns.factors)
        raise ImportFailed(f"{table.name}{where}, field{'' if problem.factor else 's'} {field}: {problem}") from None


def _first_bad_level(table: _Table, columns: _Columns, control: str) -> None:
    """Read the file row by row and raise at the first row whose levels break a rule."""
    from experiments.factorial import MAX_CELLS

    first: dict[str, tuple[int, tuple[str, ...]]] = {}  # cell → its first line and levels
    for rows in table.chunks(CHUNK):
        for row in rows:
            label = _name(table, row.line, columns.variant, row.values[columns.variant], "variant label")
            levels = tuple(row.values[f] for f in columns.factors)
            for f, level in zip(columns.factors, levels, strict=True):
                if label == control and level:
                    raise table.error(row.line, f, f"the control {control!r} has no level of {f}; got {level!r} "
                                                   "(leave it empty)")
                if label != control and not level:
                    raise table.error(row.line, f, f"empty level: every contacted row names its cell's level of {f}")
            if label == control:
                continue
            if label not in first:
                if len(first) == MAX_CELLS:
                    raise table.error(row.line, columns.variant, f"cell {label!r} is one more than {MAX_CELLS} "
                                                                 "cells: fewer factors or levels")
                first[label] = (row.line, levels)
                continue
            line, expected = first[label]
            for f, level, was in zip(columns.factors, levels, expected, strict=True):
                if level != was:
                    raise table.error(row.line, f, f"cell {label!r} has {f} = {level!r} here but {was!r} on line "
                                                   f"{line}: a cell has one level of each factor")

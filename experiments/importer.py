"""Importing outcomes: events, or per-customer results of a test run elsewhere.

Both imports are atomic and idempotent, and hold bounded memory whatever the file size:

* A bad row rejects the whole file with a message ``FILE, line N, field F: reason``, where N is the
  line in the file (the header is line 1, so the first data row is line 2) — the number an editor shows.
* The file is read twice, as a stream. The first pass hashes the (decompressed) content and checks
  the bytes (gzip, UTF-8) and the CSV structure; the second validates the rows ``chunk`` at a time
  and writes each validated chunk with :func:`experiments.db.bulk_insert` (COPY on PostgreSQL), all
  inside one transaction: an error in a later chunk rolls back the earlier ones, leaving nothing behind.
* The SHA-256 of the content is recorded in ``imports``; the same content imported again changes
  nothing. Events already present (same customer, type, time and value) are skipped and counted, so
  overlapping exports can be imported one after the other; each chunk looks them up in the database
  (where earlier chunks of the same file already are). A results file's customer repeated across
  chunks is caught by the assignments' primary key. No set of every row or customer is ever held.

Files are CSV, optionally gzip-compressed, in UTF-8 (a byte-order mark is tolerated).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import json
import math
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, delete, exc, func, select
from sqlalchemy.orm import Session

from experiments.assignment import progress_bar
from experiments.catalog import Channel
from experiments.config import to_stored_utc
from experiments.db import bulk_insert, foreign_keys_checked_once, session_scope
from experiments.identifiers import InvalidIdentifier, normalise_customer_id
from experiments.models import (
    Assignment,
    Event,
    EventType,
    Experiment,
    ExperimentSource,
    ExperimentStatus,
    ImportRecord,
    MetricDefinition,
    MetricKind,
    MetricRole,
    MetricValue,
    SegmentValue,
    Send,
    Variant,
)
from experiments.store import utcnow

GZIP_MAGIC = b"\x1f\x8b"
EVENT_COLUMNS = ("customer_id", "event_type", "occurred_at")  # "value" is optional (empty → 0)
CENT = Decimal("0.01")
MAX_MONEY = Decimal("1e12")  # models.Money is NUMERIC(14, 2)
MAX_ID_LENGTH = 64  # String lengths of the schema, checked here so PostgreSQL never truncates or fails
MAX_LABEL_LENGTH = 128
EXPERIMENT_NAME = re.compile(r"^\w[\w.\-]{0,63}$")  # a spec's name pattern; 64 characters, the salt's length
KEY_CHUNK = 500  # customers per look-up of existing events (well under every backend's parameter limit)
CHUNK = 50_000  # data rows validated and written at a time: memory is bounded by this, not by the file
READ_BLOCK = 1 << 20  # bytes read from the file at a time
# Results imported from elsewhere were not assigned by our hash; -1 says so (a real bucket is ≥ 0).
IMPORTED_BUCKET = -1


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

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def header(self) -> list[str]:
        assert self.scanned is not None
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
            return next(row.line for row in rows if row.values[column] == value)
        finally:
            content.release()


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
    already imported) instead of failing on a unique constraint.
    """
    dbapi_integrity_error = engine.dialect.dbapi.IntegrityError  # bulk_insert's COPY raises the driver's
    for attempt in (1, 2):
        try:
            with session_scope(engine) as session:
                return write(session)
        except (exc.IntegrityError, dbapi_integrity_error):
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _already_imported(session: Session, kind: str, sha256: str, target: str) -> bool:
    return session.scalar(select(func.count()).select_from(ImportRecord).where(
        ImportRecord.kind == kind, ImportRecord.sha256 == sha256, ImportRecord.target == target)) > 0


def _record(session: Session, kind: str, table: _Table, rows: int, *, target: str, sha256: str) -> None:
    session.add(ImportRecord(kind=kind, target=target, file_name=table.name, sha256=sha256,
                             rows=rows, imported_at=utcnow()))


def _customer_id(table: _Table, line: int, field: str, value: str) -> str:
    try:
        return normalise_customer_id(value)  # the one normalisation: an unsubscribe matches its customer
    except InvalidIdentifier as exc:
        raise table.error(line, field, str(exc)) from None


# Events ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _EventKey:
    """An event's natural key (models.Event's uq_events_natural_key)."""

    customer_id: str
    event_type: EventType
    occurred_at: datetime  # naive UTC
    value: Decimal  # quantized to cents, as stored


def import_events(engine: Engine, path: str | Path, *, chunk: int = CHUNK, progress: bool = False) -> ImportResult:
    """Import ``customer_id, event_type, occurred_at[, value]`` rows from a CSV (or .csv.gz) file.

    Rows are validated and written ``chunk`` at a time in one transaction (bounded memory, still
    atomic); ``progress`` shows a progress bar that advances per chunk.
    """
    table = _Table(Path(path))
    scan = table.scan()

    def write(session: Session) -> ImportResult:
        if _already_imported(session, "events", scan.sha256, ""):
            return ImportResult("events", table.name, scan.rows, 0, 0, True)
        table.require(EVENT_COLUMNS)
        # Events above this id are this import's own: a repeat of one is a repeat within the file.
        last_id_before = session.scalar(select(func.max(Event.id))) or 0
        inserted = skipped = 0
        with progress_bar(progress) as bar:
            task = bar.add_task(f"importing {table.name}", total=scan.rows)
            for rows in table.chunks(chunk):
                events = _parse_events(table, rows)
                stored = _stored_events(session, events, last_id_before)
                new = [e for e in events if e not in stored]
                skipped += sum(1 for e in events if stored.get(e) is False)
                bulk_insert(session, Event, [
                    dict(customer_id=e.customer_id, event_type=e.event_type, occurred_at=e.occurred_at,
                         value=e.value)
                    for e in new
                ])
                inserted += len(new)
                bar.advance(task, len(rows))
        _record(session, "events", table, scan.rows, target="", sha256=scan.sha256)
        late = _late_unsubscribes(session, last_id_before) if inserted else 0
        return ImportResult("events", table.name, scan.rows, inserted, skipped, False, late_unsubscribes=late)

    return _in_one_transaction(engine, write)


def _parse_events(table: _Table, rows: Iterable[_Row]) -> list[_EventKey]:
    """Validated events in file order; a repeat within the rows counts once."""
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


@dataclass(frozen=True)
class _Columns:
    """Which columns of a results file mean what (checked once, before the file is read)."""

    variant: str
    metrics: tuple[str, ...]
    covariates: tuple[str, ...]
    segments: tuple[str, ...]
    customer_id: str | None  # None: the data row number (1, 2, …) is the customer id

    @property
    def numeric(self) -> tuple[str, ...]:
        return self.metrics + self.covariates


@dataclass(frozen=True)
class _Customer:
    customer_id: str
    label: str
    values: dict[str, float]  # metric or covariate → value
    segments: dict[str, str]


def import_results(
    engine: Engine,
    path: str | Path,
    *,
    experiment: str,
    variant_column: str,
    control: str,
    metrics: Sequence[str],
    id_column: str | None = None,
    covariates: Sequence[str] = (),
    segments: Sequence[str] = (),
    shares: dict[str, float] | None = None,
    channel: str | None = None,
    chunk: int = CHUNK,
    progress: bool = False,
) -> ImportResult:
    """Create experiment ``experiment`` (imported, stopped) from per-customer results, one row per customer.

    Variants are the labels of ``variant_column``: ``control`` first, then the others sorted. Shares are
    ``shares`` (one per label, summing to 1) or equal; ``channel`` is what the contacted variants used.
    Each customer is assigned with bucket -1 (not ours to hash), at import time. Rows are validated
    and written ``chunk`` at a time in one transaction; ``progress`` shows a progress bar.
    """
    columns = _results_columns(experiment, variant_column, metrics, id_column, covariates, segments, channel)
    table = _Table(Path(path))
    scan = table.scan(distinct=variant_column)  # the labels: the variants exist before the first row is stored
    key = _arguments_key(scan.sha256, experiment=experiment, variant_column=variant_column, control=control,
                         metrics=list(metrics), id_column=id_column, covariates=list(covariates),
                         segments=list(segments), shares=shares, channel=channel)

    def write(session: Session) -> ImportResult:
        if session.scalar(select(Experiment.id).where(Experiment.name == experiment)) is not None:
            if _already_imported(session, "results", key, experiment):
                return ImportResult("results", table.name, scan.rows, 0, 0, True, experiment)
            raise ImportFailed(f"{table.name}: experiment {experiment!r} already exists; choose another --experiment")
        # A record without its experiment (deleted since): import again, recording afresh.
        session.execute(delete(ImportRecord).where(ImportRecord.kind == "results", ImportRecord.target == experiment))
        table.require([c for c in (columns.customer_id, columns.variant, *columns.numeric, *columns.segments) if c])
        # Labels a row could not carry are left out here; the row's own check names them below.
        valid = sorted(label for label in scan.distinct if label and len(label) <= MAX_LABEL_LENGTH)
        stored = _store_experiment(session, table, columns, experiment, _control_first(valid, control), control,
                                   channel)
        found, binary = _store_rows(session, table, columns, stored, chunk, progress)
        if not found:
            raise ImportFailed(f"{table.name}: no data rows")
        labels = _labels(table, columns, found, control)
        for variant, share in zip(stored.variants, _shares(labels, shares).values(), strict=True):
            variant.share = share
        for metric in stored.metrics:
            metric.kind = MetricKind.BINARY if binary[metric.name] else MetricKind.CONTINUOUS
        _record(session, "results", table, scan.rows, target=experiment, sha256=key)
        return ImportResult("results", table.name, scan.rows, scan.rows, 0, False, experiment)

    return _in_one_transaction(engine, write)


def _control_first(labels: list[str], control: str) -> list[str]:
    return [control, *(label for label in labels if label != control)] if control in labels else labels


def _store_rows(session: Session, table: _Table, columns: _Columns, experiment: Experiment, chunk: int,
                progress: bool) -> tuple[set[str], dict[str, bool]]:
    """Validate and store the rows ``chunk`` at a time: the labels found, and which numeric columns
    held only 0 and 1 (binary metrics).

    A customer repeated within a chunk is caught while validating it; one repeating an earlier chunk
    is caught by the assignments' primary key when the chunk is stored (in a savepoint), and only then
    looked up to name the lines. No set of every customer id is kept.
    """
    rows_total = table.scanned.rows if table.scanned else None
    dbapi_integrity_error = session.get_bind().dialect.dbapi.IntegrityError
    found: set[str] = set()
    binary = dict.fromkeys(columns.numeric, True)
    number = 0  # data rows so far: the customer id when the file has no id column
    with ExitStack() as stack:
        # A large load into PostgreSQL checks the foreign keys once at the end, not per row (as assign does).
        for model, per_customer in ((Assignment, 1), (MetricValue, len(columns.numeric)),
                                    (SegmentValue, len(columns.segments))):
            stack.enter_context(foreign_keys_checked_once(session, model, (rows_total or 0) * per_customer))
        bar = stack.enter_context(progress_bar(progress))
        task = bar.add_task(f"importing {table.name}", total=rows_total)
        for rows in table.chunks(chunk):
            try:
                customers = _parse_results(table, columns, rows, number, {})
            except ImportFailed:
                if number:  # a repeat of an earlier chunk's customer on an earlier line is the first error
                    _parse_results(table, columns, rows, number, _stored_customers(session, experiment.id, table,
                                                                                   columns, rows))
                raise
            savepoint = session.begin_nested()
            try:
                _store_customers(session, experiment, customers)
                savepoint.commit()
            except (exc.IntegrityError, dbapi_integrity_error):
                savepoint.rollback()
                _parse_results(table, columns, rows, number, _stored_customers(session, experiment.id, table,
                                                                               columns, rows))
                raise
            number += len(rows)
            for c in customers:
                found.add(c.label)
            for name in columns.numeric:
                if binary[name]:
                    binary[name] = all(c.values[name] in (0.0, 1.0) for c in customers)
            bar.advance(task, len(rows))
    return found, binary


def _stored_customers(session: Session, experiment_id: int, table: _Table, columns: _Columns,
                      rows: list[_Row]) -> dict[str, int]:
    """Customers of ``rows`` that an earlier chunk already stored, with the line they were first on
    (only called to word an error)."""
    if not columns.customer_id:
        return {}
    candidates = sorted({row.values[columns.customer_id] for row in rows} - {""})
    repeated: list[str] = []
    for start in range(0, len(candidates), KEY_CHUNK):
        repeated += session.scalars(select(Assignment.customer_id).where(
            Assignment.experiment_id == experiment_id,
            Assignment.customer_id.in_(candidates[start:start + KEY_CHUNK])))
    return {c: table.first_line(columns.customer_id, c) for c in repeated}


def _results_columns(experiment: str, variant_column: str, metrics: Sequence[str], id_column: str | None,
                     covariates: Sequence[str], segments: Sequence[str], channel: str | None) -> _Columns:
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
    if channel is not None and channel not in {c.value for c in Channel}:
        raise ImportFailed(f"--channel: unknown channel {channel!r}; choose one of {', '.join(c.value for c in Channel)}")
    return _Columns(variant_column, tuple(metrics), tuple(covariates), tuple(dict.fromkeys(segments)), id_column)


def _arguments_key(sha256: str, **arguments: object) -> str:
    """The file's content and the import's arguments: the same import twice is recognised."""
    return hashlib.sha256((sha256 + json.dumps(arguments, sort_keys=True)).encode()).hexdigest()


def _parse_results(table: _Table, columns: _Columns, rows: list[_Row], before: int,
                   earlier: dict[str, int]) -> list[_Customer]:
    """Validated customers of one chunk; ``before`` data rows came earlier, and ``earlier`` maps the
    chunk's customers already stored by an earlier chunk to their first line."""
    first_seen = dict(earlier)
    customers = []
    for number, row in enumerate(rows, start=before + 1):
        line, values = row.line, row.values
        if columns.customer_id:
            customer_id = _customer_id(table, line, columns.customer_id, values[columns.customer_id])
        else:
            customer_id = str(number)
        if customer_id in first_seen:
            raise table.error(line, columns.customer_id or "row", f"customer {customer_id!r} appears twice "
                                                                  f"(first on line {first_seen[customer_id]})")
        first_seen[customer_id] = line
        label = values[columns.variant]
        if not label:
            raise table.error(line, columns.variant, "empty variant label")
        if len(label) > MAX_LABEL_LENGTH:
            raise table.error(line, columns.variant, f"variant label longer than {MAX_LABEL_LENGTH} characters")
        numbers = {m: _number(table, line, m, values[m], non_negative=True) for m in columns.metrics}
        numbers |= {c: _number(table, line, c, values[c], non_negative=False) for c in columns.covariates}
        for s in columns.segments:
            if len(values[s]) > MAX_LABEL_LENGTH:
                raise table.error(line, s, f"segment value longer than {MAX_LABEL_LENGTH} characters")
        customers.append(_Customer(customer_id, label, numbers, {s: values[s] for s in columns.segments}))
    return customers


def _number(table: _Table, line: int, field: str, value: str, *, non_negative: bool) -> float:
    """A finite number; outcomes (metrics) are counts or amounts, so also ≥ 0. Covariates may be negative."""
    if not value:
        raise table.error(line, field, "empty value")
    try:
        number = float(value)
    except ValueError:
        raise table.error(line, field, f"not a number: {value!r}") from None
    if not math.isfinite(number):
        raise table.error(line, field, f"not a finite number: {value!r}")
    if non_negative and number < 0:
        raise table.error(line, field, f"negative value {value} (outcomes are counts or amounts ≥ 0)")
    return number


def _labels(table: _Table, columns: _Columns, found: set[str], control: str) -> list[str]:
    """The variant labels: the control first, then the others sorted (stable whatever the row order)."""
    if control not in found:
        raise ImportFailed(f"{table.name}, field {columns.variant}: the control label {control!r} does not occur; "
                           f"labels found: {', '.join(sorted(found))}")
    return _control_first(sorted(found), control)


def _shares(labels: list[str], shares: dict[str, float] | None) -> dict[str, float]:
    if shares is None:
        return {label: 1 / len(labels) for label in labels}
    missing, unknown = set(labels) - set(shares), set(shares) - set(labels)
    if missing or unknown:
        raise ImportFailed(f"--shares: give one share per label; missing: {', '.join(sorted(missing)) or '-'}, "
                           f"unknown: {', '.join(sorted(unknown)) or '-'}")
    total = sum(shares.values())
    if any(not (0 < s <= 1) for s in shares.values()) or abs(total - 1) > 1e-6:
        raise ImportFailed(f"--shares: shares must be positive and sum to 1; they sum to {total:g}")
    return {label: shares[label] for label in labels}


def _store_experiment(session: Session, table: _Table, columns: _Columns, name: str, labels: list[str],
                      control: str, channel: str | None) -> Experiment:
    """The experiment, its variants and its metric definitions; flushed so they have ids. Shares and
    metric kinds are set once every row has been read (placeholders until then)."""
    now = utcnow()
    experiment = Experiment(
        name=name, hypothesis=f"imported from {table.name}", cohort="imported", primary_metric=columns.metrics[0],
        salt=name, status=ExperimentStatus.STOPPED, source=ExperimentSource.IMPORTED, spec_json="{}",
        created_at=now, launched_at=now,
    )
    experiment.variants = [
        Variant(position=i, name=label, share=0.0, is_control=label == control,
                channel=None if label == control else channel, coupon=Decimal("0"), template="")
        for i, label in enumerate(labels)
    ]
    roles = [(m, MetricRole.METRIC) for m in columns.metrics] + [(c, MetricRole.COVARIATE) for c in columns.covariates]
    experiment.metrics = [
        MetricDefinition(position=i, name=column, kind=MetricKind.BINARY, role=role)
        for i, (column, role) in enumerate(roles)
    ]
    session.add(experiment)
    session.flush()
    return experiment


def _store_customers(session: Session, experiment: Experiment, customers: list[_Customer]) -> None:
    """Assignments, metric values (long format) and segment labels of one chunk, in bulk."""
    variant_id = {v.name: v.id for v in experiment.variants}
    assigned_at = experiment.created_at
    bulk_insert(session, Assignment, [
        dict(experiment_id=experiment.id, customer_id=c.customer_id, variant_id=variant_id[c.label],
             bucket=IMPORTED_BUCKET, assigned_at=assigned_at) for c in customers
    ])
    bulk_insert(session, MetricValue, list(_metric_rows(experiment.id, customers)))
    bulk_insert(session, SegmentValue, [
        dict(experiment_id=experiment.id, customer_id=c.customer_id, segment=s, value=v)
        for c in customers for s, v in c.segments.items()
    ])


def _metric_rows(experiment_id: int, customers: list[_Customer]) -> Iterator[dict]:
    for c in customers:
        for name, value in c.values.items():
            yield dict(experiment_id=experiment_id, customer_id=c.customer_id, metric=name, value=value)

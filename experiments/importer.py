"""Importing outcomes: events, or per-customer results of a test run elsewhere.

Both imports are atomic and idempotent:

* Every row is validated before anything is written. A bad row rejects the whole file with a
  message ``FILE, line N, field F: reason``, where N is the line in the file (the header is line 1,
  so the first data row is line 2) — the number an editor shows.
* The writes happen in one transaction: a failure leaves nothing behind.
* The SHA-256 of the file's (decompressed) content is recorded in ``imports``; the same content
  imported again changes nothing. Events already present (same customer, type, time and value) are
  skipped and counted, so overlapping exports can be imported one after the other.

Files are CSV, optionally gzip-compressed, in UTF-8 (a byte-order mark is tolerated).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, delete, exc, func, select
from sqlalchemy.orm import Session

from experiments.catalog import Channel
from experiments.config import to_stored_utc
from experiments.db import bulk_insert, session_scope
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


@dataclass(frozen=True)
class _Table:
    """A CSV file read whole: its name, content hash, header and non-blank rows."""

    name: str
    sha256: str
    header: list[str]
    rows: list[_Row]

    def require(self, columns: Sequence[str]) -> None:
        missing = [c for c in dict.fromkeys(columns) if c not in self.header]
        if missing:
            plural = "s" if len(missing) > 1 else ""
            raise ImportFailed(f"{self.name}, line 1, field{plural} {', '.join(missing)}: missing column{plural}; "
                               f"the header has: {', '.join(self.header)}")

    def error(self, line: int, field: str, reason: str) -> ImportFailed:
        return ImportFailed(f"{self.name}, line {line}, field {field}: {reason}")


def _read(path: str | Path) -> _Table:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ImportFailed(f"{path}: cannot read the file ({error.strerror or error})") from None
    try:
        content = gzip.decompress(raw) if raw.startswith(GZIP_MAGIC) else raw
    except (OSError, EOFError, zlib.error):
        raise ImportFailed(f"{path.name}: not a readable gzip file") from None
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportFailed(f"{path.name}: not UTF-8 text (byte {error.start})") from None
    header, rows = _parse_csv(path.name, text)
    return _Table(path.name, hashlib.sha256(content).hexdigest(), header, rows)


def _parse_csv(name: str, text: str) -> tuple[list[str], list[_Row]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [h.strip() for h in next(reader, [])]
        if not any(header):
            raise ImportFailed(f"{name}: the file is empty (the first line must name the columns)")
        repeated = sorted({h for h in header if header.count(h) > 1})
        if repeated:
            raise ImportFailed(f"{name}, line 1: column {', '.join(repeated)} appears more than once")
        rows = []
        line = reader.line_num + 1  # where the next record starts (a quoted value may span lines)
        for values in reader:
            if any(v.strip() for v in values):
                if len(values) != len(header):
                    raise ImportFailed(f"{name}, line {line}: {len(values)} values for {len(header)} columns")
                rows.append(_Row(line, dict(zip(header, (v.strip() for v in values), strict=True))))
            line = reader.line_num + 1
    except csv.Error as error:
        raise ImportFailed(f"{name}, line {reader.line_num}: not valid CSV ({error})") from None
    return header, rows


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


def _record(session: Session, kind: str, table: _Table, *, target: str, sha256: str) -> None:
    session.add(ImportRecord(kind=kind, target=target, file_name=table.name, sha256=sha256,
                             rows=len(table.rows), imported_at=utcnow()))


def _customer_id(table: _Table, line: int, field: str, value: str) -> str:
    if not value:
        raise table.error(line, field, "empty customer id")
    if len(value) > MAX_ID_LENGTH:
        raise table.error(line, field, f"customer id longer than {MAX_ID_LENGTH} characters")
    return value


# Events ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _EventKey:
    """An event's natural key (models.Event's uq_events_natural_key)."""

    customer_id: str
    event_type: EventType
    occurred_at: datetime  # naive UTC
    value: Decimal  # quantized to cents, as stored


def import_events(engine: Engine, path: str | Path) -> ImportResult:
    """Import ``customer_id, event_type, occurred_at[, value]`` rows from a CSV (or .csv.gz) file."""
    table = _read(path)

    def write(session: Session) -> ImportResult:
        if _already_imported(session, "events", table.sha256, ""):
            return ImportResult("events", table.name, len(table.rows), 0, 0, True)
        events = _parse_events(table)
        existing = _existing_keys(session, events)
        new = [e for e in events if e not in existing]
        bulk_insert(session, Event, [
            dict(customer_id=e.customer_id, event_type=e.event_type, occurred_at=e.occurred_at, value=e.value)
            for e in new
        ])
        _record(session, "events", table, target="", sha256=table.sha256)
        late = _late_unsubscribes(session, [e.customer_id for e in new if e.event_type == EventType.UNSUBSCRIBE])
        return ImportResult("events", table.name, len(table.rows), len(new), len(events) - len(new), False,
                            late_unsubscribes=late)

    return _in_one_transaction(engine, write)


def _parse_events(table: _Table) -> list[_EventKey]:
    """Validated events in file order; a repeat within the file counts once."""
    table.require(EVENT_COLUMNS)
    allowed = {t.value: t for t in EventType}
    events: dict[_EventKey, None] = {}
    for row in table.rows:
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


def _existing_keys(session: Session, events: Sequence[_EventKey]) -> set[_EventKey]:
    """The events of ``events`` already stored, looked up by customer and the file's time range."""
    if not events:
        return set()
    customers = sorted({e.customer_id for e in events})
    first, last = min(e.occurred_at for e in events), max(e.occurred_at for e in events)
    found: set[_EventKey] = set()
    for start in range(0, len(customers), KEY_CHUNK):
        rows = session.execute(
            select(Event.customer_id, Event.event_type, Event.occurred_at, Event.value).where(
                Event.customer_id.in_(customers[start:start + KEY_CHUNK]),
                Event.occurred_at.between(first, last),
            )
        )
        found.update(_EventKey(c, t, at, Decimal(v).quantize(CENT)) for c, t, at, v in rows)
    return found


def _late_unsubscribes(session: Session, customers: Sequence[str]) -> int:
    """Sends scheduled after a customer had already unsubscribed: the unsubscribe came in late."""
    late = 0
    customers = sorted(set(customers))
    for start in range(0, len(customers), KEY_CHUNK):
        late += session.scalar(select(func.count()).select_from(Send).where(
            Send.customer_id.in_(customers[start:start + KEY_CHUNK]),
            Send.scheduled_at > select(func.min(Event.occurred_at)).where(
                Event.customer_id == Send.customer_id, Event.event_type == EventType.UNSUBSCRIBE
            ).scalar_subquery(),
        )) or 0
    return late


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
) -> ImportResult:
    """Create experiment ``experiment`` (imported, stopped) from per-customer results, one row per customer.

    Variants are the labels of ``variant_column``: ``control`` first, then the others sorted. Shares are
    ``shares`` (one per label, summing to 1) or equal; ``channel`` is what the contacted variants used.
    Each customer is assigned with bucket -1 (not ours to hash), at import time.
    """
    columns = _results_columns(experiment, variant_column, metrics, id_column, covariates, segments, channel)
    table = _read(path)
    key = _arguments_key(table, experiment=experiment, variant_column=variant_column, control=control,
                         metrics=list(metrics), id_column=id_column, covariates=list(covariates),
                         segments=list(segments), shares=shares, channel=channel)

    def write(session: Session) -> ImportResult:
        if session.scalar(select(Experiment.id).where(Experiment.name == experiment)) is not None:
            if _already_imported(session, "results", key, experiment):
                return ImportResult("results", table.name, len(table.rows), 0, 0, True, experiment)
            raise ImportFailed(f"{table.name}: experiment {experiment!r} already exists; choose another --experiment")
        # A record without its experiment (deleted since): import again, recording afresh.
        session.execute(delete(ImportRecord).where(ImportRecord.kind == "results", ImportRecord.target == experiment))
        customers = _parse_results(table, columns)
        labels = _labels(table, columns, customers, control)
        stored = _store_experiment(session, table, columns, experiment, labels, _shares(labels, shares),
                                   control, channel, customers)
        _store_customers(session, stored, customers)
        _record(session, "results", table, target=experiment, sha256=key)
        return ImportResult("results", table.name, len(table.rows), len(customers), 0, False, experiment)

    return _in_one_transaction(engine, write)


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


def _arguments_key(table: _Table, **arguments: object) -> str:
    """The file's content and the import's arguments: the same import twice is recognised."""
    return hashlib.sha256((table.sha256 + json.dumps(arguments, sort_keys=True)).encode()).hexdigest()


def _parse_results(table: _Table, columns: _Columns) -> list[_Customer]:
    table.require([c for c in (columns.customer_id, columns.variant, *columns.numeric, *columns.segments) if c])
    first_seen: dict[str, int] = {}
    customers = []
    for number, row in enumerate(table.rows, start=1):
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
    if not customers:
        raise ImportFailed(f"{table.name}: no data rows")
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


def _labels(table: _Table, columns: _Columns, customers: list[_Customer], control: str) -> list[str]:
    """The variant labels: the control first, then the others sorted (stable whatever the row order)."""
    found = sorted({c.label for c in customers})
    if control not in found:
        raise ImportFailed(f"{table.name}, field {columns.variant}: the control label {control!r} does not occur; "
                           f"labels found: {', '.join(found)}")
    return [control, *(label for label in found if label != control)]


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


def _kind(customers: list[_Customer], column: str) -> MetricKind:
    binary = all(c.values[column] in (0.0, 1.0) for c in customers)
    return MetricKind.BINARY if binary else MetricKind.CONTINUOUS


def _store_experiment(session: Session, table: _Table, columns: _Columns, name: str, labels: list[str],
                      shares: dict[str, float], control: str, channel: str | None,
                      customers: list[_Customer]) -> Experiment:
    """The experiment, its variants and its metric definitions; flushed so they have ids."""
    now = utcnow()
    experiment = Experiment(
        name=name, hypothesis=f"imported from {table.name}", cohort="imported", primary_metric=columns.metrics[0],
        salt=name, status=ExperimentStatus.STOPPED, source=ExperimentSource.IMPORTED, spec_json="{}",
        created_at=now, launched_at=now,
    )
    experiment.variants = [
        Variant(position=i, name=label, share=shares[label], is_control=label == control,
                channel=None if label == control else channel, coupon=Decimal("0"), template="")
        for i, label in enumerate(labels)
    ]
    roles = [(m, MetricRole.METRIC) for m in columns.metrics] + [(c, MetricRole.COVARIATE) for c in columns.covariates]
    experiment.metrics = [
        MetricDefinition(position=i, name=column, kind=_kind(customers, column), role=role)
        for i, (column, role) in enumerate(roles)
    ]
    session.add(experiment)
    session.flush()
    return experiment


def _store_customers(session: Session, experiment: Experiment, customers: list[_Customer]) -> None:
    """Assignments, metric values (long format) and segment labels, in bulk."""
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

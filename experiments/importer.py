"""Importing outcomes: events, or per-customer results of a test run elsewhere.

Both imports are atomic and idempotent. Every row is validated before anything is written, and a
bad row rejects the whole file with the file, the line (the header is line 1) and the field; the
writes then happen in one transaction. A file's SHA-256 is recorded, so the same content imported
again changes nothing; events already present (same customer, type, time and value) are skipped,
so overlapping exports can be imported one after the other.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sqlalchemy import Engine, func, select

from experiments.catalog import Channel
from experiments.config import settings
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

EVENT_COLUMNS = ("customer_id", "event_type", "occurred_at")
MAX_ID_LENGTH = 64
CENT = Decimal("0.01")
KEY_CHUNK = 500
IMPORTED_BUCKET = -1  # results imported from elsewhere were not assigned by our hash


class ImportFailed(ValueError):
    """A file that cannot be imported; the message names the file, line and field."""


@dataclass(frozen=True)
class ImportResult:
    kind: str
    file: str
    rows: int
    inserted: int
    skipped_duplicates: int
    already_imported: bool
    experiment: str | None = None
    late_unsubscribes: int = 0


@dataclass(frozen=True)
class _Table:
    """A CSV file read whole: its name, content hash, header and rows with their line numbers."""

    name: str
    sha256: str
    header: list[str]
    rows: list[tuple[int, dict[str, str]]]

    def require(self, columns: Sequence[str]) -> None:
        missing = [c for c in columns if c not in self.header]
        if missing:
            raise ImportFailed(f"{self.name}: missing column(s) {', '.join(missing)}; "
                               f"the header has: {', '.join(self.header)}")

    def error(self, line: int, field: str, reason: str) -> ImportFailed:
        return ImportFailed(f"{self.name}, line {line}, field {field}: {reason}")


def _read(path: str | Path) -> _Table:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ImportFailed(f"{path}: file not found") from None
    content = gzip.decompress(raw) if path.suffix == ".gz" else raw
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFailed(f"{path.name}: not UTF-8 text (byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in next(reader, [])]
    if not header:
        raise ImportFailed(f"{path.name}: the file is empty")
    rows = []
    for line, values in enumerate(reader, start=2):
        if not values:
            continue
        if len(values) != len(header):
            raise ImportFailed(f"{path.name}, line {line}: {len(values)} values for {len(header)} columns")
        rows.append((line, dict(zip(header, (v.strip() for v in values), strict=True))))
    return _Table(path.name, hashlib.sha256(content).hexdigest(), header, rows)


def _already_imported(session, kind: str, sha256: str, target: str) -> bool:  # noqa: ANN001 - Session
    return session.scalar(select(func.count()).select_from(ImportRecord).where(
        ImportRecord.kind == kind, ImportRecord.sha256 == sha256, ImportRecord.target == target)) > 0


def _record(session, kind: str, table: _Table, target: str, sha256: str, rows: int) -> None:  # noqa: ANN001
    session.add(ImportRecord(kind=kind, target=target, file_name=table.name, sha256=sha256, rows=rows,
                             imported_at=utcnow()))


# Events ---------------------------------------------------------------------------------------

EventKey = tuple[str, EventType, datetime, Decimal]


def _customer_id(table: _Table, line: int, value: str, field: str = "customer_id") -> str:
    if not value:
        raise table.error(line, field, "empty customer id")
    if len(value) > MAX_ID_LENGTH:
        raise table.error(line, field, f"customer id longer than {MAX_ID_LENGTH} characters")
    return value


def _timestamp(table: _Table, line: int, value: str) -> datetime:
    """ISO date or date-time; local time (settings().timezone) unless it carries an offset; → naive UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise table.error(line, "occurred_at", f"not an ISO date-time such as 2026-12-01 10:00: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=settings().timezone)
    return parsed.astimezone(UTC).replace(tzinfo=None)


def _money(table: _Table, line: int, value: str) -> Decimal:
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
    return amount.quantize(CENT)


def _parse_events(table: _Table) -> dict[EventKey, int]:
    """Validated events keyed by their natural key (a repeat within the file counts once)."""
    table.require(EVENT_COLUMNS)
    allowed = {t.value: t for t in EventType}
    events: dict[EventKey, int] = {}
    for line, row in table.rows:
        customer = _customer_id(table, line, row["customer_id"])
        kind = allowed.get(row["event_type"].lower())
        if kind is None:
            raise table.error(line, "event_type", f"unknown event type {row['event_type']!r}; "
                                                  f"allowed: {', '.join(allowed)}")
        key = (customer, kind, _timestamp(table, line, row["occurred_at"]), _money(table, line, row.get("value", "")))
        events.setdefault(key, line)
    return events


def _existing_keys(session, keys: Sequence[EventKey]) -> set[EventKey]:  # noqa: ANN001 - Session
    customers = sorted({k[0] for k in keys})
    found: set[EventKey] = set()
    for start in range(0, len(customers), KEY_CHUNK):
        rows = session.execute(
            select(Event.customer_id, Event.event_type, Event.occurred_at, Event.value)
            .where(Event.customer_id.in_(customers[start:start + KEY_CHUNK]))
        )
        found.update((c, t, at, Decimal(v).quantize(CENT)) for c, t, at, v in rows)
    return found


def _late_unsubscribes(session, unsubscribes: Sequence[EventKey]) -> int:  # noqa: ANN001 - Session
    """Sends scheduled after a customer had already unsubscribed: the unsubscribe came in late."""
    late = 0
    for start in range(0, len(unsubscribes), KEY_CHUNK):
        chunk = unsubscribes[start:start + KEY_CHUNK]
        late += session.scalar(select(func.count()).select_from(Send).where(
            Send.customer_id.in_([c for c, *_ in chunk]),
            Send.scheduled_at > select(func.min(Event.occurred_at)).where(
                Event.customer_id == Send.customer_id, Event.event_type == EventType.UNSUBSCRIBE
            ).scalar_subquery(),
        )) or 0
    return late


def import_events(engine: Engine, path: str | Path) -> ImportResult:
    """Import ``customer_id, event_type, occurred_at[, value]`` rows from a CSV (or .csv.gz) file."""
    table = _read(path)
    events = _parse_events(table)
    with session_scope(engine) as session:
        if _already_imported(session, "events", table.sha256, ""):
            return ImportResult("events", table.name, len(table.rows), 0, 0, True)
        existing = _existing_keys(session, list(events))
        new = [k for k in events if k not in existing]
        bulk_insert(session, Event, [
            dict(customer_id=c, event_type=t, occurred_at=at, value=v) for c, t, at, v in new
        ])
        _record(session, "events", table, "", table.sha256, len(table.rows))
        late = _late_unsubscribes(session, [k for k in new if k[1] == EventType.UNSUBSCRIBE])
    return ImportResult("events", table.name, len(table.rows), len(new), len(events) - len(new), False,
                        late_unsubscribes=late)


# Results of a test run elsewhere -------------------------------------------------------------------


@dataclass(frozen=True)
class _Customer:
    customer_id: str
    label: str
    values: dict[str, float]
    segments: dict[str, str]


def _number(table: _Table, line: int, field: str, value: str, *, non_negative: bool) -> float:
    try:
        number = float(value)
    except ValueError:
        raise table.error(line, field, f"not a number: {value!r}") from None
    if not math.isfinite(number):
        raise table.error(line, field, f"not a finite number: {value!r}")
    if non_negative and number < 0:
        raise table.error(line, field, f"negative value {value} (outcomes are counts or amounts ≥ 0)")
    return number


def _parse_results(table: _Table, *, variant_column: str, metrics: Sequence[str], id_column: str | None,
                   covariates: Sequence[str], segments: Sequence[str]) -> list[_Customer]:
    if not metrics:
        raise ImportFailed(f"{table.name}: name at least one metric column (--metrics)")
    table.require([c for c in (id_column, variant_column, *metrics, *covariates, *segments) if c])
    seen: dict[str, int] = {}
    customers = []
    for line, row in table.rows:
        customer_id = _customer_id(table, line, row[id_column], id_column) if id_column else str(line - 1)
        if customer_id in seen:
            raise table.error(line, id_column or "row", f"customer {customer_id!r} appears twice "
                                                       f"(first on line {seen[customer_id]})")
        seen[customer_id] = line
        label = row[variant_column]
        if not label:
            raise table.error(line, variant_column, "empty variant label")
        values = {m: _number(table, line, m, row[m], non_negative=True) for m in metrics}
        values |= {c: _number(table, line, c, row[c], non_negative=False) for c in covariates}
        customers.append(_Customer(customer_id, label, values, {s: row[s] for s in segments}))
    if not customers:
        raise ImportFailed(f"{table.name}: no data rows")
    return customers


def _variant_shares(table: _Table, labels: list[str], control: str, shares: dict[str, float] | None
                    ) -> dict[str, float]:
    if control not in labels:
        raise ImportFailed(f"{table.name}: the control label {control!r} does not occur in the variant column; "
                           f"labels found: {', '.join(labels)}")
    if shares is None:
        return {label: 1 / len(labels) for label in labels}
    missing, unknown = set(labels) - set(shares), set(shares) - set(labels)
    if missing or unknown:
        raise ImportFailed(f"--shares: give one share per label; missing: {', '.join(sorted(missing)) or '-'}, "
                           f"unknown: {', '.join(sorted(unknown)) or '-'}")
    if any(s <= 0 for s in shares.values()) or abs(sum(shares.values()) - 1) > 1e-6:
        raise ImportFailed(f"--shares: shares must be positive and sum to 1; they sum to {sum(shares.values()):g}")
    return {label: shares[label] for label in labels}


def _kind(customers: list[_Customer], column: str) -> MetricKind:
    binary = all(c.values[column] in (0.0, 1.0) for c in customers)
    return MetricKind.BINARY if binary else MetricKind.CONTINUOUS


def _arguments_key(table: _Table, **arguments: object) -> str:
    """The file's content and the import's arguments: the same import twice is recognised."""
    return hashlib.sha256((table.sha256 + json.dumps(arguments, sort_keys=True)).encode()).hexdigest()


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
    """Create experiment ``experiment`` from per-customer results (one row per customer)."""
    if channel is not None and channel not in {c.value for c in Channel}:
        raise ImportFailed(f"--channel: unknown channel {channel!r}; choose one of {', '.join(c.value for c in Channel)}")
    table = _read(path)
    customers = _parse_results(table, variant_column=variant_column, metrics=metrics, id_column=id_column,
                               covariates=covariates, segments=segments)
    labels = list(dict.fromkeys(c.label for c in customers))
    labels = [control, *sorted(label for label in labels if label != control)] if control in labels else labels
    variant_shares = _variant_shares(table, labels, control, shares)
    key = _arguments_key(table, experiment=experiment, variant_column=variant_column, control=control,
                         metrics=list(metrics), id_column=id_column, covariates=list(covariates),
                         segments=list(segments), shares=shares, channel=channel)
    with session_scope(engine) as session:
        if _already_imported(session, "results", key, experiment):
            return ImportResult("results", table.name, len(customers), 0, 0, True, experiment)
        if session.scalar(select(func.count()).select_from(Experiment).where(Experiment.name == experiment)):
            raise ImportFailed(f"{table.name}: experiment {experiment!r} already exists; choose another --experiment")
        now = utcnow()
        stored = Experiment(
            name=experiment, hypothesis=f"imported from {table.name}", cohort="imported",
            primary_metric=metrics[0], salt=experiment, status=ExperimentStatus.STOPPED,
            source=ExperimentSource.IMPORTED, spec_json="{}", created_at=now, launched_at=now,
        )
        stored.variants = [
            Variant(position=i, name=label, share=variant_shares[label], is_control=label == control,
                    channel=None if label == control else channel, coupon=Decimal("0"), template="")
            for i, label in enumerate(labels)
        ]
        stored.metrics = [
            MetricDefinition(position=i, name=name, kind=_kind(customers, name), role=role)
            for i, (name, role) in enumerate([(m, MetricRole.METRIC) for m in metrics]
                                             + [(c, MetricRole.COVARIATE) for c in covariates])
        ]
        session.add(stored)
        session.flush()
        variant_id = {v.name: v.id for v in stored.variants}
        bulk_insert(session, Assignment, [
            dict(experiment_id=stored.id, customer_id=c.customer_id, variant_id=variant_id[c.label],
                 bucket=IMPORTED_BUCKET, assigned_at=now) for c in customers
        ])
        bulk_insert(session, MetricValue, list(_metric_rows(stored.id, customers)))
        bulk_insert(session, SegmentValue, [
            dict(experiment_id=stored.id, customer_id=c.customer_id, segment=s, value=v)
            for c in customers for s, v in c.segments.items()
        ])
        _record(session, "results", table, experiment, key, len(customers))
    return ImportResult("results", table.name, len(customers), len(customers), 0, False, experiment)


def _metric_rows(experiment_id: int, customers: list[_Customer]) -> Iterator[dict]:
    for c in customers:
        for name, value in c.values.items():
            yield dict(experiment_id=experiment_id, customer_id=c.customer_id, metric=name, value=value)

"""Where a designed experiment's data is read: Recall Lab's own tables, or the team's warehouse.

Both become the same selectables with the same column names (``assignments``: customer_id,
variant, assigned_at; ``events``: customer_id, event_type, occurred_at, value; ``customers``:
customer_id, covariates, segment labels; ``sends``: customer_id, variant, channel), already
restricted to the experiment's rows. The queries in :mod:`analysis.aggregates` are written once
against them and run unchanged on SQLite, PostgreSQL, DuckDB or any dialect a ``[source]`` names
(see :mod:`experiments.source`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, String, and_, case, column, literal, select, table, type_coerce
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ColumnElement, FromClause

from experiments.dialects import add_days
from experiments.cohorts import rfm_scores
from experiments.models import Assignment, Customer, Event, EventType, Experiment, Send
from experiments.store import stored_spec

if TYPE_CHECKING:
    from experiments.source import SourceSpec

OWN_DIMENSIONS = ("cohort", "value_tier", "rfm_tier")
OWN_COVARIATES = ("spend_before", "orders_before")


@dataclass(frozen=True)
class Tables:
    """The experiment's rows as uniform selectables, and how to read their values."""

    assignments: FromClause
    events: FromClause
    customers: FromClause | None
    sends: FromClause | None  # customer_id, variant, channel and, when known, step (0 = first touch)
    event_values: Mapping[EventType, str]
    variant_ids: Mapping[Any, int]  # value in the variant column → Variant.id
    covariates: tuple[str, ...]
    dimensions: tuple[str, ...]
    rfm: FromClause | None  # own tables: RFM scores at launch, for the derived segment labels

    def event_is(self, kind: EventType) -> ColumnElement[bool]:
        return self.events.c.event_type == literal(self.event_values[kind])

    def variant_id(self, key: Any) -> int:  # noqa: ANN401 - an id or a name, as the source stores it
        try:
            return self.variant_ids[key]
        except KeyError:
            raise ValueError(f"the source's assignments name a variant {key!r} that the design does not have "
                             f"({', '.join(map(str, self.variant_ids))})") from None

    def labels(self, assigned_at: ColumnElement, customer_id: ColumnElement, dimensions: Sequence[str] | None = None
               ) -> tuple[list[ColumnElement[str]], list[tuple[FromClause, ColumnElement[bool]]]]:
        """Segment label expressions of ``dimensions`` (default: all) for one row per customer, and the
        extra joins they need; a NULL label (no RFM score: active after the launch; a missing customer
        row) leaves the customer out of that dimension's segments but not out of the totals."""
        chosen = list(self.dimensions if dimensions is None else dimensions)
        unknown = [d for d in chosen if d not in self.dimensions]
        if unknown:
            raise ValueError(f"unknown segment dimension {', '.join(unknown)}; this experiment has "
                             f"{', '.join(self.dimensions) or 'none'}")
        if not chosen:
            return [], []
        assert self.customers is not None
        if self.rfm is None:
            return [self.customers.c[d].label(d) for d in chosen], []
        # The RFM scores rank every customer three times (window functions): joined only when asked for.
        scores = self.rfm
        total = scores.c.recency + scores.c.frequency + scores.c.monetary
        expressions = {
            "cohort": lambda: lifecycle_stage_at(assigned_at, self.customers),
            "value_tier": lambda: scores.c.value_tier,
            "rfm_tier": lambda: case((total >= 12, literal("high")), (total >= 8, literal("mid")),
                                     (total.is_not(None), literal("low"))),
        }
        joins = [(scores, scores.c.customer_id == customer_id)] if {"value_tier", "rfm_tier"} & set(chosen) else []
        return [expressions[d]().label(d) for d in chosen], joins


def lifecycle_stage_at(assigned_at: ColumnElement, customers: FromClause) -> ColumnElement[str]:
    """The lifecycle stage at ``assigned_at``, in SQL (the same rules as experiments.cohorts)."""
    c = customers.c
    last = c.last_active_at
    return case(
        (and_(c.first_order_at.is_(None), c.signup_at <= add_days(assigned_at, -3),
              c.signup_at > add_days(assigned_at, -8)), literal("new_inactive")),
        (last <= add_days(assigned_at, -90), literal("silent_3m")),
        (last <= add_days(assigned_at, -45), literal("lapsed_1_3m")),
        (last <= add_days(assigned_at, -30), literal("dormant_30d")),
        else_=literal("active"),
    )


def own_tables(experiment: Experiment) -> Tables:
    """Recall Lab's own tables: assignments and sends of this experiment, every event and customer."""
    assignments = (select(Assignment.customer_id, Assignment.variant_id.label("variant"), Assignment.assigned_at)
                   .where(Assignment.experiment_id == experiment.id).subquery("assignments"))
    events = select(Event.customer_id, type_coerce(Event.event_type, String).label("event_type"),
                    Event.occurred_at, Event.value).subquery("events")
    customers = select(Customer.customer_id, Customer.spend_before, Customer.orders_before, Customer.signup_at,
                       Customer.first_order_at, Customer.last_active_at).subquery("customers")
    # No step: a contact hold may skip a customer's first touch and not a later one, so contacted
    # customers are counted as distinct customers here.
    sends = (select(Send.customer_id, Send.variant_id.label("variant"), Send.channel)
             .where(Send.experiment_id == experiment.id).subquery("sends"))
    rfm = rfm_scores(experiment.launched_at).subquery("rfm") if experiment.launched_at else None
    return Tables(assignments=assignments, events=events, customers=customers, sends=sends,
                  event_values={kind: kind.value for kind in EventType},
                  variant_ids={v.id: v.id for v in experiment.variants},
                  covariates=OWN_COVARIATES, dimensions=OWN_DIMENSIONS if rfm is not None else (), rfm=rfm)


def _table(qualified: str, *names: str | None) -> FromClause:
    schema, _, name = qualified.rpartition(".")
    return table(name, *[column(n) for n in dict.fromkeys(n for n in names if n)], schema=schema or None)


def mapped_tables(experiment: Experiment, source: SourceSpec) -> Tables:
    """The team's tables as the ``[source]`` maps them; variants are matched by name."""
    a = source.assignments
    raw = _table(a.table, a.experiment, a.customer_id, a.variant, a.assigned_at)
    assignments = select(raw.c[a.customer_id].label("customer_id"), raw.c[a.variant].label("variant"),
                         raw.c[a.assigned_at].label("assigned_at"))
    if a.experiment:
        assignments = assignments.where(raw.c[a.experiment] == literal(experiment.name))
    e = source.events
    raw = _table(e.table, e.customer_id, e.event_type, e.occurred_at, e.value)
    events = select(raw.c[e.customer_id].label("customer_id"), raw.c[e.event_type].label("event_type"),
                    raw.c[e.occurred_at].label("occurred_at"), raw.c[e.value].label("value"))
    customers = covariates = None
    if source.customers is not None:
        c = source.customers
        mapped = {"spend_before": c.spend_before, "orders_before": c.orders_before}
        raw = _table(c.table, c.customer_id, *mapped.values(), *source.segments)
        covariates = tuple(ours for ours, theirs in mapped.items() if theirs)
        customers = select(raw.c[c.customer_id].label("customer_id"),
                           *[raw.c[theirs].label(ours) for ours, theirs in mapped.items() if theirs],
                           *[raw.c[s] for s in source.segments if s not in mapped]).subquery("customers")
    sends = None
    if source.sends is not None:
        s = source.sends
        raw = _table(s.table, s.experiment, s.customer_id, s.variant, s.channel, s.step)
        query = select(raw.c[s.customer_id].label("customer_id"), raw.c[s.variant].label("variant"),
                       raw.c[s.channel].label("channel"), *([raw.c[s.step].label("step")] if s.step else []))
        if s.experiment:
            query = query.where(raw.c[s.experiment] == literal(experiment.name))
        sends = query.subquery("sends")
    return Tables(assignments=assignments.subquery("assignments"), events=events.subquery("events"),
                  customers=customers, sends=sends,
                  event_values={kind: source.event_value(kind) for kind in EventType},
                  variant_ids={v.name: v.id for v in experiment.variants},
                  covariates=covariates or (), dimensions=tuple(source.segments), rfm=None)


def source_of(experiment: Experiment) -> SourceSpec | None:
    spec = stored_spec(experiment)
    return spec.source if spec is not None else None


@contextmanager
def open_tables(conn: Connection, experiment: Experiment) -> Iterator[tuple[Connection, Tables]]:
    """(connection, tables) to read a designed experiment's data: ``conn`` and Recall Lab's tables, or
    a read-only connection to the experiment's ``[source]`` and its mapped tables."""
    source = source_of(experiment)
    if source is None:
        yield conn, own_tables(experiment)
        return
    from experiments.source import DUCKDB_MEMORY_LIMIT, SourceError, describe_source_error, read_only_engine

    url = source.resolved_url()
    engine = read_only_engine(url)
    try:
        with engine.connect() as source_conn:
            yield source_conn, mapped_tables(experiment, source)
    except DBAPIError as exc:
        if "Out of Memory" not in str(exc.orig):
            raise SourceError(describe_source_error(engine, source, url, experiment.name, str(exc.orig))) from exc
        raise SourceOutOfMemory(
            f"the warehouse source of {experiment.name!r} ran out of memory: DuckDB may use "
            f"{os.environ.get('RECALL_DUCKDB_MEMORY_LIMIT', DUCKDB_MEMORY_LIMIT)} "
            "(RECALL_DUCKDB_MEMORY_LIMIT); set it higher, e.g. RECALL_DUCKDB_MEMORY_LIMIT=2GB") from exc
    finally:
        engine.dispose()


class SourceOutOfMemory(RuntimeError):
    """The warehouse could not run the report's query within its memory limit."""

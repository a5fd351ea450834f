"""SQL aggregates: per-variant sufficient statistics computed inside the database.

Python receives a few rows per variant and segment (n, Σx, Σx², Σx³ of each metric, covariate
cross-products) and never the per-customer rows, which is what lets the same report run on a
warehouse with tens of millions of customers. Two sources feed the same shape: outcomes derived
from events inside each customer's attribution window (designed experiments, read from Recall
Lab's tables or the team's own through :mod:`analysis.tables`), and per-customer results
imported from elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, and_, case, func, literal, null, select, union_all
from sqlalchemy.sql import ColumnElement

from analysis.cuped import CovariateStats
from experiments.dialects import CUSTOMERS_PER_STATEMENT, add_days, as_number, without_jit
from analysis.sufficient import SampleStats
from analysis.tables import OWN_COVARIATES, Tables, open_tables, source_of
from experiments.models import EventType, Experiment, ExperimentSource, MetricRole
from experiments.result_tables import numpy_view, read_results, stored_sums, variant_positions


@dataclass(frozen=True)
class ArmStatistics:
    """Everything the statistics need about one variant: its size and each metric's sums."""

    variant_id: int
    n: int
    metrics: dict[str, SampleStats]
    contacted: int = 0
    redemptions: int = 0
    sends: dict[str, int] = field(default_factory=dict)  # channel → touches sent (every step counts)
    products: dict[tuple[str, str], float] = field(default_factory=dict)  # Σ x·y of PRODUCTS (designed)


# What a designed experiment's per-customer outcomes are made of: counts of a customer's events of one
# type in their window (count → event type, whether it sums the events' values instead of counting them)…
EVENT_COUNTS: dict[str, tuple[EventType, bool]] = {
    "visits": (EventType.VISIT, False),
    "orders": (EventType.ORDER, False),
    "revenue": (EventType.ORDER, True),
    "redemptions": (EventType.COUPON_REDEEMED, False),
    "unsubscribes": (EventType.UNSUBSCRIBE, False),
    "complaints": (EventType.COMPLAINT, False),
}
# …and each outcome is one count, or the 0/1 flag "any of its counts > 0" (outcome → counts, is a flag).
METRIC_PARTS: dict[str, tuple[tuple[str, ...], bool]] = {
    "returned": (("visits", "orders"), True),
    "ordered": (("orders",), True),
    "orders": (("orders",), False),
    "revenue": (("revenue",), False),
    "redeemed": (("redemptions",), True),
    "redemptions": (("redemptions",), False),
    "unsubscribed": (("unsubscribes",), True),
    "complained": (("complaints",), True),
}
# Per-customer outcomes of a designed experiment; the experiment's metrics are some of these.
CUSTOMER_METRICS = tuple(METRIC_PARTS)
# Cross products summed per cell: revenue × redemptions for the covariance in ROI's delta method;
# revenue × returned and revenue × orders for ratio metrics (revenue per returner, order value).
PRODUCTS = (("revenue", "redemptions"), ("revenue", "returned"), ("revenue", "orders"))


IdRange = tuple[Any, Any]  # customer ids in (after, up_to]; None: unbounded


def within(customer_id: ColumnElement, ids: IdRange) -> list[ColumnElement[bool]]:
    after, up_to = ids
    return [*([customer_id > after] if after is not None else []), *([customer_id <= up_to] if up_to is not None else [])]


def customer_metrics(tables: Tables, attribution_days: int, until: datetime | None = None, *,
                     with_events_only: bool = False, bounds: tuple[datetime, datetime] | None = None,
                     ids: IdRange = (None, None)):  # noqa: ANN201
    """One row per assigned customer with outcomes inside [assigned_at, assigned_at + window).

    ``with_events_only`` keeps only customers with an event in their window (an inner join): everyone
    else has all outcomes 0, adds nothing to any sum, and is counted by :func:`designed_cells`
    without touching the events. ``bounds`` (first assignment, last window end) lets the database
    skip events outside the experiment: a warehouse's events table holds years of history. ``ids``
    keeps one range of customer ids (see :func:`designed_cells`).
    """
    a, e = tables.assignments, tables.events
    in_window = window_events(tables, attribution_days, until, bounds, ids)

    # One group per customer (their variant and assignment time ride along: one row per customer in
    # an experiment); grouping by the customer alone is what keeps this fast at 10M customers.
    joined = a.join(e, in_window) if with_events_only else a.outerjoin(e, in_window)
    events = (
        select(a.c.customer_id, func.max(a.c.variant).label("variant"), func.max(a.c.assigned_at).label("assigned_at"),
               *[event_count(tables, name, e.c.event_type, e.c.value).label(name) for name in EVENT_COUNTS])
        .select_from(joined)
        .group_by(a.c.customer_id)
        .subquery("customer_events")
    ).c
    return select(events.variant, events.customer_id, events.assigned_at,
                  *[outcome([events[c] for c in METRIC_PARTS[m][0]], METRIC_PARTS[m][1]).label(m)
                    for m in CUSTOMER_METRICS]).subquery("customer_metrics")


def window_events(tables: Tables, attribution_days: int, until: datetime | None = None,
                  bounds: tuple[datetime, datetime] | None = None, ids: IdRange = (None, None)) -> ColumnElement[bool]:
    """How an assigned customer's events join them: inside [assigned_at, assigned_at + window), before
    ``until``, within ``bounds`` and the id range ``ids`` (see :func:`customer_metrics`)."""
    a, e = tables.assignments, tables.events
    return and_(
        e.c.customer_id == a.c.customer_id,
        *within(a.c.customer_id, ids), *within(e.c.customer_id, ids),
        e.c.occurred_at >= a.c.assigned_at,
        e.c.occurred_at < add_days(a.c.assigned_at, attribution_days),
        *([e.c.occurred_at < literal(until)] if until is not None else []),
        *([e.c.occurred_at >= literal(bounds[0]), e.c.occurred_at < literal(bounds[1])] if bounds else []),
    )


def event_count(tables: Tables, name: str, event_type: ColumnElement, value: ColumnElement) -> ColumnElement:
    """The per-customer count ``name`` of :data:`EVENT_COUNTS` as an aggregate over rows of events with these
    ``event_type`` and ``value`` columns: 1 per event of its type, or the event's value."""
    kind, valued = EVENT_COUNTS[name]
    is_kind = event_type == literal(tables.event_values[kind])
    return func.coalesce(func.sum(case((is_kind, value if valued else 1), else_=0)), 0)


def outcome(counts: Sequence[ColumnElement], is_flag: bool) -> ColumnElement:
    """A per-customer outcome from its counts (:data:`METRIC_PARTS`): the count, or 1 when any is > 0."""
    return case((sum(counts[1:], counts[0]) > 0, 1), else_=0) if is_flag else counts[0]


def id_ranges(conn: Connection, tables: Tables, customers: int) -> list[IdRange]:
    """Ranges of assigned customer ids that cover them all, of the size the dialect wants per statement
    (:data:`experiments.dialects.CUSTOMERS_PER_STATEMENT`; one range if it has none)."""
    per_statement = CUSTOMERS_PER_STATEMENT.get(conn.dialect.name)
    k = math.ceil(customers / per_statement) if per_statement else 1
    if k <= 1:
        return [(None, None)]
    a = tables.assignments
    tiles = select(a.c.customer_id, func.ntile(k).over(order_by=a.c.customer_id).label("tile")).subquery()
    last = func.max(tiles.c.customer_id)
    ends = list(conn.scalars(select(last).group_by(tiles.c.tile).order_by(last)))
    return list(zip([None, *ends[:-1]], [*ends[:-1], None], strict=True))


def event_bounds(conn: Connection, tables: Tables, attribution_days: int
                  ) -> tuple[tuple[datetime, datetime] | None, int]:
    """(first assignment, last assignment + window + 1 day): no event outside can count; and the
    number of assigned customers."""
    a = tables.assignments
    first, last, customers = conn.execute(
        select(func.min(a.c.assigned_at), func.max(a.c.assigned_at), func.count())).one()
    if first is None:
        return None, 0
    if isinstance(first, str):  # SQLite without declared types (a mapped source) returns text
        first, last = datetime.fromisoformat(first), datetime.fromisoformat(last)
    return (first, last + timedelta(days=attribution_days + 1)), int(customers)


@dataclass(frozen=True)
class Cells:
    """Sums per variant × segment-label cell, as one SQL query returned them.

    Sufficient statistics add up, so the whole-population statistics, each segment's, and the
    covariate cross-products all come from these few rows by addition: the per-customer join runs
    once per report, whatever the number of segments and metrics.
    """

    variant_ids: np.ndarray
    labels: dict[str, list[str | None]]
    sums: dict[str, np.ndarray]
    covariates: tuple[str, ...]

    def total(self, key: str, mask: np.ndarray) -> float:
        return float(self.sums[key][mask].sum())

    def sample_stats(self, metric: str, mask: np.ndarray) -> SampleStats:
        return SampleStats(int(self.total("n", mask)), self.total(f"s1__{metric}", mask),
                           self.total(f"s2__{metric}", mask), self.total(f"s3__{metric}", mask))

    def covariate_stats(self, metric: str, mask: np.ndarray) -> CovariateStats:
        k = len(self.covariates)
        sum_xx = np.zeros((k, k))
        for i, c in enumerate(self.covariates):
            for j, d in enumerate(self.covariates[i:], start=i):
                sum_xx[i, j] = sum_xx[j, i] = self.total(f"xx__{c}__{d}", mask)
        return CovariateStats(int(self.total("n", mask)), self.total(f"s1__{metric}", mask),
                              self.total(f"s2__{metric}", mask),
                              np.array([self.total(f"x__{c}", mask) for c in self.covariates]), sum_xx,
                              np.array([self.total(f"xy__{c}__{metric}", mask) for c in self.covariates]))


def designed_cells(conn: Connection, experiment: Experiment, tables: Tables, until: datetime | None = None,
                   *, segments: bool | Sequence[str] = True) -> Cells:
    """n, Σx, Σx², Σx³ of every per-customer metric, the covariates' sums and cross-products, and
    :data:`PRODUCTS`, per variant × segment labels: one statement, computed where the data lives.

    Two branches of a UNION ALL add up (1) n and the covariates over every assigned customer, labelled
    from their customer row, and (2) the outcomes over the customers with an event in their window:
    the events are joined to the assignments within the experiment's period and grouped per customer,
    and only those returners are joined to their customer rows. A recall campaign's many customers
    who did not come back cost nothing in (2), and their outcomes, all 0, nothing in any sum.
    Labels that rank every customer (value and RFM tiers: window functions) are computed once, in a
    CTE that both branches read, instead.
    """
    customers = tables.customers
    covariates = tables.covariates if customers is not None else ()
    a = tables.assignments
    dimensions = None if segments is True else ([] if segments is False else list(segments))

    def labelled(units, customer_id, assigned_at, ids: IdRange):  # noqa: ANN001, ANN202 - FROM clause, columns
        """``units`` with their segment labels and covariates, from the customer row of ``customer_id``."""
        labels, joins = tables.labels(assigned_at, customer_id, dimensions)
        xs = {c: func.coalesce(as_number(customers.c[c]), 0) for c in covariates}
        source = units
        if customers is not None and (covariates or labels):
            source = source.outerjoin(customers, and_(customers.c.customer_id == customer_id,
                                                      *within(customers.c.customer_id, ids)))
        for target, on in joins:
            source = source.outerjoin(target, on)
        return source, labels, xs

    # PostgreSQL compiled the statement of a 1M-customer campaign for 1.9 s of its 9.7 s (EXPLAIN ANALYZE)
    without_jit(conn)
    bounds, assigned = event_bounds(conn, tables, experiment.attribution_days)
    labels, joins = tables.labels(a.c.assigned_at, a.c.customer_id, dimensions)
    names, ranked = [label.name for label in labels], bool(joins)

    def statement(ids: IdRange):  # noqa: ANN202 - a UNION ALL
        everyone_from, labels, xs = labelled(a, a.c.customer_id, a.c.assigned_at, ids)
        per_customer = customer_metrics(tables, experiment.attribution_days, until, with_events_only=True,
                                        bounds=bounds, ids=ids)
        o = per_customer.c
        if ranked:
            lab = (select(a.c.customer_id, a.c.variant, *labels, *[x.label(c) for c, x in xs.items()])
                   .select_from(everyone_from).cte("labelled"))
            everyone_from, everyone_keys = lab, [lab.c.variant, *[lab.c[name] for name in names]]
            xs = {c: lab.c[c] for c in covariates}
            returners_from, returner_keys, returner_xs = (
                lab.join(per_customer, o.customer_id == lab.c.customer_id), everyone_keys, xs)
        else:
            everyone_keys = [a.c.variant, *labels]
            returners_from, returner_labels, returner_xs = labelled(per_customer, o.customer_id, o.assigned_at, ids)
            returner_keys = [o.variant, *returner_labels]

        everyone = {"n": func.count()}
        for i, c in enumerate(covariates):
            everyone[f"x__{c}"] = func.sum(xs[c])
            everyone.update({f"xx__{c}__{d}": func.sum(xs[c] * xs[d]) for d in covariates[i:]})
        outcomes = {}
        for m in CUSTOMER_METRICS:
            x = as_number(o[m])
            outcomes.update({f"s1__{m}": func.sum(x), f"s2__{m}": func.sum(x * x), f"s3__{m}": func.sum(x * x * x)})
        outcomes.update({f"p__{x}__{y}": func.sum(as_number(o[x]) * as_number(o[y])) for x, y in PRODUCTS})
        outcomes.update({f"xy__{c}__{m}": func.sum(returner_xs[c] * as_number(o[m]))
                         for c in covariates for m in CUSTOMER_METRICS})

        columns = [*everyone, *outcomes]

        def branch(keys: list, values: dict, source, *where: ColumnElement[bool]):  # noqa: ANN001, ANN202
            keys = [key.label(f"k{i}") for i, key in enumerate(keys)]
            return select(*keys, *[(values[c] if c in values else null()).label(c) for c in columns]
                          ).select_from(source).where(*where).group_by(*keys)

        everyone_where = [] if ranked else within(a.c.customer_id, ids)
        return columns, union_all(branch(everyone_keys, everyone, everyone_from, *everyone_where),
                                  branch(returner_keys, outcomes, returners_from))

    # Labels that rank every customer need them all in one statement.
    ranges = [(None, None)] if ranked else id_ranges(conn, tables, assigned)
    rows: dict[tuple, dict[str, float]] = {}
    width = 1 + len(names)
    for ids in ranges:
        columns, query = statement(ids)
        for row in conn.execute(query):
            key = (row[0], *[None if v is None else str(v) for v in row[1:width]])
            cell = rows.setdefault(key, {})
            for name, value in zip(columns, row[width:], strict=True):
                if value is not None:
                    cell[name] = cell.get(name, 0.0) + float(value)
    cells = [k for k in rows if "n" in rows[k]]
    return Cells(
        variant_ids=np.array([tables.variant_id(k[0]) for k in cells], dtype=int),
        labels={name: [k[1 + i] for k in cells] for i, name in enumerate(names)},
        sums={c: np.array([rows[k].get(c, 0.0) for k in cells]) for c in columns},
        covariates=tuple(covariates),
    )


def _designed_arms(conn: Connection, experiment: Experiment, tables: Tables, cells: Cells, metrics: Sequence[str]
                   ) -> list[ArmStatistics]:
    contacted, sends = _send_counts(conn, tables)
    arms = []
    for variant in experiment.variants:
        mask = cells.variant_ids == variant.id
        n = int(cells.total("n", mask))
        if tables.sends is None and not variant.is_control:  # no sends mapped: each customer touched once
            contacted[variant.id], sends[variant.id] = n, {variant.channel or "": n}
        arms.append(ArmStatistics(
            variant_id=variant.id, n=n, metrics={m: cells.sample_stats(m, mask) for m in metrics},
            contacted=contacted.get(variant.id, 0), redemptions=int(cells.total("s1__redemptions", mask)),
            sends=sends.get(variant.id, {}),
            products={(a, b): cells.total(f"p__{a}__{b}", mask) for a, b in PRODUCTS},
        ))
    return arms


def _send_counts(conn: Connection, tables: Tables) -> tuple[dict[int, int], dict[int, dict[str, int]]]:
    """Customers with at least one recorded send, and touches per channel (what channels bill for),
    per variant. Every sequence has one first touch (step 0) per customer, which counts them in the
    same scan; without a step column they are counted as distinct customers."""
    contacted: dict[int, int] = {}
    sends: dict[int, dict[str, int]] = {}
    if tables.sends is None:
        return contacted, sends
    s = tables.sends
    first = [func.sum(case((s.c.step == 0, 1), else_=0))] if "step" in s.c else []
    for key, channel, count, *firsts in conn.execute(
            select(s.c.variant, s.c.channel, func.count(), *first).group_by(s.c.variant, s.c.channel)):
        variant_id = tables.variant_id(key)
        sends.setdefault(variant_id, {})[str(channel)] = int(count)
        if firsts:
            contacted[variant_id] = contacted.get(variant_id, 0) + int(firsts[0] or 0)
    if not first:
        rows = conn.execute(select(s.c.variant, func.count(func.distinct(s.c.customer_id))).group_by(s.c.variant))
        contacted = {tables.variant_id(key): int(count) for key, count in rows}
    return contacted, sends


def _imported_arms(conn: Connection, experiment: Experiment, metrics: Sequence[str]) -> list[ArmStatistics]:
    """n, Σx, Σx², Σx³ of every metric per variant: read from the sums the import stored."""
    arms = []
    for (variant_id, dimension, _), cell in stored_sums(conn, experiment).items():
        if dimension:
            continue
        by_metric = {m: SampleStats(cell.n, cell.sum(m), cell.sum(m, m), cell.sum(m, m, m)) for m in metrics}
        contacted = 0 if variant_id == experiment.control.id else cell.n
        arms.append(ArmStatistics(variant_id=variant_id, n=cell.n, metrics=by_metric, contacted=contacted))
    return arms


@dataclass(frozen=True)
class ExperimentStatistics:
    """What the database returns for one report: per-variant statistics and, for designed
    experiments, the variant × segment cells they were added up from."""

    arms: dict[int, ArmStatistics]
    cells: Cells | None = None

    def covariates(self, metric: str) -> dict[int, CovariateStats]:
        """Per variant id: the covariate sums CUPED needs for ``metric`` (designed experiments)."""
        if self.cells is None or not self.cells.covariates:
            return {}
        return {v: self.cells.covariate_stats(metric, self.cells.variant_ids == v) for v in self.arms
                if self.arms[v].n}

    def segments(self, metric: str) -> dict[tuple[str, str], dict[int, SampleStats]]:
        """``metric`` per (dimension, value) and variant id; customers without a label are left out."""
        out: dict[tuple[str, str], dict[int, SampleStats]] = {}
        if self.cells is None:
            return out
        for dimension, labels in self.cells.labels.items():
            values = np.array(labels, dtype=object)
            for value in sorted({v for v in labels if v is not None}):
                in_segment = values == value
                for variant_id in self.arms:
                    mask = in_segment & (self.cells.variant_ids == variant_id)
                    if mask.any():
                        out.setdefault((dimension, value), {})[variant_id] = self.cells.sample_stats(metric, mask)
        return dict(sorted(out.items()))


def experiment_statistics(conn: Connection, experiment: Experiment, until: datetime | None = None, *,
                          segments: bool | Sequence[str] = True) -> ExperimentStatistics:
    """Sufficient statistics of every metric for every variant of ``experiment``, keyed by variant id,
    read where the data lives (its ``[source]`` or Recall Lab's tables); ``until`` counts only events
    before that time (what a look on that day saw; designed experiments)."""
    metrics = [m.name for m in experiment.metrics if m.role == MetricRole.METRIC]
    cells = None
    if experiment.source == ExperimentSource.DESIGNED:
        with open_tables(conn, experiment) as (source, tables):
            cells = designed_cells(source, experiment, tables, until, segments=segments)
            arms = _designed_arms(source, experiment, tables, cells, list(dict.fromkeys([*metrics, *CUSTOMER_METRICS])))
    else:
        arms = _imported_arms(conn, experiment, metrics)
    found = {arm.variant_id: arm for arm in arms}
    empty = {m: SampleStats(0, 0.0, 0.0) for m in metrics}
    return ExperimentStatistics({v.id: found.get(v.id, ArmStatistics(v.id, 0, dict(empty)))
                                 for v in experiment.variants}, cells)


def arm_statistics(conn: Connection, experiment: Experiment, until: datetime | None = None
                   ) -> dict[int, ArmStatistics]:
    """Per-variant statistics only (no segments): what a daily look needs."""
    return experiment_statistics(conn, experiment, until, segments=False).arms


def _designed_values(experiment: Experiment, tables: Tables, metric: str):  # noqa: ANN202 - a subquery
    per_customer = customer_metrics(tables, experiment.attribution_days)
    return select(per_customer.c.variant, per_customer.c.customer_id,
                  as_number(per_customer.c[metric]).label("value")).subquery("values")


def positive_percentile(conn: Connection, values, q: float) -> float | None:  # noqa: ANN001 - a subquery
    """The ``q`` quantile (nearest rank) of the positive values, computed in the database with
    ORDER BY … OFFSET, which every SQL dialect has (unlike percentile_cont). Positive values only:
    revenue is mostly zeros, and a percentile over all customers would cap every order to 0."""
    positive = values.c.value > 0
    n = conn.scalar(select(func.count()).select_from(values).where(positive))
    if not n:
        return None
    rank = max(math.ceil(q * n) - 1, 0)
    return float(conn.scalar(select(values.c.value).where(positive).order_by(values.c.value).offset(rank).limit(1)))


def _capped(conn: Connection, values, q: float, variant_id) -> tuple[float | None, dict[int, SampleStats]]:  # noqa: ANN001
    cap = positive_percentile(conn, values, q)
    if cap is None:
        return None, {}
    x = case((values.c.value > cap, cap), else_=values.c.value)
    rows = conn.execute(
        select(values.c.variant, func.count(), func.sum(x), func.sum(x * x), func.sum(x * x * x))
        .group_by(values.c.variant)
    )
    return cap, {variant_id(v): SampleStats(int(n), float(a or 0), float(b or 0), float(c or 0))
                 for v, n, a, b, c in rows}


def capped_statistics(conn: Connection, experiment: Experiment, metric: str, q: float
                      ) -> tuple[float | None, dict[int, SampleStats]]:
    """Sufficient statistics of ``metric`` capped at the pooled ``q`` quantile of its positive values.

    Capping (winsorizing) a heavy tail at a percentile keeps a few huge orders from dominating the
    variance, and is what makes a small holdout's revenue testable (see analysis.frequentist).
    """
    if experiment.source != ExperimentSource.DESIGNED:
        return _imported_capped(conn, experiment, metric, q)
    with open_tables(conn, experiment) as (source, tables):
        return _capped(source, _designed_values(experiment, tables, metric), q, tables.variant_id)


def _imported_capped(conn: Connection, experiment: Experiment, metric: str, q: float
                     ) -> tuple[float | None, dict[int, SampleStats]]:
    """:func:`_capped` of imported results, computed from their stored blocks (read as Arrow, summed by
    numpy): the same nearest-rank cap of the positive values, and the same sums per variant."""
    rows = read_results(conn, experiment, ["variant", metric])
    values = numpy_view(rows[metric])
    positive = values[values > 0]
    if not len(positive):
        return None, {}
    rank = max(math.ceil(q * len(positive)) - 1, 0)
    cap = float(np.partition(positive, rank)[rank])
    x = np.minimum(values, cap)
    variants = variant_positions(experiment, rows["variant"])
    size = len(experiment.variants)
    n = np.bincount(variants, minlength=size)
    sums = [np.bincount(variants, power, size) for power in (x, x * x, x * x * x)]
    return cap, {v.id: SampleStats(int(n[i]), *(float(s[i]) for s in sums))
                 for i, v in enumerate(experiment.variants) if n[i]}


def covariates_of(experiment: Experiment) -> list[str]:
    """Pre-period covariates for regression adjustment: imported covariate columns, or the customer's
    spend and orders before the experiment for designed tests (those its source maps)."""
    if experiment.source != ExperimentSource.DESIGNED:
        return [m.name for m in experiment.metrics if m.role == MetricRole.COVARIATE]
    source = source_of(experiment)
    if source is None:
        return list(OWN_COVARIATES)
    if source.customers is None:
        return []
    return [c for c in OWN_COVARIATES if getattr(source.customers, c)]


def covariate_statistics(conn: Connection, experiment: Experiment, metric: str, covariates: Sequence[str]
                         ) -> dict[int, CovariateStats]:
    """Per variant id: n, Σy, Σy², Σx, Σxxᵀ and Σxy of ``metric`` (y) and the covariates (x), in SQL
    (imported results: read from the sums the import stored)."""
    if experiment.source == ExperimentSource.DESIGNED:
        return experiment_statistics(conn, experiment, segments=False).covariates(metric)
    out = {}
    k = len(covariates)
    for (variant_id, dimension, _), cell in stored_sums(conn, experiment).items():
        if dimension:
            continue
        sum_xx = np.array([[cell.sum(a, b) for b in covariates] for a in covariates]).reshape(k, k)
        out[variant_id] = CovariateStats(cell.n, cell.sum(metric), cell.sum(metric, metric),
                                         np.array([cell.sum(c) for c in covariates]), sum_xx,
                                         np.array([cell.sum(c, metric) for c in covariates]))
    return out

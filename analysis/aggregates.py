"""SQL aggregates: per-variant sufficient statistics computed inside the database.

Python receives one row per variant (n, Σx, Σx² for each metric) and never the per-customer rows,
which is what lets the same report run on a warehouse with tens of millions of customers.
Two sources feed the same shape: outcomes derived from events inside each customer's
attribution window (designed experiments), and per-customer results imported from elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import Connection, Numeric, and_, case, cast, func, literal, select
from sqlalchemy.sql import ColumnElement

from analysis.cuped import CovariateStats
from analysis.dialects import add_days
from analysis.sufficient import SampleStats
from experiments.models import (
    Assignment,
    Customer,
    Event,
    EventType,
    Experiment,
    ExperimentSource,
    MetricRole,
    MetricValue,
    Send,
)


@dataclass(frozen=True)
class ArmStatistics:
    """Everything the statistics need about one variant: its size and each metric's sums."""

    variant_id: int
    n: int
    metrics: dict[str, SampleStats]
    contacted: int = 0
    redemptions: int = 0
    sends: dict[str, int] = field(default_factory=dict)  # channel → touches sent (every step counts)


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.max(case((condition, 1), else_=0))


def designed_customer_metrics(experiment: Experiment, until: datetime | None = None):  # noqa: ANN202 - a subquery
    """One row per assigned customer with outcomes inside [assigned_at, assigned_at + window)."""
    in_window = and_(
        Event.customer_id == Assignment.customer_id,
        Event.occurred_at >= Assignment.assigned_at,
        Event.occurred_at < add_days(Assignment.assigned_at, experiment.attribution_days),
        *([Event.occurred_at < literal(until)] if until is not None else []),
    )
    kind = Event.event_type
    return (
        select(
            Assignment.variant_id,
            Assignment.customer_id,
            _flag(kind.in_([EventType.VISIT, EventType.ORDER])).label("returned"),
            _flag(kind == EventType.ORDER).label("ordered"),
            func.coalesce(func.sum(case((kind == EventType.ORDER, Event.value), else_=0)), 0).label("revenue"),
            _flag(kind == EventType.COUPON_REDEEMED).label("redeemed"),
            func.coalesce(func.sum(case((kind == EventType.COUPON_REDEEMED, 1), else_=0)), 0).label("redemptions"),
            _flag(kind == EventType.UNSUBSCRIBE).label("unsubscribed"),
            _flag(kind == EventType.COMPLAINT).label("complained"),
        )
        .select_from(Assignment)
        .outerjoin(Event, in_window)
        .where(Assignment.experiment_id == experiment.id)
        .group_by(Assignment.variant_id, Assignment.customer_id)
        .subquery("customer_metrics")
    )


def _designed_arms(conn: Connection, experiment: Experiment, metrics: Sequence[str],
                   until: datetime | None = None) -> list[ArmStatistics]:
    per_customer = designed_customer_metrics(experiment, until)
    columns = []
    for name in metrics:
        x = cast(per_customer.c[name], Numeric(18, 4))
        columns += [func.sum(x).label(f"{name}__sum"), func.sum(x * x).label(f"{name}__sum_sq"),
                    func.sum(x * x * x).label(f"{name}__sum_cu")]
    rows = conn.execute(
        select(
            per_customer.c.variant_id,
            func.count().label("n"),
            func.sum(per_customer.c.redemptions).label("redemptions"),
            *columns,
        ).group_by(per_customer.c.variant_id)
    ).mappings()
    contacted = _contacted(conn, experiment)
    sends = _sends(conn, experiment)
    return [
        ArmStatistics(
            variant_id=row["variant_id"],
            n=int(row["n"]),
            metrics={
                m: SampleStats(int(row["n"]), float(row[f"{m}__sum"] or 0), float(row[f"{m}__sum_sq"] or 0),
                               float(row[f"{m}__sum_cu"] or 0))
                for m in metrics
            },
            contacted=contacted.get(row["variant_id"], 0),
            redemptions=int(row["redemptions"] or 0),
            sends=sends.get(row["variant_id"], {}),
        )
        for row in rows
    ]


def _contacted(conn: Connection, experiment: Experiment) -> dict[int, int]:
    """Customers with at least one recorded send, per variant."""
    rows = conn.execute(
        select(Send.variant_id, func.count(func.distinct(Send.customer_id)))
        .where(Send.experiment_id == experiment.id)
        .group_by(Send.variant_id)
    )
    return {variant_id: int(count) for variant_id, count in rows}


def _sends(conn: Connection, experiment: Experiment) -> dict[int, dict[str, int]]:
    """Touches sent per variant and channel: what the channels bill for."""
    sends: dict[int, dict[str, int]] = {}
    rows = conn.execute(
        select(Send.variant_id, Send.channel, func.count())
        .where(Send.experiment_id == experiment.id)
        .group_by(Send.variant_id, Send.channel)
    )
    for variant_id, channel, count in rows:
        sends.setdefault(variant_id, {})[channel] = int(count)
    return sends


def _imported_arms(conn: Connection, experiment: Experiment, metrics: Sequence[str]) -> list[ArmStatistics]:
    value = MetricValue.value
    rows = conn.execute(
        select(
            Assignment.variant_id,
            MetricValue.metric,
            func.count().label("n"),
            func.sum(value).label("sum"),
            func.sum(value * value).label("sum_sq"),
            func.sum(value * value * value).label("sum_cu"),
        )
        .join(
            MetricValue,
            and_(MetricValue.experiment_id == Assignment.experiment_id, MetricValue.customer_id == Assignment.customer_id),
        )
        .where(Assignment.experiment_id == experiment.id, MetricValue.metric.in_(metrics))
        .group_by(Assignment.variant_id, MetricValue.metric)
    ).all()
    sizes = dict(
        conn.execute(
            select(Assignment.variant_id, func.count())
            .where(Assignment.experiment_id == experiment.id)
            .group_by(Assignment.variant_id)
        ).all()
    )
    by_variant: dict[int, dict[str, SampleStats]] = {v: {} for v in sizes}
    for variant_id, metric, n, total, total_sq, total_cu in rows:
        by_variant[variant_id][metric] = SampleStats(int(n), float(total or 0), float(total_sq or 0),
                                                     float(total_cu or 0))
    contacted_all = {v.id: sizes.get(v.id, 0) for v in experiment.variants if not v.is_control}
    return [
        ArmStatistics(variant_id=v, n=int(sizes[v]), metrics=by_variant[v], contacted=contacted_all.get(v, 0))
        for v in sizes
    ]


def arm_statistics(conn: Connection, experiment: Experiment, until: datetime | None = None
                   ) -> dict[int, ArmStatistics]:
    """Sufficient statistics of every metric for every variant of ``experiment``, keyed by variant id;
    ``until`` counts only events before that time (what a look on that day saw; designed experiments)."""
    metrics = [m.name for m in experiment.metrics if m.role == MetricRole.METRIC]
    if experiment.source == ExperimentSource.DESIGNED:
        arms = _designed_arms(conn, experiment, metrics, until)
    else:
        arms = _imported_arms(conn, experiment, metrics)
    found = {arm.variant_id: arm for arm in arms}
    empty = {m: SampleStats(0, 0.0, 0.0) for m in metrics}
    return {v.id: found.get(v.id, ArmStatistics(v.id, 0, dict(empty))) for v in experiment.variants}


def metric_values(experiment: Experiment, metric: str):  # noqa: ANN201 - a subquery
    """(variant_id, customer_id, value) of one metric for every assigned customer, as a subquery."""
    if experiment.source == ExperimentSource.DESIGNED:
        per_customer = designed_customer_metrics(experiment)
        return select(per_customer.c.variant_id, per_customer.c.customer_id,
                      cast(per_customer.c[metric], Numeric(18, 4)).label("value")).subquery("values")
    return (
        select(Assignment.variant_id, Assignment.customer_id, MetricValue.value)
        .join(MetricValue, and_(MetricValue.experiment_id == Assignment.experiment_id,
                                MetricValue.customer_id == Assignment.customer_id))
        .where(Assignment.experiment_id == experiment.id, MetricValue.metric == metric)
        .subquery("values")
    )


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


def capped_statistics(conn: Connection, experiment: Experiment, metric: str, q: float
                      ) -> tuple[float | None, dict[int, SampleStats]]:
    """Sufficient statistics of ``metric`` capped at the pooled ``q`` quantile of its positive values.

    Capping (winsorizing) a heavy tail at a percentile keeps a few huge orders from dominating the
    variance, and is what makes a small holdout's revenue testable (see analysis.frequentist).
    """
    values = metric_values(experiment, metric)
    cap = positive_percentile(conn, values, q)
    if cap is None:
        return None, {}
    x = case((values.c.value > cap, cap), else_=values.c.value)
    rows = conn.execute(
        select(values.c.variant_id, func.count(), func.sum(x), func.sum(x * x), func.sum(x * x * x))
        .group_by(values.c.variant_id)
    )
    return cap, {v: SampleStats(int(n), float(a or 0), float(b or 0), float(c or 0)) for v, n, a, b, c in rows}


DESIGNED_COVARIATES = ("spend_before", "orders_before")  # pre-period, from the customers table


def covariates_of(experiment: Experiment) -> list[str]:
    """Pre-period covariates for regression adjustment: imported covariate columns, or the customer's
    spend and orders before the experiment for designed tests."""
    if experiment.source == ExperimentSource.DESIGNED:
        return list(DESIGNED_COVARIATES)
    return [m.name for m in experiment.metrics if m.role == MetricRole.COVARIATE]


def _covariate_columns(experiment: Experiment, covariates: Sequence[str], values):  # noqa: ANN001, ANN202
    """(join target, covariate expressions) for the per-customer values subquery."""
    if experiment.source == ExperimentSource.DESIGNED:
        return (Customer, Customer.customer_id == values.c.customer_id,
                [cast(getattr(Customer, c), Numeric(18, 4)) for c in covariates])
    pivot = (
        select(MetricValue.customer_id, *[
            func.max(case((MetricValue.metric == c, MetricValue.value))).label(c) for c in covariates])
        .where(MetricValue.experiment_id == experiment.id, MetricValue.metric.in_(covariates))
        .group_by(MetricValue.customer_id)
        .subquery("covariates")
    )
    return pivot, pivot.c.customer_id == values.c.customer_id, [pivot.c[c] for c in covariates]


def covariate_statistics(conn: Connection, experiment: Experiment, metric: str, covariates: Sequence[str]
                         ) -> dict[int, CovariateStats]:
    """Per variant id: n, Σy, Σy², Σx, Σxxᵀ and Σxy of ``metric`` (y) and the covariates (x), in SQL."""
    values = metric_values(experiment, metric)
    target, on, xs = _covariate_columns(experiment, covariates, values)
    y = values.c.value
    k = len(xs)
    columns = [func.count(), func.sum(y), func.sum(y * y)]
    columns += [func.sum(x) for x in xs] + [func.sum(x * y) for x in xs]
    columns += [func.sum(xs[i] * xs[j]) for i in range(k) for j in range(i, k)]
    out = {}
    for row in conn.execute(select(values.c.variant_id, *columns).join(target, on).group_by(values.c.variant_id)):
        variant_id, n, sy, syy, *rest = row
        rest = [float(r or 0) for r in rest]
        sum_x, sum_xy, upper = np.array(rest[:k]), np.array(rest[k:2 * k]), rest[2 * k:]
        sum_xx = np.zeros((k, k))
        it = iter(upper)
        for i in range(k):
            for j in range(i, k):
                sum_xx[i, j] = sum_xx[j, i] = next(it)
        out[variant_id] = CovariateStats(int(n), float(sy or 0), float(syy or 0), sum_x, sum_xx, sum_xy)
    return out

"""Segments: the same comparison inside each cohort, value tier or imported segment.

Recall effects differ by who is recalled, and the segment tables are where a team finds that a
coupon works for the recently lapsed and not for the long silent. The database labels every
assigned customer with its segment and returns sufficient statistics per variant × segment; the
statistics are the same as for the whole population, and the p-values are adjusted across all
variants × segments, since many segments are many chances to be fooled.

Designed experiments have three dimensions computed at assignment time: ``cohort`` (the lifecycle
stage: new_inactive, dormant_30d, lapsed_1_3m, silent_3m or active), ``value_tier`` (spend tercile)
and ``rfm_tier`` (R + F + M quintile scores: high 12-15, mid 8-11, low 3-7). Imported results have the
segment columns given at import.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Connection, Numeric, and_, case, cast, func, literal, select
from sqlalchemy.sql import ColumnElement

from analysis.aggregates import designed_customer_metrics
from analysis.dialects import add_days
from analysis.sufficient import SampleStats
from experiments.cohorts import rfm_scores
from experiments.models import Assignment, Customer, Experiment, ExperimentSource, MetricValue, SegmentValue

DESIGNED_DIMENSIONS = ("cohort", "value_tier", "rfm_tier")

SegmentKey = tuple[str, str]  # (dimension, value)


def lifecycle_stage_at(assigned_at: ColumnElement) -> ColumnElement[str]:
    """The lifecycle stage of a customer at ``assigned_at``, in SQL (same rules as experiments.cohorts)."""
    last = Customer.last_active_at
    return case(
        (and_(Customer.first_order_at.is_(None), Customer.signup_at <= add_days(assigned_at, -3),
              Customer.signup_at > add_days(assigned_at, -8)), literal("new_inactive")),
        (last <= add_days(assigned_at, -90), literal("silent_3m")),
        (last <= add_days(assigned_at, -45), literal("lapsed_1_3m")),
        (last <= add_days(assigned_at, -30), literal("dormant_30d")),
        else_=literal("active"),
    )


def _designed_labels(experiment: Experiment, dimension: str):  # noqa: ANN202 - a subquery
    if dimension == "cohort":
        label = lifecycle_stage_at(Assignment.assigned_at)
        source = select(Assignment.customer_id, label.label("segment")).join(
            Customer, Customer.customer_id == Assignment.customer_id)
    elif dimension == "value_tier":
        tiers = rfm_scores(experiment.launched_at).subquery()
        source = select(Assignment.customer_id, tiers.c.value_tier.label("segment")).join(
            tiers, tiers.c.customer_id == Assignment.customer_id)
    elif dimension == "rfm_tier":
        scores = rfm_scores(experiment.launched_at).subquery()
        total = scores.c.recency + scores.c.frequency + scores.c.monetary
        tier = case((total >= 12, literal("high")), (total >= 8, literal("mid")), else_=literal("low"))
        source = select(Assignment.customer_id, tier.label("segment")).join(
            scores, scores.c.customer_id == Assignment.customer_id)
    else:
        raise ValueError(f"unknown segment dimension {dimension!r}; designed experiments have "
                         f"{', '.join(DESIGNED_DIMENSIONS)}")
    return source.where(Assignment.experiment_id == experiment.id).subquery("labels")


def dimensions(conn: Connection, experiment: Experiment) -> list[str]:
    if experiment.source == ExperimentSource.DESIGNED:
        return list(DESIGNED_DIMENSIONS)
    return list(conn.scalars(select(SegmentValue.segment).where(SegmentValue.experiment_id == experiment.id)
                             .distinct().order_by(SegmentValue.segment)))


def _rows(conn: Connection, experiment: Experiment, dimension: str, metric: str) -> Iterator[tuple]:
    """(variant id, segment value, n, Σx, Σx²) rows computed in the database."""
    if experiment.source == ExperimentSource.DESIGNED:
        per_customer = designed_customer_metrics(experiment)
        labels = _designed_labels(experiment, dimension)
        x = cast(per_customer.c[metric], Numeric(18, 4))
        query = (
            select(per_customer.c.variant_id, labels.c.segment, func.count(), func.sum(x), func.sum(x * x))
            .join(labels, labels.c.customer_id == per_customer.c.customer_id)
            .group_by(per_customer.c.variant_id, labels.c.segment)
        )
    else:
        x = MetricValue.value
        query = (
            select(Assignment.variant_id, SegmentValue.value, func.count(), func.sum(x), func.sum(x * x))
            .join(MetricValue, and_(MetricValue.experiment_id == Assignment.experiment_id,
                                    MetricValue.customer_id == Assignment.customer_id))
            .join(SegmentValue, and_(SegmentValue.experiment_id == Assignment.experiment_id,
                                     SegmentValue.customer_id == Assignment.customer_id))
            .where(Assignment.experiment_id == experiment.id, MetricValue.metric == metric,
                   SegmentValue.segment == dimension)
            .group_by(Assignment.variant_id, SegmentValue.value)
        )
    yield from conn.execute(query)


def segment_statistics(conn: Connection, experiment: Experiment, metric: str
                       ) -> dict[SegmentKey, dict[int, SampleStats]]:
    """Sufficient statistics of ``metric`` per segment (dimension, value) and variant id."""
    out: dict[SegmentKey, dict[int, SampleStats]] = {}
    for dimension in dimensions(conn, experiment):
        for variant_id, value, n, total, total_sq in _rows(conn, experiment, dimension, metric):
            out.setdefault((dimension, str(value)), {})[variant_id] = SampleStats(
                int(n), float(total or 0), float(total_sq or 0))
    return dict(sorted(out.items()))

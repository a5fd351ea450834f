"""Targeting data: the pre-period features and outcomes of an experiment's customers, read by ONE SQL query.

Designed experiments: the customer's row at launch (lifecycle stage, days inactive, orders and spend
before, city) and RFM scores, beside the outcomes in their attribution window. Imported results: the
``--covariates`` and ``--segments`` columns stored with them. The statistics are
:mod:`analysis.targeting`; this module only reads, and turns an experiment's design into costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Select, case, select

from analysis.aggregates import customer_metrics
from analysis.tables import lifecycle_stage_at, own_tables
from analysis.targeting import (
    Costs,
    TargetingError,
    TargetingResult,
    evaluate,
    prepare_like,
)
from experiments.catalog import DEFAULT_CHANNEL_COSTS
from experiments.cohorts import rfm_scores
from experiments.models import (
    Customer,
    Experiment,
    ExperimentSource,
    MetricKind,
    MetricRole,
    Variant,
)
from experiments.result_tables import (
    results_table,
    segment_column,
    stored_results,
    table_name,
    value_column,
)
from experiments.store import stored_spec

# The customer fields a designed experiment learns from (``--features`` chooses among them).
DESIGNED_FEATURES = ("lifecycle_stage", "days_inactive", "days_since_signup", "orders_before", "spend_before",
                     "city", "recency", "frequency", "monetary", "value_tier")
ALL_VARIANTS = "all"  # every contacted variant pooled against the holdout


@dataclass(frozen=True)
class TargetingData:
    """One row per customer of the experiment: id, variant, features and the outcomes the policy counts."""

    customer_ids: np.ndarray
    variant_ids: np.ndarray
    features: pd.DataFrame
    outcomes: pd.DataFrame  # columns: returned, revenue (if any), redeemed (designed) and y, the modelled metric
    metric: str  # the modelled metric's name (imported: "returned" resolves to their first binary metric)


def outcome_columns(experiment: Experiment) -> tuple[str, str | None]:
    """(returned, revenue): designed experiments have both; imported ones use their first binary and
    first continuous metric (Hillstrom: visit and spend)."""
    if experiment.source == ExperimentSource.DESIGNED:
        return "returned", "revenue"
    metrics = [m for m in experiment.metrics if m.role == MetricRole.METRIC]
    binary = next((m.name for m in metrics if m.kind == MetricKind.BINARY), None)
    continuous = next((m.name for m in metrics if m.kind == MetricKind.CONTINUOUS), None)
    if binary is None and continuous is None:
        raise TargetingError(f"{experiment.name!r} has no metric to learn from")
    return binary or continuous, continuous  # type: ignore[return-value]


def feature_query(experiment: Experiment, numbers: Sequence[str], segments: Sequence[str]) -> Select:
    """The ONE query that reads targeting data: per customer, variant, features and outcomes (imported
    results: their ``numbers`` (metrics and covariates) and ``segments``)."""
    if experiment.source != ExperimentSource.DESIGNED:
        return imported_query(experiment, numbers, segments)
    spec = stored_spec(experiment)
    if spec is not None and spec.source is not None:
        raise TargetingError(f"{experiment.name!r} reads a warehouse [source]; targeting reads Recall Lab's "
                             "own tables only (for now)")
    return _designed_query(experiment)


def _designed_query(experiment: Experiment) -> Select:
    tables = own_tables(experiment)
    o = customer_metrics(tables, experiment.attribution_days).c
    c = Customer.__table__
    columns = [o.customer_id, o.variant, o.returned, o.revenue, o.redeemed, o.assigned_at,
               lifecycle_stage_at(o.assigned_at, c).label("lifecycle_stage"),
               c.c.last_active_at, c.c.signup_at, c.c.orders_before, c.c.spend_before, c.c.city]
    query = select(*columns).select_from(o.customer_id.table.outerjoin(c, c.c.customer_id == o.customer_id))
    if experiment.launched_at is not None:  # RFM scores as they were at launch
        rfm = rfm_scores(experiment.launched_at).subquery("rfm")
        query = query.add_columns(rfm.c.recency, rfm.c.frequency, rfm.c.monetary, rfm.c.value_tier).outerjoin(
            rfm, rfm.c.customer_id == o.customer_id)
    return query.order_by(o.customer_id)


def _segment_names(conn: Connection, experiment: Experiment) -> list[str]:
    """Every segment column of an imported experiment, in the order its results table stores them."""
    return list(stored_results(conn, experiment).segments)


def imported_query(experiment: Experiment, numbers: Sequence[str], segments: Sequence[str]) -> Select:
    """Imported results, one row per customer from the experiment's results table
    (:mod:`experiments.result_tables`); ``segments`` are all its segment columns, in stored order."""
    positions = {m.name: m.position for m in experiment.metrics if m.role in (MetricRole.METRIC, MetricRole.COVARIATE)}
    table = results_table(table_name(experiment.id), sorted(positions.values()), len(segments))
    variant_id = case(*[(table.c.variant == v.name, v.id) for v in experiment.variants])
    return (select(table.c.customer_id, variant_id.label("variant"),
                   *[table.c[value_column(positions[m])].label(m) for m in numbers],
                   *[table.c[segment_column(i)].label(s) for i, s in enumerate(segments)])
            .order_by(table.c.customer_id))


def load(conn: Connection, experiment: Experiment, *, metric: str = "returned",
         features: Sequence[str] | None = None) -> TargetingData:
    """Read the experiment's customers once and shape them for :func:`analysis.targeting.evaluate`."""
    designed = experiment.source == ExperimentSource.DESIGNED
    returned, revenue = outcome_columns(experiment)
    if not designed and metric == "returned":
        metric = returned
    known_metrics = {"returned", "revenue"} if designed else {m.name for m in experiment.metrics
                                                             if m.role == MetricRole.METRIC}
    if metric not in known_metrics:
        raise TargetingError(f"--metric {metric!r}: choose one of {', '.join(sorted(known_metrics))}")
    segments = [] if designed else _segment_names(conn, experiment)
    available = list(DESIGNED_FEATURES) if designed else [
        m.name for m in experiment.metrics if m.role == MetricRole.COVARIATE] + segments
    chosen = list(features) if features else available
    unknown = [f for f in chosen if f not in available]
    if unknown:
        raise TargetingError(f"--features: unknown {', '.join(unknown)}; {experiment.name!r} has "
                             f"{', '.join(available) or 'none'}")
    numbers = [metric, returned, *([revenue] if revenue else []), *[f for f in chosen if f not in segments]]
    frame = pd.DataFrame(conn.execute(feature_query(experiment, list(dict.fromkeys(numbers)), segments)
                                      ).mappings().all())
    if frame.empty:
        raise TargetingError(f"{experiment.name!r} has no assigned customers")
    if designed:
        frame = _designed_frame(frame)
    outcomes = pd.DataFrame({"returned": frame[returned].astype(float)})
    if revenue is not None:
        outcomes["revenue"] = frame[revenue].astype(float)
    if "redeemed" in frame:
        outcomes["redeemed"] = frame["redeemed"].astype(float)
    outcomes["y"] = frame[metric].astype(float)
    return TargetingData(frame["customer_id"].to_numpy(), frame["variant"].astype(int).to_numpy(),
                         frame[chosen].reset_index(drop=True), outcomes.reset_index(drop=True), metric)


def _designed_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Days inactive and since sign-up at assignment, from the timestamps the query read."""
    assigned = pd.to_datetime(frame["assigned_at"])
    frame["days_inactive"] = (assigned - pd.to_datetime(frame["last_active_at"])).dt.days
    frame["days_since_signup"] = (assigned - pd.to_datetime(frame["signup_at"])).dt.days
    frame["spend_before"] = frame["spend_before"].astype(float)
    for column in ("orders_before", "recency", "frequency", "monetary"):
        if column in frame:
            frame[column] = frame[column].astype(float)
        else:
            frame[column] = np.nan
    if "value_tier" not in frame:
        frame["value_tier"] = None
    return frame


def contacted_variants(experiment: Experiment, variant: str) -> list[Variant]:
    contacted = [v for v in experiment.variants if not v.is_control]
    if variant == ALL_VARIANTS:
        return contacted
    chosen = [v for v in contacted if v.name == variant]
    if not chosen:
        raise TargetingError(f"--variant {variant!r}: choose {ALL_VARIANTS} or one of "
                             f"{', '.join(v.name for v in contacted)}")
    return chosen


def costs_of(experiment: Experiment, variants: Sequence[Variant], sizes: dict[int, int], *,
             contact_cost: float | None = None, coupon: float | None = None) -> Costs:
    """Unit costs of contacting one customer with ``variants`` (size-weighted when pooled): every touch
    at its channel's unit cost (the spec's [costs], else experiments.catalog), and the coupon."""
    spec = stored_spec(experiment)
    unit = {c.value: cost for c, cost in DEFAULT_CHANNEL_COSTS.items()}
    margin = 1.0
    if spec is not None:
        unit.update({c.value: cost for c, cost in spec.costs.channels.items()})
        margin = float(spec.costs.margin)
    specs = {v.name: v for v in spec.variants} if spec is not None else {}
    total = sum(sizes.get(v.id, 0) for v in variants) or 1
    contact = coupons = 0.0
    for v in variants:
        weight = sizes.get(v.id, 0) / total
        touches = [v.channel] + ([t.channel.value for t in specs[v.name].touches] if v.name in specs else [])
        contact += weight * float(sum(unit.get(ch, Decimal("0")) for ch in touches if ch))
        coupons += weight * float(v.coupon)
    return Costs(contact=contact if contact_cost is None else contact_cost,
                 coupon=coupons if coupon is None else coupon, margin=margin)


@dataclass(frozen=True)
class Targeting:
    """A learned targeting for one experiment: the evaluation, and a cross-fitted score per customer."""

    experiment: str
    result: TargetingResult
    customer_ids: np.ndarray  # every customer of the experiment
    uplift: np.ndarray  # cross-fitted (out-of-fold) for the customers learned from; see score_all


def learn(conn: Connection, experiment: Experiment, *, metric: str = "returned", variant: str = ALL_VARIANTS,
          features: Sequence[str] | None = None, contact_cost: float | None = None, coupon: float | None = None,
          value_per_return: float | None = None, replicates: int | None = None, seed: int = 0) -> Targeting:
    """Read, learn and evaluate: what ``recall target`` and the Targeting page run."""
    data = load(conn, experiment, metric=metric, features=features)
    variants = contacted_variants(experiment, variant)
    ids = {v.id for v in variants}
    control = experiment.control.id
    rows = np.flatnonzero(np.isin(data.variant_ids, [*ids, control]))
    treated = np.isin(data.variant_ids[rows], list(ids))
    sizes = dict(zip(*np.unique(data.variant_ids, return_counts=True), strict=True))
    o = data.outcomes.iloc[rows]
    options = {} if replicates is None else {"replicates": replicates}
    result = evaluate(
        data.features.iloc[rows].reset_index(drop=True), treated, o["y"].to_numpy(), metric=data.metric,
        variant=variant, returned=o["returned"].to_numpy(),
        revenue=o["revenue"].to_numpy() if "revenue" in o else None,
        redeemed=o["redeemed"].to_numpy() if "redeemed" in o else None,
        costs=costs_of(experiment, variants, {int(k): int(v) for k, v in sizes.items()},
                       contact_cost=contact_cost, coupon=coupon),
        value_per_return=value_per_return, seed=seed, **options)
    uplift = score_all(result, data.features, rows)
    return Targeting(experiment.name, result, data.customer_ids, uplift)


def score_all(result: TargetingResult, features: pd.DataFrame, learned_rows: np.ndarray) -> np.ndarray:
    """One score per customer of the experiment: the cross-fitted score of each customer learned from;
    customers of other variants (not learned from) get the mean of the fold models' predictions."""
    out = np.full(len(features), np.nan)
    out[learned_rows] = result.scores
    others = np.setdiff1d(np.arange(len(features)), learned_rows)
    if others.size:
        X = prepare_like(features.iloc[others], result.dtypes)
        out[others] = np.mean([m.uplift(X, None) for m in result.fold_models], axis=0)
    return out

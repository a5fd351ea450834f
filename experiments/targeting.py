"""Targeting data: the pre-period features and outcomes of an experiment's customers, read in one go.

Designed experiments: the customer's row at launch (lifecycle stage, days inactive, orders and spend
before, city) and RFM scores, beside the outcomes in their attribution window, by ONE SQL query.
Imported results: the ``--covariates`` and ``--segments`` columns stored with them, read from their
stored blocks (:mod:`experiments.result_tables`). The statistics are
:mod:`analysis.targeting`; this module only reads, and turns an experiment's design into costs.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import joblib
import numpy as np
import pandas as pd
from sqlalchemy import Connection, DateTime, FromClause, Select, and_, case, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from analysis.aggregates import customer_metrics
from analysis.tables import lifecycle_stage_at, own_tables
from analysis.targeting import (
    Costs,
    InSampleScoring,
    TargetingError,
    TargetingResult,
    cost_optimal,
    evaluate,
    prepare_like,
    top_share,
    value_per_customer,
)
from analysis.targeting_gain import ArmTotals, PolicyValue, TargetingGain, policy_value, targeting_gain
from experiments.access import Actor, Permission, require
from experiments.assignment import BUCKETS, buckets
from experiments.audit import Action, record
from experiments.catalog import DEFAULT_CHANNEL_COSTS
from experiments.cohorts import rfm_scores
from experiments.db import bulk_insert
from experiments.identifiers import check_name
from experiments.models import (
    Assignment,
    Customer,
    Experiment,
    ExperimentSource,
    MetricKind,
    MetricRole,
    TargetingModel,
    TargetScore,
    Variant,
)
from experiments.result_tables import read_results, stored_results, variant_positions
from experiments.store import stored_spec, utcnow

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


def feature_query(experiment: Experiment) -> Select:
    """The ONE query that reads a designed experiment's targeting data: per customer, variant, features and
    outcomes (imported results are read by :func:`imported_frame`)."""
    spec = stored_spec(experiment)
    if spec is not None and spec.source is not None:
        raise TargetingError(f"{experiment.name!r} reads a warehouse [source]; targeting reads Recall Lab's "
                             "own tables only (for now)")
    return _designed_query(experiment)


def _designed_query(experiment: Experiment) -> Select:
    tables = own_tables(experiment)
    o = customer_metrics(tables, experiment.attribution_days).c
    c = Customer.__table__
    query = (select(o.customer_id, o.variant, o.returned, o.redeemed, o.revenue, o.assigned_at,
                    *_customer_features(o.assigned_at, c))
             .select_from(o.customer_id.table.outerjoin(c, c.c.customer_id == o.customer_id)))
    return _with_rfm(query, experiment.launched_at, o.customer_id).order_by(o.customer_id)


def _customer_features(at: ColumnElement, c: FromClause) -> list[ColumnElement]:
    """The customer fields a designed experiment learns from, as they were at ``at`` (its assignment)."""
    return [lifecycle_stage_at(at, c).label("lifecycle_stage"), c.c.last_active_at, c.c.signup_at,
            c.c.orders_before, c.c.spend_before, c.c.city]


def _with_rfm(query: Select, at: datetime | None, customer_id: ColumnElement) -> Select:
    """RFM scores as they were at ``at`` (launch), joined to ``query``."""
    if at is None:
        return query
    rfm = rfm_scores(at).subquery("rfm")
    return query.add_columns(rfm.c.recency, rfm.c.frequency, rfm.c.monetary, rfm.c.value_tier).outerjoin(
        rfm, rfm.c.customer_id == customer_id)


def audience_query(customer_ids: Select, as_of: datetime) -> Select:
    """The features of a new audience (``customer_ids``: a select of ids) at ``as_of``: the same columns
    :func:`feature_query` reads for a designed experiment, so a stored model scores what it learned from."""
    c = Customer.__table__
    at = literal(as_of, DateTime())
    query = (select(c.c.customer_id, at.label("assigned_at"), *_customer_features(at, c))
             .where(c.c.customer_id.in_(customer_ids)))
    return _with_rfm(query, as_of, c.c.customer_id).order_by(c.c.customer_id)


def imported_frame(conn: Connection, experiment: Experiment, numbers: Sequence[str]) -> pd.DataFrame:
    """Imported results, one row per customer in id order, read from their stored blocks
    (:mod:`experiments.result_tables`): customer_id, variant (its id), ``numbers`` (metrics and covariates)
    and every segment column in stored order."""
    import pyarrow as pa

    segments = list(stored_results(conn, experiment).segments)
    rows = read_results(conn, experiment, ["customer_id", "variant", *numbers, *segments]).sort_by("customer_id")
    frame = pd.DataFrame({"customer_id": rows["customer_id"].to_numpy(),
                          "variant": np.array([v.id for v in experiment.variants])[
                              variant_positions(experiment, rows["variant"])]})
    for name in numbers:
        frame[name] = rows[name].to_numpy()
    for name in segments:
        frame[name] = rows[name].cast(pa.string()).to_numpy()
    return frame


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
    segments = [] if designed else list(stored_results(conn, experiment).segments)
    available = list(DESIGNED_FEATURES) if designed else [
        m.name for m in experiment.metrics if m.role == MetricRole.COVARIATE] + segments
    chosen = list(features) if features else available
    unknown = [f for f in chosen if f not in available]
    if unknown:
        raise TargetingError(f"--features: unknown {', '.join(unknown)}; {experiment.name!r} has "
                             f"{', '.join(available) or 'none'}")
    numbers = [metric, returned, *([revenue] if revenue else []), *[f for f in chosen if f not in segments]]
    frame = (pd.DataFrame(conn.execute(feature_query(experiment)).mappings().all()) if designed
             else imported_frame(conn, experiment, list(dict.fromkeys(numbers))))
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
    learned_rows: np.ndarray = field(default_factory=lambda: np.empty(0, int), repr=False)  # positions learned from


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
    return Targeting(experiment.name, result, data.customer_ids, uplift, rows)


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


# ---------------------------------------------------------------- closing the loop: stored models


POLICY_SHARE = 0.5  # of a targeted experiment's audience, hashed into the targeted-policy group
SCORE_CHUNK = 50_000  # customers scored at a time at launch (features read by one query, streamed)


@dataclass(frozen=True)
class StoredModel:
    """A stored targeting model as ``recall target --list`` shows it."""

    name: str
    experiment: str
    metric: str
    variant: str
    learner: str
    features: tuple[str, ...]
    qini: float | None
    auuc: float | None
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class Scorer:
    """A stored model, ready to score customers who were not learned from.

    A cross-fitted model is K fold models; a customer is scored by the mean of the fold models that did
    NOT learn from them: a new customer by all K, a customer of the training experiment by the one fold
    model that held them out (their cross-fitted score). No customer is ever scored in-sample.
    """

    name: str
    metric: str
    dtypes: dict
    fold_models: tuple
    train_ids: tuple  # per fold model: the customer ids it learned from
    unit_cost: float
    value_per_return: float
    margin: float

    def score(self, customer_ids: np.ndarray, features: pd.DataFrame) -> np.ndarray:
        X = prepare_like(features.reset_index(drop=True), self.dtypes)
        total, count = np.zeros(len(X)), np.zeros(len(X))
        for model, learned in zip(self.fold_models, self.train_ids, strict=True):
            fresh = ~np.isin(customer_ids, learned)
            if fresh.any():
                total[fresh] += model.uplift(X[fresh], None)
                count[fresh] += 1
        if (count == 0).any():
            raise InSampleScoring(f"{int((count == 0).sum()):,} customers were learned from by every fold model "
                                  f"of {self.name!r}; they cannot be scored out of sample")
        return total / count

    def targeted(self, uplift: np.ndarray, share: float | None) -> np.ndarray:
        """The targeted audience: the top ``share`` by uplift, or (None) the cost-optimal cutoff: where
        the expected incremental value on margin exceeds the contact and expected coupon cost."""
        if share is not None:
            return top_share(uplift, share)
        expected = value_per_customer(uplift, self.metric == "revenue", self.value_per_return, self.margin)
        return cost_optimal(expected, self.unit_cost)


def save_model(session: Session, actor: Actor, name: str, experiment: Experiment, learned: Targeting) -> None:
    """Store ``learned`` as model ``name`` (audited; role: plan). Only designed experiments: a new audience
    is scored from the customer table, which imported results' columns are not."""
    require(actor, Permission.PLAN)
    name = check_name(name, "model name")
    if experiment.source != ExperimentSource.DESIGNED:
        raise TargetingError(f"--save: {experiment.name!r} is imported; only a designed experiment's model can "
                             "score a new audience (its features come from the customer table)")
    if session.scalar(select(TargetingModel.id).where(TargetingModel.name == name)) is not None:
        raise TargetingError(f"--save: a targeting model {name!r} already exists; choose another name")
    result, e = learned.result, learned.result.evaluation
    learned_ids = learned.customer_ids[learned.learned_rows]
    spec = stored_spec(experiment)
    blob = io.BytesIO()
    joblib.dump({"fold_models": result.fold_models, "dtypes": result.dtypes,
                 "train_ids": [learned_ids[m.train_rows] for m in result.fold_models],
                 "margin": float(spec.costs.margin) if spec is not None else 1.0}, blob)
    session.add(TargetingModel(
        name=name, experiment_id=experiment.id, experiment_name=experiment.name, metric=e.metric, variant=e.variant,
        learner=e.estimator, features=json.dumps(list(result.dtypes)), evaluation=json.dumps(e.to_dict()),
        estimator=blob.getvalue(), created_at=utcnow(), created_by=actor.name))
    record(session, actor, Action.MODEL_SAVE, name, experiment=experiment.name, metric=e.metric,
           learner=e.estimator, qini=e.qini, auuc=e.auuc, features=list(result.dtypes))


def list_models(session: Session) -> list[StoredModel]:
    rows = session.scalars(select(TargetingModel).order_by(TargetingModel.created_at.desc(), TargetingModel.name))
    out = []
    for m in rows:
        e = json.loads(m.evaluation)
        out.append(StoredModel(m.name, m.experiment_name, m.metric, m.variant, m.learner,
                               tuple(json.loads(m.features)), e.get("qini"), e.get("auuc"), m.created_at, m.created_by))
    return out


def load_scorer(session: Session, name: str) -> Scorer:
    row = session.scalar(select(TargetingModel).where(TargetingModel.name == name))
    if row is None:
        raise TargetingError(f"no stored targeting model {name!r}")
    stored = joblib.load(io.BytesIO(row.estimator))  # written only by save_model (docs/security.md)
    e = json.loads(row.evaluation)
    return Scorer(row.name, row.metric, stored["dtypes"], tuple(stored["fold_models"]), tuple(stored["train_ids"]),
                  float(e.get("unit_cost") or 0.0), float(e.get("value_per_return") or 0.0), stored["margin"])


def score_audience(session: Session, experiment: Experiment, customer_ids: Select, as_of: datetime) -> tuple[int, int]:
    """Score the customers ``customer_ids`` selects with the experiment's target model and store, per
    customer, the uplift, the policy group and whether the targeted policy contacts them (target_scores).

    Features come from ONE query (:func:`audience_query`), streamed; scoring runs in Python on
    :data:`SCORE_CHUNK` customers at a time. The cutoff is applied once all are scored (a top share is a
    rank). Customers already scored for this experiment keep their rows (re-launch moves nobody).
    Returns (scored now, of them targeted).
    """
    spec = stored_spec(experiment)
    assert spec is not None and spec.target is not None
    scorer = load_scorer(session, spec.target)
    scored = select(TargetScore.customer_id).where(TargetScore.experiment_id == experiment.id)
    query = audience_query(customer_ids.where(Customer.customer_id.not_in(scored)), as_of)
    ids, uplift = [], []
    # yield_per on this statement only: the connection's later statements (the INSERT) use a plain cursor
    rows = session.connection().execute(query, execution_options={"yield_per": SCORE_CHUNK})
    for chunk in rows.mappings().partitions():
        frame = _designed_frame(pd.DataFrame(chunk))
        chunk_ids = frame["customer_id"].to_numpy()
        ids.append(chunk_ids)
        uplift.append(scorer.score(chunk_ids, frame))
    if not ids:
        return 0, 0
    all_ids, all_uplift = np.concatenate(ids), np.concatenate(uplift)
    targeted = scorer.targeted(all_uplift, spec.target_share)
    policy = np.asarray(buckets(f"{experiment.salt}:policy", all_ids)) < round(POLICY_SHARE * BUCKETS)
    bulk_insert(session, TargetScore, [
        {"experiment_id": experiment.id, "customer_id": c, "uplift": float(u), "targeting_policy": bool(p),
         "targeted": bool(t)} for c, u, p, t in zip(all_ids, all_uplift, policy, targeted, strict=True)])
    return len(all_ids), int(targeted.sum())


def gain_of(conn: Connection, experiment: Experiment, *, alpha: float = 0.05) -> TargetingGain | None:
    """The report's targeting-gain section of a targeted experiment (None before launch): one aggregate
    query per policy group and arm over the report's per-customer outcomes, then :mod:`analysis.targeting_gain`."""
    spec = stored_spec(experiment)
    if spec is None or spec.target is None:
        return None
    o = customer_metrics(own_tables(experiment), experiment.attribution_days)
    s = TargetScore.__table__
    contacted = [v.id for v in experiment.variants if not v.is_control]
    arm = case((o.c.variant.in_(contacted), True), else_=False).label("contacted")
    rows = conn.execute(
        select(s.c.targeting_policy, arm, func.count(), func.sum(o.c.returned), func.sum(o.c.revenue),
               func.sum(o.c.revenue * o.c.revenue), func.sum(o.c.redeemed))
        .select_from(o.join(s, and_(s.c.customer_id == o.c.customer_id, s.c.experiment_id == experiment.id)))
        .group_by(s.c.targeting_policy, arm)).all()
    if not rows:
        return None
    totals = {(bool(p), bool(c)): ArmTotals(int(n), float(r or 0), float(m or 0), float(mm or 0), float(d or 0))
              for p, c, n, r, m, mm, d in rows}
    customers = dict(conn.execute(select(s.c.targeting_policy, func.count()).where(s.c.experiment_id == experiment.id)
                                  .group_by(s.c.targeting_policy)).all())
    variants = [v for v in experiment.variants if not v.is_control]
    sizes = dict(conn.execute(select(Assignment.variant_id, func.count()).where(
        Assignment.experiment_id == experiment.id).group_by(Assignment.variant_id)).all())
    costs = costs_of(experiment, variants, sizes)  # several contacted variants: size-weighted
    empty = ArmTotals(0, 0.0, 0.0, 0.0, 0.0)

    def value(policy: bool, label: str) -> tuple[PolicyValue, float, float]:
        return policy_value(label, int(customers.get(policy, customers.get(int(policy), 0))),
                            totals.get((policy, True), empty), totals.get((policy, False), empty),
                            contact_cost=costs.contact, coupon=costs.coupon, margin=costs.margin, alpha=alpha)

    cutoff = "cost-optimal" if spec.target_cutoff else f"top {spec.target_share:.0%}"
    return targeting_gain(spec.target, cutoff, value(True, "targeted"), value(False, "everyone"), alpha=alpha)

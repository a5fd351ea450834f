"""The significance report: every contacted variant × metric against the no-contact control.

This is the facade of the data path: it loads the experiment, asks the database for sufficient
statistics (:mod:`analysis.aggregates`), runs the pure statistics (:mod:`analysis.frequentist`,
:mod:`analysis.srm`, :mod:`analysis.corrections`, :mod:`analysis.roi`) and returns one frozen
:class:`Report` that the CLI, the exports and the app all render.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import Engine

from analysis.aggregates import ArmStatistics, arm_statistics
from analysis.corrections import adjust_p_values
from analysis.frequentist import compare
from analysis.quality import QualityComparison, recall_quality
from analysis.roi import RoiResult, roi
from analysis.srm import SrmResult, srm_check
from experiments.catalog import DEFAULT_CHANNEL_COSTS
from experiments.db import session_scope
from experiments.models import Experiment, ExperimentSource, MetricKind, MetricRole, Variant
from experiments.store import get_experiment, stored_spec, utcnow

DEFAULT_ALPHA = 0.05


@dataclass(frozen=True)
class VariantSummary:
    name: str
    n: int
    is_control: bool
    designed_share: float
    observed_share: float
    channel: str | None
    coupon: float
    contacted: int


@dataclass(frozen=True)
class Comparison:
    """One contacted variant against the control on one metric."""

    variant: str
    metric: str
    kind: str
    segment: str | None
    method: str
    n: int
    control_n: int
    control_mean: float
    variant_mean: float
    abs_uplift: float
    abs_ci: tuple[float, float]
    rel_uplift: float
    rel_ci: tuple[float, float]
    p_value: float
    p_value_adjusted: float
    significant: bool


@dataclass(frozen=True)
class Report:
    experiment: str
    source: str
    status: str
    hypothesis: str
    primary_metric: str
    control: str
    alpha: float
    correction: str
    srm: SrmResult
    variants: list[VariantSummary]
    comparisons: list[Comparison]
    roi: list[RoiResult] = field(default_factory=list)
    quality: list[QualityComparison] = field(default_factory=list)
    generated_at: str = ""

    def comparison(self, variant: str, metric: str) -> Comparison:
        return next(c for c in self.comparisons if c.variant == variant and c.metric == metric)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; non-finite numbers become null (see docs/report-json.md)."""
        data = asdict(self)
        data["srm"] = {**data["srm"], "p_value": self.srm.p_value, "mismatch": self.srm.mismatch}
        return _json_safe(data)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Decimal):
        return float(value)
    return value


def build_report(
    engine: Engine, name: str, *, alpha: float = DEFAULT_ALPHA, correction: str = "holm"
) -> Report:
    """Compute the significance report of experiment ``name`` from database aggregates."""
    with session_scope(engine) as session:
        experiment = get_experiment(session, name)
        arms = arm_statistics(session.connection(), experiment)
        quality = (recall_quality(session.connection(), experiment, utcnow(), alpha=alpha)
                   if experiment.source == ExperimentSource.DESIGNED else [])
        return _report(experiment, arms, alpha=alpha, correction=correction, quality=quality)


def _report(experiment: Experiment, arms: dict[int, ArmStatistics], *, alpha: float, correction: str,
            quality: list[QualityComparison]) -> Report:
    variants = experiment.variants
    control = experiment.control
    total = sum(arm.n for arm in arms.values())
    summaries = [
        VariantSummary(
            name=v.name,
            n=arms[v.id].n,
            is_control=v.is_control,
            designed_share=v.share,
            observed_share=arms[v.id].n / total if total else math.nan,
            channel=v.channel,
            coupon=float(v.coupon),
            contacted=arms[v.id].contacted,
        )
        for v in variants
    ]
    srm = srm_check([arms[v.id].n for v in variants], [v.share for v in variants])
    metrics = [m for m in experiment.metrics if m.role == MetricRole.METRIC]

    raw = []
    for variant in variants:
        if variant.is_control:
            continue
        for metric in metrics:
            estimate = compare(
                arms[control.id].metrics[metric.name], arms[variant.id].metrics[metric.name], metric.kind, alpha=alpha
            )
            raw.append((variant, metric, estimate))
    adjusted = adjust_p_values([e.p_value for _, _, e in raw], correction)
    comparisons = [
        Comparison(
            variant=variant.name,
            metric=metric.name,
            kind=metric.kind.value,
            segment=None,
            method=estimate.method,
            n=arms[variant.id].n,
            control_n=arms[control.id].n,
            control_mean=estimate.control_mean,
            variant_mean=estimate.variant_mean,
            abs_uplift=estimate.abs_uplift,
            abs_ci=estimate.abs_ci,
            rel_uplift=estimate.rel_uplift,
            rel_ci=estimate.rel_ci,
            p_value=estimate.p_value,
            p_value_adjusted=float(p_adj),
            significant=bool(p_adj < alpha),
        )
        for (variant, metric, estimate), p_adj in zip(raw, adjusted, strict=True)
    ]
    return Report(
        experiment=experiment.name,
        source=experiment.source.value,
        status=experiment.status.value,
        hypothesis=experiment.hypothesis,
        primary_metric=experiment.primary_metric,
        control=control.name,
        alpha=alpha,
        correction=correction,
        srm=srm,
        variants=summaries,
        comparisons=comparisons,
        roi=_roi(experiment, arms),
        quality=quality,
        generated_at=utcnow().isoformat(timespec="seconds") + "Z",
    )


def _return_and_revenue_metrics(experiment: Experiment) -> tuple[str | None, str | None]:
    """Designed experiments have ``returned``/``revenue``; imported ones use their first binary
    and first continuous metric (e.g. Hillstrom's visit and spend)."""
    if experiment.source == ExperimentSource.DESIGNED:
        return "returned", "revenue"
    metrics = [m for m in experiment.metrics if m.role == MetricRole.METRIC]
    binary = next((m.name for m in metrics if m.kind == MetricKind.BINARY), None)
    continuous = next((m.name for m in metrics if m.kind == MetricKind.CONTINUOUS), None)
    return binary, continuous


def _unit_costs(experiment: Experiment) -> tuple[dict[str, Decimal], Decimal]:
    costs = {c.value: cost for c, cost in DEFAULT_CHANNEL_COSTS.items()}
    spec = stored_spec(experiment)
    if spec is None:
        return costs, Decimal("0")
    costs.update({c.value: cost for c, cost in spec.costs.channels.items()})
    return costs, spec.costs.fixed


def _contact_cost(arm: ArmStatistics, variant: Variant, unit_costs: dict[str, Decimal]) -> float:
    """Every recorded touch at its channel's unit cost; imported results: one touch per contacted customer."""
    touches = arm.sends or {variant.channel or "": arm.contacted}
    return float(sum(unit_costs.get(channel, Decimal("0")) * count for channel, count in touches.items()))


def _roi(experiment: Experiment, arms: dict[int, ArmStatistics]) -> list[RoiResult]:
    """Cost and ROI per contacted variant, when the experiment has costs and the metrics for it."""
    returned, revenue = _return_and_revenue_metrics(experiment)
    contacted_variants: list[Variant] = [v for v in experiment.variants if not v.is_control]
    if returned is None or revenue is None or not any(v.channel or v.coupon for v in contacted_variants):
        return []
    unit_costs, fixed = _unit_costs(experiment)
    control = arms[experiment.control.id]
    contacted_total = sum(arms[v.id].contacted for v in contacted_variants)
    results = []
    for v in contacted_variants:
        arm = arms[v.id]
        fixed_share = float(fixed) * arm.contacted / contacted_total if contacted_total else 0.0
        results.append(
            roi(
                variant=v.name,
                n_variant=arm.n,
                control_return=control.metrics[returned],
                variant_return=arm.metrics[returned],
                control_revenue=control.metrics[revenue],
                variant_revenue=arm.metrics[revenue],
                contacted=arm.contacted,
                contact_cost=_contact_cost(arm, v, unit_costs),
                redemptions=arm.redemptions,
                coupon_value=float(v.coupon),
                fixed_cost=fixed_share,
            )
        )
    return results


"""The significance report: every contacted variant × metric against the no-contact control.

This is the facade of the data path: it loads the experiment, asks the database for sufficient
statistics (:mod:`analysis.aggregates`), runs the pure statistics (:mod:`analysis.frequentist`,
:mod:`analysis.srm`, :mod:`analysis.corrections`, :mod:`analysis.roi`) and returns one frozen
:class:`Report` that the CLI, the exports and the app all render.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, func, select

from analysis.aggregates import (
    ArmStatistics,
    ExperimentStatistics,
    capped_statistics,
    covariate_statistics,
    covariates_of,
    experiment_statistics,
)
from analysis.factorial import (DesignSummary, FactorEffect, FactorialResult, InteractionEffect, LevelRoi, Pick, analyse,
                                design_for)
from analysis.corrections import adjust_p_values, interval_alpha
from analysis.frequentist import (
    FIELLER_METHOD,
    Estimate,
    compare_many,
    fieller_interval,
    pooled_skewness_lambda,
    worse_than,
)
from analysis.ratio import RatioStats, compare_ratio
from analysis.quality import QualityComparison, recall_quality
from analysis.roi import RoiResult, roi
from analysis.segments import segment_statistics
from analysis.srm import SrmResult, srm_check
from analysis.sufficient import SampleStats
from analysis.targeting_gain import TargetingGain
from analysis.tables import source_of
from analysis.verdict import Horizon, Verdict, decide
from experiments.catalog import DEFAULT_CHANNEL_COSTS, RATIO_METRICS
from experiments.db import session_scope
from experiments.models import (
    Assignment,
    Experiment,
    ExperimentSource,
    MetricDefinition,
    MetricKind,
    MetricRole,
    Variant,
)
from experiments.result_tables import SMALL_ARM_CUSTOMERS, SMALL_ARM_SHARE, is_small_arm
from experiments.store import Rollout, get_experiment, last_rollout, stored_spec, utcnow

DEFAULT_ALPHA = 0.05
RATIO = "ratio"  # the kind of a ratio metric's comparison (analysis.ratio)
RELATIVE_CIS = ("delta", "fieller")
# Guardrail → the largest increase over the control that is tolerated (absolute, as a rate).
GUARDRAIL_MARGINS = {"unsubscribed": 0.01, "complained": 0.001}
EMPTY = SampleStats(0, 0.0, 0.0)
# Beyond this skewness of the mean difference Welch's one-sided error rates drift (e.g. 0.06-0.12
# instead of 0.025 with a 10% holdout and 5% buyers); the report then caps and corrects instead.
SKEW_THRESHOLD = 0.1
CAP_QUANTILE = 0.90  # of the positive values: holds the level in the 90/10 simulation (tests/test_skew.py)


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
    abs_ci_adjusted: tuple[float, float] = (math.nan, math.nan)


@dataclass(frozen=True)
class Guardrail:
    """A harm the campaign must not cause (unsubscribes, complaints): flagged when the variant's rate
    is significantly above the control's plus the margin (one-sided)."""

    variant: str
    metric: str
    control_rate: float
    variant_rate: float
    difference: float
    upper_bound: float
    margin: float
    p_value: float
    breached: bool


@dataclass(frozen=True)
class SequentialResult:
    """The primary metric under continuous monitoring: an always-valid interval and whether to act."""

    variant: str
    metric: str
    abs_uplift: float
    ci: tuple[float, float]
    p_value_always_valid: float
    may_act: bool  # the interval excludes 0 and the arm breaches no guardrail
    method: str
    guardrail_breached: bool = False  # then never "may act", whatever the interval says


@dataclass(frozen=True)
class BayesianComparison:
    """Chance that the variant beats the control, and the expected loss of shipping it."""

    variant: str
    metric: str
    chance_to_beat_control: float
    expected_loss: float
    uplift_ci: tuple[float, float]
    method: str


@dataclass(frozen=True)
class AdjustedComparison:
    """The uplift adjusted for pre-period covariates (CUPED / Lin), and the variance it saved."""

    variant: str
    metric: str
    covariates: list[str]
    abs_uplift: float
    abs_ci: tuple[float, float]
    p_value: float
    variance_reduction: float
    method: str


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
    segments: list[Comparison] = field(default_factory=list)
    guardrails: list[Guardrail] = field(default_factory=list)
    roi: list[RoiResult] = field(default_factory=list)
    quality: list[QualityComparison] = field(default_factory=list)
    sequential: list[SequentialResult] = field(default_factory=list)
    bayesian: list[BayesianComparison] = field(default_factory=list)
    cuped: list[AdjustedComparison] = field(default_factory=list)
    generated_at: str = ""
    # factorial designs (analysis.factorial): main effects, interactions, ROI per level, recommendation
    factorial: DesignSummary | None = None
    factors: list[FactorEffect] = field(default_factory=list)
    interactions: list[InteractionEffect] = field(default_factory=list)
    factor_roi: list[LevelRoi] = field(default_factory=list)
    recommendation: list[Pick] = field(default_factory=list)
    # appended later; stored reports without them decode to these defaults
    verdict: Verdict | None = None
    previous_rollout: Rollout | None = None
    # a targeted experiment (spec target = "MODEL"): the targeted policy against contact-everyone
    targeting_gain: TargetingGain | None = None

    def comparison(self, variant: str, metric: str) -> Comparison:
        return next(c for c in self.comparisons if c.variant == variant and c.metric == metric)

    def metric_kind(self, metric: str) -> str:
        """``binary``, ``continuous`` or ``ratio``: how a metric's values are formatted."""
        return next(c.kind for c in self.comparisons if c.metric == metric)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; non-finite numbers become null, and an object with a null that has
        no other meaning says why in ``null_reason`` (see docs/report-json.md)."""
        data = asdict(self)
        data["srm"] = {**data["srm"], "p_value": self.srm.p_value, "mismatch": self.srm.mismatch}
        for section in ("comparisons", "segments"):
            data[section] = [_adjusted_beside_p(c) for c in data[section]]
        return explain_nulls(_json_safe(data))

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """The report back from :meth:`to_dict` (null numbers become nan again)."""
        return _decode(cls, data)


def _adjusted_beside_p(comparison: dict[str, Any]) -> dict[str, Any]:
    """The comparison's keys with the family-level interval right after the adjusted p-value."""
    keys = [k for k in comparison if k != "abs_ci_adjusted"]
    at = keys.index("p_value_adjusted") + 1
    keys[at:at] = ["abs_ci_adjusted"]
    return {k: comparison[k] for k in keys}


# Fields whose null is a documented value, not missing data (e.g. the segment of a whole-population
# comparison, an ROI interval that needs a cost).
_NULL_BY_DESIGN = {"segment", "channel", "roi", "roi_ci", "cost_per_incremental_return",
                   "cost_per_incremental_return_ci", "acquisition_cost", "cheaper_than_acquisition",
                   "natural_share_of_redemptions", "variant", "customers_needed", "days_needed"}
_NO_CUSTOMERS = "no customers assigned yet"


def _null_reason(section: str, item: dict[str, Any], total: int) -> str:
    """Why ``item`` of ``section`` has a null number, in words a reader of the JSON can act on."""
    if total == 0:
        return _NO_CUSTOMERS
    if section == "quality" and (item.get("n") == 0 or item.get("control_n") == 0):
        return "no returned customer's follow-up period has passed yet (in this variant or the control)"
    if item.get("n") == 0 or item.get("control_n") == 0:
        return "no customers in this variant or in the control yet"
    if item.get("rel_uplift") is None and item.get("control_mean") == 0:
        return "the control's mean is 0, so a relative uplift is undefined"
    if "unbounded" in str(item.get("method", "")):
        return "the interval is unbounded (see method)"
    return "not computable from the data so far (too few customers, or no variation in the outcome)"


def explain_nulls(data: dict[str, Any]) -> dict[str, Any]:
    """Add ``null_reason`` to every object of the JSON report that has a null with no documented meaning."""
    total = sum(v["n"] for v in data["variants"])

    def has_null(item: dict[str, Any]) -> bool:
        return any(v is None or (isinstance(v, list) and None in v)
                   for k, v in item.items() if k not in _NULL_BY_DESIGN)

    if has_null(data["srm"]):
        data["srm"]["null_reason"] = _null_reason("srm", data["srm"], total)
    for section in ("variants", "comparisons", "segments", "guardrails", "roi", "quality", "sequential",
                    "bayesian", "cuped"):
        for item in data[section]:
            if has_null(item):
                item["null_reason"] = _null_reason(section, item, total)
    return data


@functools.cache
def _targeting_gain(conn: Connection, experiment: Experiment, alpha: float) -> TargetingGain | None:
    spec = stored_spec(experiment) if experiment.source == ExperimentSource.DESIGNED else None
    if spec is None or spec.target is None:
        return None
    from experiments.targeting import gain_of  # scikit-learn only for targeted experiments

    return gain_of(conn, experiment, alpha=alpha)


def _hints(tp: type) -> dict[str, Any]:
    return typing.get_type_hints(tp)


def _decode(tp: Any, value: Any) -> Any:  # noqa: ANN401 - JSON in, typed objects out
    """JSON data → the dataclass (or container) type ``tp``, following the type hints."""
    if dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        return tp(**{f.name: _decode(hints[f.name], value[f.name]) for f in dataclasses.fields(tp) if f.name in value})
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _decode(next(a for a in args if a is not type(None)), value)
    if origin is list:
        return [_decode(args[0], v) for v in value]
    if origin is tuple:
        return tuple(_decode(a, v) for a, v in zip(args, value, strict=True))
    if origin is dict:
        return {k: _decode(args[1], v) for k, v in value.items()}
    if tp is float:
        return math.nan if value is None else float(value)
    return value


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
    engine: Engine, name: str, *, alpha: float = DEFAULT_ALPHA, correction: str = "holm",
    guardrail_margins: Mapping[str, float] | None = None, sequential: bool = False, bayesian: bool = False,
    cuped: bool = False, relative_ci: str = "delta", segments: Sequence[str] | None = None,
    cap: float | None = None,
) -> Report:
    """Compute the significance report of experiment ``name`` from database aggregates.

    ``relative_ci``: "delta" (log-ratio delta method) or "fieller" (Fieller's interval, unbounded
    when the control mean is not clearly away from 0). ``segments``: the dimensions to break the
    primary metric down by (default: all the experiment has; ``[]``: none). ``cap``: analyse every
    continuous metric on values capped at this quantile of the positive values (e.g. 0.99)."""
    if cap is not None and not 0 < cap < 1:
        raise ValueError(f"cap must be a quantile between 0 and 1, e.g. 0.99; got {cap}")
    if relative_ci not in RELATIVE_CIS:
        raise ValueError(f"unknown relative_ci {relative_ci!r}; choose one of {', '.join(RELATIVE_CIS)}")
    with session_scope(engine) as session:
        experiment = get_experiment(session, name)
        conn = session.connection()
        statistics = experiment_statistics(conn, experiment, segments=True if segments is None else segments)
        arms = statistics.arms
        quality = (recall_quality(conn, experiment, utcnow(), alpha=alpha)
                   if experiment.source == ExperimentSource.DESIGNED and source_of(experiment) is None else [])
        primary = experiment.primary_metric if experiment.source == ExperimentSource.DESIGNED else next(
            m.name for m in experiment.metrics if m.role == MetricRole.METRIC)
        by_segment = {key: value for key, value in segment_statistics(conn, experiment, primary, statistics).items()
                      if segments is None or key[0] in segments}
        robust = _skew_handling(conn, experiment, arms, cap)
        monitoring = _sequential(experiment, arms, primary, alpha=alpha) if sequential else []
        adjusted = _cuped(conn, experiment, statistics, alpha=alpha) if cuped else []
        report = _report(experiment, arms, alpha=alpha, correction=correction, quality=quality, segments=by_segment,
                         robust=robust, monitoring=monitoring, bayesian=bayesian, adjusted=adjusted,
                         relative_ci=relative_ci,
                         guardrail_margins={**GUARDRAIL_MARGINS, **(guardrail_margins or {})})
        return dataclasses.replace(
            report, verdict=decide(report, _horizon(conn, experiment)), targeting_gain=_targeting_gain(
                conn, experiment, alpha),
            previous_rollout=last_rollout(session, experiment.cohort, experiment.layer, excluding=experiment.name)
            if experiment.source == ExperimentSource.DESIGNED else None)


def _horizon(conn: Connection, experiment: Experiment) -> Horizon:
    """How long the outcomes of a designed experiment's customers still take to come in, and how fast
    customers were assigned (assignments made here; a warehouse source's are not counted)."""
    if experiment.source != ExperimentSource.DESIGNED or source_of(experiment) is not None:
        return Horizon()
    first, last, n = conn.execute(
        select(func.min(Assignment.assigned_at), func.max(Assignment.assigned_at), func.count())
        .where(Assignment.experiment_id == experiment.id)).one()
    if last is None:
        return Horizon()
    left = (last + timedelta(days=experiment.attribution_days) - utcnow()).total_seconds() / 86_400
    span = (last - first).days
    return Horizon(days_left=math.ceil(left) if left > 0 else None,
                   assigned_per_day=n / (span + 1) if span >= 1 else None)


def _typo_arms(srm: SrmResult, variants: list[Variant], arms: dict[int, ArmStatistics]) -> SrmResult:
    """An imported label held by a handful of customers is most likely a typo ('Contrl'), not an arm:
    the split is then not the design's, whatever the χ² test says of so few customers."""
    total = sum(arms[v.id].n for v in variants)
    small = [v.name for v in variants if is_small_arm(arms[v.id].n, total)]
    if not small:
        return srm
    return replace(srm, mismatch=True, reason=f"variant label(s) {', '.join(map(repr, small))} held by fewer than "
                                              f"{SMALL_ARM_CUSTOMERS} customers and {SMALL_ARM_SHARE:.0%} of the "
                                              "file: a typo in the variant column?")


@dataclass(frozen=True)
class _Pair:
    """What one comparison compares: a variant against the control on a metric, maybe in a segment."""

    variant: Variant
    metric: str
    kind: str  # a MetricKind value, or "ratio"
    segment: str | None
    control: SampleStats | RatioStats
    treated: SampleStats | RatioStats
    skew: SkewHandling | None = None


@dataclass(frozen=True)
class SkewHandling:
    """A continuous metric analysed on capped values: because it is too skewed for Welch given the
    arm sizes (then also skewness-corrected), or because the analyst asked (``--cap``)."""

    cap: float
    lam: float
    arms: dict[int, SampleStats]
    quantile: float = CAP_QUANTILE
    corrected: bool = True  # Hall-Johnson skewness correction on top of the capping
    requested: bool = False

    def method(self) -> str:
        capped = f"values capped at the {self.quantile:.0%} percentile of positive values ({self.cap:,.2f})"
        why = (f"because the values are skewed for these arm sizes (λ = {self.lam:+.2f}; plain Welch holds its "
               f"level only for |λ| < {SKEW_THRESHOLD})")
        if not self.requested:
            return f"Welch t on {capped} with Hall-Johnson skewness correction, {why}"
        if self.corrected:
            return f"Welch t on {capped} (as requested) with Hall-Johnson skewness correction, {why}"
        return f"Welch t on {capped} (as requested)"


def _worst_lambda(control: SampleStats, treated: list[SampleStats]) -> float:
    lams = [float(pooled_skewness_lambda(control, t)) for t in treated]
    return max(lams, key=lambda x: abs(x) if math.isfinite(x) else -1, default=math.nan)


def _skew_handling(conn: Connection, experiment: Experiment, arms: dict[int, ArmStatistics],
                   cap: float | None = None) -> dict[str, SkewHandling]:
    """Continuous metrics to analyse on capped values (computed in SQL): every one when the analyst
    gives ``cap`` (a quantile of the positive values, e.g. 0.99), else those whose mean difference is
    skewed enough to mislead Welch (pooled |λ| ≥ threshold for some variant), capped at CAP_QUANTILE.
    Capped values that are still skewed get the skewness-corrected t as well."""
    control = arms[experiment.control.id]
    contacted = [v for v in experiment.variants if not v.is_control]
    out = {}
    for m in experiment.metrics:
        if m.role != MetricRole.METRIC or m.kind != MetricKind.CONTINUOUS:
            continue
        worst = _worst_lambda(control.metrics[m.name], [arms[v.id].metrics[m.name] for v in contacted])
        skewed = math.isfinite(worst) and abs(worst) >= SKEW_THRESHOLD
        if cap is None and not skewed:
            continue
        value, capped = capped_statistics(conn, experiment, m.name, cap or CAP_QUANTILE)
        if value is None:
            continue
        if cap is None:
            out[m.name] = SkewHandling(value, worst, capped)
            continue
        empty = SampleStats(0, 0.0, 0.0, 0.0)
        lam = _worst_lambda(capped.get(experiment.control.id, empty),
                            [capped.get(v.id, empty) for v in contacted])
        out[m.name] = SkewHandling(value, lam, capped, quantile=cap,
                                   corrected=math.isfinite(lam) and abs(lam) >= SKEW_THRESHOLD, requested=True)
    return out


def _sequential(experiment: Experiment, arms: dict[int, ArmStatistics], metric: str, *, alpha: float
                ) -> list[SequentialResult]:
    """Always-valid confidence sequences on the primary metric, tuned for the assigned sample size
    (known at launch, so the tuning does not look at the outcomes)."""
    from analysis.sequential import confidence_sequence  # the optional sections load their modules when asked

    planned = sum(arm.n for arm in arms.values())
    control = arms[experiment.control.id].metrics[metric]
    out = []
    for v in experiment.variants:
        if v.is_control:
            continue
        cs = confidence_sequence(control, arms[v.id].metrics[metric], alpha=alpha, planned_n=max(planned, 2))
        out.append(SequentialResult(v.name, metric, cs.abs_uplift, (cs.ci_lo, cs.ci_hi), cs.p_value_always_valid,
                                    bool(cs.ci_lo > 0 or cs.ci_hi < 0), cs.method))
    return out


def _bayesian(experiment: Experiment, arms: dict[int, ArmStatistics], *, alpha: float) -> list[BayesianComparison]:
    """Beta-binomial posteriors for rates, a normal posterior for amounts (see analysis.bayesian)."""
    from analysis.bayesian import beta_binomial, normal_posterior  # SciPy's quadrature and root finding

    control = arms[experiment.control.id]
    out = []
    for v in experiment.variants:
        if v.is_control:
            continue
        for m in experiment.metrics:
            if m.role != MetricRole.METRIC:
                continue
            pair = control.metrics[m.name], arms[v.id].metrics[m.name]
            if min(pair[0].n, pair[1].n) < 2:
                continue
            result = (beta_binomial(*pair, alpha=alpha) if m.kind == MetricKind.BINARY
                      else normal_posterior(*pair, alpha=alpha))
            out.append(BayesianComparison(v.name, m.name, result.chance_to_beat_control, result.expected_loss,
                                          result.uplift_ci, result.method))
    return out


def _cuped(conn: Connection, experiment: Experiment, statistics: ExperimentStatistics, *, alpha: float
           ) -> list[AdjustedComparison]:
    """Every contacted variant × metric adjusted for the pre-period covariates (none: nothing to do)."""
    from analysis.cuped import cuped as adjust

    covariates = covariates_of(experiment)
    if not covariates:
        return []
    out = []
    for m in experiment.metrics:
        if m.role != MetricRole.METRIC:
            continue
        stats = (statistics.covariates(m.name) if statistics.cells is not None
                 else covariate_statistics(conn, experiment, m.name, covariates))
        control = stats.get(experiment.control.id)
        for v in experiment.variants:
            if v.is_control or control is None or v.id not in stats:
                continue
            e = adjust(control, stats[v.id], alpha=alpha)
            out.append(AdjustedComparison(v.name, m.name, covariates, float(e.abs_uplift),
                                          (float(e.abs_ci[0]), float(e.abs_ci[1])), float(e.p_value),
                                          float(e.variance_reduction), e.method))
    return out


def _estimates(pairs: list[_Pair], alpha: float, relative_ci: str) -> list[Estimate]:
    """Every pair's test at level ``alpha``: vectorized per kind, ratio metrics by the delta method."""
    plain = [i for i, p in enumerate(pairs) if p.kind != RATIO]
    out: list[Estimate | None] = [None] * len(pairs)
    picked = [pairs[i] for i in plain]
    for i, e in zip(plain, compare_many(
            [p.control for p in picked], [p.treated for p in picked], [MetricKind(p.kind) for p in picked],
            alpha, skew_corrected=[p.skew is not None and p.skew.corrected for p in picked],
            methods=[p.skew.method() if p.skew else None for p in picked]) if picked else [], strict=True):
        if relative_ci == "fieller":
            pair = pairs[i]
            lo, hi = fieller_interval(pair.control, pair.treated, alpha)
            unbounded = "; unbounded: the control mean is not clearly away from 0" if np.isinf(lo) else ""
            e = dataclasses.replace(e, rel_ci=(float(lo), float(hi)),
                                    method=f"{e.method}; {FIELLER_METHOD}{unbounded}")
        out[i] = e
    for i, p in enumerate(pairs):
        if p.kind == RATIO:
            out[i] = compare_ratio(p.control, p.treated, alpha)
    return out  # type: ignore[return-value]


def _compare_all(pairs: list[_Pair], *, alpha: float, correction: str, relative_ci: str = "delta"
                 ) -> list[Comparison]:
    """Test every pair and adjust the p-values across all of them (one family)."""
    estimates = _estimates(pairs, alpha, relative_ci)
    adjusted = adjust_p_values([e.p_value for e in estimates], correction)
    family_alpha = interval_alpha(adjusted, alpha, correction)
    wide = _estimates(pairs, family_alpha, relative_ci)
    return [
        Comparison(
            variant=p.variant.name, metric=p.metric, kind=p.kind, segment=p.segment,
            method=e.method, n=p.treated.n, control_n=p.control.n, control_mean=e.control_mean,
            variant_mean=e.variant_mean, abs_uplift=e.abs_uplift, abs_ci=e.abs_ci, rel_uplift=e.rel_uplift,
            rel_ci=e.rel_ci, p_value=e.p_value, p_value_adjusted=float(p_adj), significant=bool(p_adj < alpha),
            abs_ci_adjusted=w.abs_ci,
        )
        for p, e, p_adj, w in zip(pairs, estimates, adjusted, wide, strict=True)
    ]


def _guardrails(experiment: Experiment, arms: dict[int, ArmStatistics], *, alpha: float,
                margins: Mapping[str, float]) -> list[Guardrail]:
    """Unsubscribe and complaint rates of each contacted variant against the control, one-sided."""
    spec = stored_spec(experiment)
    chosen = set(spec.guardrails) if spec else set(margins)
    names = [m.name for m in experiment.metrics if m.name in chosen]
    control = arms[experiment.control.id]
    out = []
    for v in experiment.variants:
        if v.is_control:
            continue
        for name in names:
            margin = margins.get(name, 0.0)
            result = worse_than(control.metrics[name], arms[v.id].metrics[name], margin=margin, alpha=alpha)
            out.append(Guardrail(variant=v.name, metric=name, control_rate=result.control_mean,
                                 variant_rate=result.variant_mean, difference=result.difference,
                                 upper_bound=result.upper_bound, margin=margin, p_value=result.p_value,
                                 breached=result.worse))
    return out


def _report(experiment: Experiment, arms: dict[int, ArmStatistics], *, alpha: float, correction: str,
            quality: list[QualityComparison], segments: dict[tuple[str, str], dict[int, SampleStats]],
            guardrail_margins: Mapping[str, float], robust: dict[str, SkewHandling],
            monitoring: list[SequentialResult], bayesian: bool, adjusted: list[AdjustedComparison],
            relative_ci: str = "delta") -> Report:
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
    if experiment.source == ExperimentSource.IMPORTED:
        srm = _typo_arms(srm, variants, arms)
    metrics = [m for m in experiment.metrics if m.role == MetricRole.METRIC]
    contacted = [v for v in variants if not v.is_control]
    def pair(v: Variant, m: MetricDefinition) -> _Pair:
        skew = robust.get(m.name)
        if skew is None:
            return _Pair(v, m.name, m.kind.value, None, arms[control.id].metrics[m.name], arms[v.id].metrics[m.name])
        return _Pair(v, m.name, m.kind.value, None, skew.arms.get(control.id, EMPTY), skew.arms.get(v.id, EMPTY),
                     skew)

    def ratio_pair(v: Variant, name: str) -> _Pair:
        return _Pair(v, name, RATIO, None, ratio_stats(arms[control.id], name), ratio_stats(arms[v.id], name))

    spec = stored_spec(experiment)
    ratios = [r for r in (spec.ratio_metrics if spec else []) if all(arm.products for arm in arms.values())]
    comparisons = _compare_all([pair(v, m) for v in contacted for m in metrics]
                               + [ratio_pair(v, r) for v in contacted for r in ratios],
                               alpha=alpha, correction=correction, relative_ci=relative_ci)
    primary = next((m for m in metrics if m.name == experiment.primary_metric), metrics[0])
    returns = _roi(experiment, arms, alpha=alpha)
    factorial = _factorial(experiment, arms, returns, primary.name, alpha=alpha, correction=correction)
    segment_comparisons = _compare_all([
        _Pair(v, primary.name, primary.kind.value, f"{dimension}={value}", by_variant.get(control.id, EMPTY),
              by_variant.get(v.id, EMPTY))
        for (dimension, value), by_variant in segments.items() for v in contacted
    ], alpha=alpha, correction=correction, relative_ci=relative_ci)
    guardrails = _guardrails(experiment, arms, alpha=alpha, margins=guardrail_margins)
    breached = {g.variant for g in guardrails if g.breached}
    monitoring = [dataclasses.replace(q, may_act=False, guardrail_breached=True) if q.variant in breached else q
                  for q in monitoring]
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
        segments=segment_comparisons,
        guardrails=guardrails,
        roi=returns,
        quality=quality,
        sequential=monitoring,
        bayesian=_bayesian(experiment, arms, alpha=alpha) if bayesian else [],
        cuped=adjusted,
        generated_at=utcnow().isoformat(timespec="seconds") + "Z",
        **({} if factorial is None else dict(
            factorial=factorial.design, factors=factorial.factors, interactions=factorial.interactions,
            factor_roi=factorial.roi, recommendation=factorial.recommendation)),
    )


def _factorial(experiment: Experiment, arms: dict[int, ArmStatistics], returns: list[RoiResult], primary: str, *,
               alpha: float, correction: str) -> FactorialResult | None:
    """Main effects and interactions when the experiment is a factorial design (analysis.factorial)."""
    design = design_for(experiment)
    if design is None:
        return None
    metrics = {m.name: m.kind.value for m in experiment.metrics if m.role == MetricRole.METRIC}
    by_name = {v.name: arms[v.id] for v in experiment.variants}
    stats = {m: {name: arm.metrics[m] for name, arm in by_name.items()} for m in metrics}
    returned, revenue = _return_and_revenue_metrics(experiment)
    costs = {r.variant: r.cost / by_name[r.variant].n for r in returns if by_name[r.variant].n} or None
    spec = stored_spec(experiment)
    return analyse(design, metrics=metrics, stats=stats, holdout=experiment.control.name, primary=primary,
                   alpha=alpha, correction=correction, returned=returned, revenue=revenue,
                   cost_per_customer=costs, margin=float(spec.costs.margin) if spec else 1.0)


def ratio_stats(arm: ArmStatistics, name: str) -> RatioStats:
    """The sums a ratio metric needs, from an arm's per-customer sums and cross-products (designed)."""
    r = RATIO_METRICS[name]
    x, y = arm.metrics[r.numerator], arm.metrics[r.denominator]
    return RatioStats(arm.n, x.sum, x.sum_sq, y.sum, y.sum_sq, arm.products[(r.numerator, r.denominator)])


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


def _roi(experiment: Experiment, arms: dict[int, ArmStatistics], *, alpha: float) -> list[RoiResult]:
    """Cost and ROI per contacted variant, when the experiment has costs and the metrics for it."""
    returned, revenue = _return_and_revenue_metrics(experiment)
    contacted_variants: list[Variant] = [v for v in experiment.variants if not v.is_control]
    if returned is None or revenue is None or not any(v.channel or v.coupon for v in contacted_variants):
        return []
    unit_costs, fixed = _unit_costs(experiment)
    spec = stored_spec(experiment)
    margin = float(spec.costs.margin) if spec else 1.0
    acquisition = float(spec.costs.acquisition_cost) if spec and spec.costs.acquisition_cost else None
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
                alpha=alpha,
                # Designed experiments know each customer's redemptions: the coupon cost is then an
                # estimate whose covariance with revenue enters the ROI interval (delta method).
                variant_redemptions=arm.metrics.get("redemptions") if v.coupon and arm.products else None,
                revenue_redemptions_sum=arm.products.get(("revenue", "redemptions")) if v.coupon else None,
                margin=margin,
                acquisition_cost=acquisition,
            )
        )
    return results


"""Main effects and interactions of a factorial design, from the cells' sufficient statistics.

Every estimate is a linear contrast of cell means, ``Σ w_c·ȳ_c``, with equal weight for every cell
of a level (effect coding, as in a balanced factorial ANOVA), so no per-customer pass is needed:

- main effect of level *l* of factor A against its reference *r* (the first level declared):
  the mean of the cells at A = l minus the mean of the cells at A = r, each averaged over the
  other factors' levels with equal weight;
- two-way interaction of A (l vs r) and B (m vs s): the difference of differences
  (ȳ_lm − ȳ_ls) − (ȳ_rm − ȳ_rs), each ȳ averaged over the remaining factors; for factors with more
  than two levels, one contrast per pair of non-reference levels.

Variance: ``Σ w_c²·s_c²/n_c`` with each cell's own variance s_c² (ddof 1), robust to unequal cell
variances. It is exactly statsmodels' OLS with HC2 standard errors on the per-customer rows of the
saturated model (cell-means or effect coding alike: a cell's leverage is 1/n_c, so HC2 gives
s_c²/n_c per cell mean); tests/test_factorial_analysis.py checks it. The reference distribution is
the normal (statsmodels' default for a robust covariance); cells hold thousands of customers.

Main effects and interactions of all metrics form one multiple-testing family, separate from the
cells-against-the-holdout family. Fractional designs: effects aliased with a main effect or another
two-way interaction (see :mod:`experiments.factorial`) are not reported as interactions, and main
effects list what they are confounded with. See docs/statistics/factorial.md.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from analysis.corrections import adjust_p_values, interval_alpha
from analysis.distributions import norm_isf, norm_sf
from analysis.sufficient import SampleStats
from experiments.models import Experiment, ExperimentSource
from experiments.store import stored_spec

if TYPE_CHECKING:  # experiments.factorial (pydantic models) loads when a design is read, not for plain results
    from experiments.factorial import Design

METHOD = ("equal-weight contrasts of cell means (effect coding); variance Σ w²·s²/n per cell "
          "(OLS HC2 of the saturated model); normal reference")
Weights = dict[str, float]  # arm (a cell, or the holdout) → weight of its mean


@dataclass(frozen=True)
class FactorEffect:
    """A level against its factor's reference level, averaged over the other factors."""

    factor: str
    level: str
    reference: str
    metric: str
    kind: str
    level_mean: float
    reference_mean: float
    abs_effect: float
    abs_ci: tuple[float, float]
    p_value: float
    p_value_adjusted: float = math.nan
    significant: bool = False
    abs_ci_adjusted: tuple[float, float] = (math.nan, math.nan)
    aliases: list[str] = field(default_factory=list)  # in a fraction: the effects it cannot be told from


@dataclass(frozen=True)
class InteractionEffect:
    """(l₁l₂ − l₁r₂) − (r₁l₂ − r₁r₂): how much factor 1's effect changes with factor 2's level."""

    factors: list[str]
    levels: list[str]
    references: list[str]
    metric: str
    kind: str
    abs_effect: float
    abs_ci: tuple[float, float]
    p_value: float
    p_value_adjusted: float = math.nan
    significant: bool = False
    abs_ci_adjusted: tuple[float, float] = (math.nan, math.nan)


@dataclass(frozen=True)
class LevelRoi:
    """What a level returns and costs: over the holdout, and over the factor's reference level."""

    factor: str
    level: str
    reference: str
    return_rate: float
    incremental_return_rate: float  # over the holdout's natural return rate
    incremental_return_rate_ci: tuple[float, float]
    cost_per_customer: float  # ¥ per assigned customer, averaged over the level's cells
    incremental_revenue_per_customer: float
    roi: float | None
    roi_ci: tuple[float, float] | None
    extra_return_rate: float  # over the reference level (0 for the reference itself)
    extra_return_rate_ci: tuple[float, float]
    extra_cost_per_customer: float
    cost_per_extra_return: float | None  # ¥ per extra returned customer over the reference level
    cost_per_extra_return_ci: tuple[float, float] | None


@dataclass(frozen=True)
class Pick:
    """The recommendation for a cell or a factor's level, by rate (primary metric) or ROI.

    ``verdict``: ``clear`` (the lead over the runner-up has an adjusted interval above 0), ``leading``
    (ahead, but the interval includes 0: not a winner), ``depends`` (the factor interacts with
    ``depends_on``: choose the cell, not the level)."""

    subject: str  # "cell" or a factor
    basis: str  # "rate" or "roi"
    metric: str
    choice: str
    runner_up: str | None
    lead: float  # choice − runner-up (rate: absolute; roi: difference of ROIs)
    lead_ci: tuple[float, float]  # adjusted
    value: float  # the choice's uplift over the holdout (rate) or its ROI
    value_ci: tuple[float, float]
    verdict: str
    depends_on: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DesignSummary:
    """The design the effects were estimated on, as the report stores it."""

    factors: dict[str, list[str]]  # factor → levels, the reference first
    cells: dict[str, dict[str, str]]  # cell → factor → level
    fraction: str = "1"
    defining_relation: list[str] = field(default_factory=list)
    aliases: dict[str, list[str]] = field(default_factory=dict)
    method: str = METHOD

    @classmethod
    def of(cls, design: Design) -> DesignSummary:
        return cls({f: list(v) for f, v in design.factors.items()}, {c: dict(v) for c, v in design.cells.items()},
                   design.fraction, list(design.defining_relation), {k: list(v) for k, v in design.aliases.items()})


@dataclass(frozen=True)
class FactorialResult:
    design: DesignSummary
    factors: list[FactorEffect]
    interactions: list[InteractionEffect]
    roi: list[LevelRoi]
    recommendation: list[Pick]


def design_for(experiment: Experiment) -> Design | None:
    """The factorial design of an experiment: from its stored spec's ``[factors]`` (designed
    experiments), or the cells' levels the importer checked and stored (``recall import results
    --factors``: spec_json's ``factorial`` key, see :func:`experiments.factorial.checked_design`)."""
    if experiment.source == ExperimentSource.IMPORTED:
        stored = json.loads(experiment.spec_json or "{}").get("factorial")
        if not stored:
            return None
        from experiments.factorial import design_from_json

        return design_from_json(stored)
    from experiments.factorial import design_of

    spec = stored_spec(experiment)
    return design_of(spec) if spec is not None else None


def contrast(weights: Weights, stats: Mapping[str, SampleStats]) -> tuple[np.ndarray, np.ndarray]:
    """Σ w·mean and its standard error √(Σ w²·s²/n); element-wise when the statistics are arrays."""
    estimate = sum(w * np.asarray(stats[arm].mean, dtype=float) for arm, w in weights.items())
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = sum(w * w * np.asarray(stats[arm].variance, dtype=float) / np.asarray(stats[arm].n, dtype=float)
                       for arm, w in weights.items())
    return np.asarray(estimate, dtype=float), np.sqrt(variance)


def _average(cells: Sequence[str]) -> Weights:
    return {c: 1 / len(cells) for c in cells}


def _combine(*terms: tuple[float, Weights]) -> Weights:
    out: Weights = {}
    for scale, weights in terms:
        for arm, w in weights.items():
            out[arm] = out.get(arm, 0.0) + scale * w
    return {arm: w for arm, w in out.items() if w != 0}


def level_weights(design: Design, **levels: str) -> Weights:
    """Equal weights over the cells at the given levels (e.g. coupon="10", wording="lively")."""
    cells = [c for c, lv in design.cells.items() if all(lv[f] == level for f, level in levels.items())]
    return _average(cells) if cells else {}


def main_effect_weights(design: Design, factor: str, level: str) -> Weights:
    reference = design.factors[factor][0]
    return _combine((1, level_weights(design, **{factor: level})), (-1, level_weights(design, **{factor: reference})))


def interaction_weights(design: Design, factors: tuple[str, str], levels: tuple[str, str]) -> Weights:
    """(l₁l₂ − l₁r₂) − (r₁l₂ − r₁r₂), each term averaged over the remaining factors; {} if a term has no cell."""
    (a, b), (la, lb) = factors, levels
    ra, rb = design.factors[a][0], design.factors[b][0]
    terms = [(1, la, lb), (-1, la, rb), (-1, ra, lb), (1, ra, rb)]
    parts = [(sign, level_weights(design, **{a: x, b: y})) for sign, x, y in terms]
    return _combine(*parts) if all(w for _, w in parts) else {}


def _interval(estimate: float, se: float, alpha: float) -> tuple[float, float]:
    half = float(norm_isf(alpha / 2)) * se
    return (estimate - half, estimate + half)


def _test(weights: Weights, stats: Mapping[str, SampleStats], alpha: float
          ) -> tuple[float, tuple[float, float], float, float]:
    estimate, se = (float(x) for x in contrast(weights, stats))
    p = float(2 * norm_sf(abs(estimate / se))) if se > 0 else math.nan
    return estimate, _interval(estimate, se, alpha), p, se


def effects(design: Design, metrics: Mapping[str, str], stats: Mapping[str, Mapping[str, SampleStats]], *,
            alpha: float = 0.05, correction: str = "holm") -> tuple[list[FactorEffect], list[InteractionEffect]]:
    """Every metric's main effects and two-way interactions (``metrics``: name → kind; ``stats``:
    metric → arm → statistics), with p-values adjusted over all of them together."""
    mains: list[tuple[FactorEffect, float]] = []
    pairs: list[tuple[InteractionEffect, float]] = []
    names = list(design.factors)
    for metric, kind in metrics.items():
        cells = stats[metric]
        for factor in names:
            reference = design.factors[factor][0]
            for level in design.factors[factor][1:]:
                estimate, ci, p, se = _test(main_effect_weights(design, factor, level), cells, alpha)
                mains.append((FactorEffect(
                    factor, level, reference, metric, kind,
                    level_mean=float(contrast(level_weights(design, **{factor: level}), cells)[0]),
                    reference_mean=float(contrast(level_weights(design, **{factor: reference}), cells)[0]),
                    abs_effect=estimate, abs_ci=ci, p_value=p, aliases=list(design.aliases.get(factor, ()))), se))
        for a, b in itertools.combinations(names, 2):
            if design.aliases.get(f"{a}×{b}"):
                continue  # confounded in this fraction: not estimable on its own
            for la, lb in itertools.product(design.factors[a][1:], design.factors[b][1:]):
                weights = interaction_weights(design, (a, b), (la, lb))
                if not weights:
                    continue
                estimate, ci, p, se = _test(weights, cells, alpha)
                pairs.append((InteractionEffect([a, b], [la, lb], [design.factors[a][0], design.factors[b][0]],
                                                metric, kind, estimate, ci, p), se))
    found = [*mains, *pairs]
    adjusted = adjust_p_values([e.p_value for e, _ in found], correction)
    level = interval_alpha(adjusted, alpha, correction)  # intervals consistent with the family's decisions
    done = [dataclasses.replace(e, p_value_adjusted=p, significant=bool(p < alpha),
                                abs_ci_adjusted=_interval(e.abs_effect, se, level))
            for (e, se), p in zip(found, adjusted, strict=True)]
    return done[:len(mains)], done[len(mains):]  # type: ignore[return-value]


def level_roi(design: Design, *, returned: Mapping[str, SampleStats], revenue: Mapping[str, SampleStats],
              holdout: str, cost_per_customer: Mapping[str, float], margin: float = 1.0,
              alpha: float = 0.05) -> list[LevelRoi]:
    """Each level's incremental returns, cost and ROI over the holdout, and its extra returns and cost
    over the reference level. Costs are the cells' observed cost per assigned customer (known, as in
    :mod:`analysis.roi`), so intervals come from the return and revenue contrasts alone."""
    out = []
    for factor, levels in design.factors.items():
        reference = levels[0]
        ref_weights = level_weights(design, **{factor: reference})
        ref_cost = _weighted(ref_weights, cost_per_customer)
        for level in levels:
            weights = level_weights(design, **{factor: level})
            cost = _weighted(weights, cost_per_customer)
            rate = float(contrast(weights, returned)[0])
            inc, inc_ci, _, _ = _test(_combine((1, weights), (-1, {holdout: 1.0})), returned, alpha)
            rev, rev_ci, _, _ = _test(_combine((1, weights), (-1, {holdout: 1.0})), revenue, alpha)
            roi = (margin * rev - cost) / cost if cost > 0 else None
            roi_ci = ((margin * rev_ci[0] - cost) / cost, (margin * rev_ci[1] - cost) / cost) if cost > 0 else None
            extra, extra_ci, _, _ = ((0.0, (0.0, 0.0), math.nan, 0.0) if level == reference
                                     else _test(_combine((1, weights), (-1, ref_weights)), returned, alpha))
            extra_cost = cost - ref_cost
            per_extra = extra_cost / extra if extra > 0 and extra_cost > 0 else None  # cheaper and better: no price
            per_extra_ci = ((extra_cost / extra_ci[1], extra_cost / extra_ci[0])
                            if level != reference and extra_ci[0] > 0 and extra_cost > 0 else None)
            out.append(LevelRoi(factor, level, reference, rate, inc, inc_ci, cost, rev, roi, roi_ci, extra, extra_ci,
                                extra_cost, per_extra, per_extra_ci))
    return out


def _weighted(weights: Weights, values: Mapping[str, float]) -> float:
    return sum(w * values[arm] for arm, w in weights.items())


def recommend(design: Design, *, metric: str, stats: Mapping[str, SampleStats], holdout: str,
              interactions: Sequence[InteractionEffect], family_level: float,
              revenue: Mapping[str, SampleStats] | None = None, cost_per_customer: Mapping[str, float] | None = None,
              margin: float = 1.0, alpha: float = 0.05) -> list[Pick]:
    """The best cell, and the best level of each factor whose interactions are negligible, by the
    primary metric and (with revenue and costs) by ROI.

    A factor's interactions on ``metric`` are negligible when none is significant after adjustment and
    each is small: half of it below the factor's lead (best level − runner-up). For two-level factors
    the conditional effects are lead ± interaction/2, so the best level then leads at every level of
    the other factor (point estimates). A cell's lead is tested at α/(cells − 1) (Bonferroni over
    the best cell's comparisons with the others); a level's at the factor family's level
    ``family_level`` (the same intervals as ``abs_ci_adjusted``)."""
    cells = list(design.cells)
    out = [_pick("cell", "rate", metric, {c: {c: 1.0} for c in cells}, stats, holdout, None, margin,
                 alpha / max(len(cells) - 1, 1), alpha / max(len(cells) - 1, 1))]
    with_roi = revenue is not None and cost_per_customer is not None and all(cost_per_customer.get(c, 0) > 0
                                                                              for c in cells)
    if with_roi:
        out.append(_pick("cell", "roi", metric, {c: {c: 1.0} for c in cells}, revenue, holdout, cost_per_customer,
                         margin, alpha / max(len(cells) - 1, 1), alpha / max(len(cells) - 1, 1)))
    for factor, levels in design.factors.items():
        candidates = {level: level_weights(design, **{factor: level}) for level in levels}
        rate = _pick(factor, "rate", metric, candidates, stats, holdout, None, margin, family_level, family_level)
        involved = [i for i in interactions if i.metric == metric and factor in i.factors]
        blocking = sorted({next(f for f in i.factors if f != factor) for i in involved
                           if i.significant or not abs(i.abs_effect) / 2 < abs(rate.lead)})
        picks = [rate]
        if with_roi:
            costs = {level: _weighted(w, cost_per_customer) for level, w in candidates.items()}
            picks.append(_pick(factor, "roi", metric, candidates, revenue, holdout, costs, margin, family_level,
                               family_level))
        for pick in picks:
            out.append(dataclasses.replace(pick, verdict="depends", depends_on=blocking) if blocking else pick)
    return out


def _pick(subject: str, basis: str, metric: str, candidates: Mapping[str, Weights],
          stats: Mapping[str, SampleStats], holdout: str, costs: Mapping[str, float] | None, margin: float,
          lead_alpha: float, value_alpha: float) -> Pick:
    """The candidate with the largest rate (or ROI) and its lead over the runner-up, both linear in the
    means once costs are fixed: ROI_k = M·(ȳ_k − ȳ_holdout)/cost_k − 1."""
    def over_holdout(name: str) -> Weights:
        scale = margin / costs[name] if costs is not None else 1.0
        return _combine((scale, candidates[name]), (-scale, {holdout: 1.0}))

    values = {name: float(contrast(over_holdout(name), stats)[0]) for name in candidates}
    ranked = sorted(candidates, key=lambda k: -values[k] if math.isfinite(values[k]) else math.inf)
    best, runner_up = ranked[0], ranked[1] if len(ranked) > 1 else None
    shift = -1.0 if costs is not None else 0.0  # ROI = margin × incremental revenue / cost − 1
    value, value_ci, _, _ = _test(over_holdout(best), stats, value_alpha)
    if runner_up is None:
        lead, lead_ci = math.nan, (math.nan, math.nan)
    else:
        lead, lead_ci, _, _ = _test(_combine((1, over_holdout(best)), (-1, over_holdout(runner_up))), stats,
                                    lead_alpha)
    verdict = "clear" if lead_ci[0] > 0 else "leading"
    return Pick(subject, basis, metric, best, runner_up, lead, lead_ci, value + shift,
                (value_ci[0] + shift, value_ci[1] + shift), verdict)


def analyse(design: Design, *, metrics: Mapping[str, str], stats: Mapping[str, Mapping[str, SampleStats]],
            holdout: str, primary: str, alpha: float = 0.05, correction: str = "holm",
            returned: str | None = None, revenue: str | None = None,
            cost_per_customer: Mapping[str, float] | None = None, margin: float = 1.0) -> FactorialResult:
    """Main effects, interactions, ROI per level and the recommendation (see the module doc)."""
    mains, pairs = effects(design, metrics, stats, alpha=alpha, correction=correction)
    family_level = interval_alpha([e.p_value_adjusted for e in [*mains, *pairs]], alpha, correction)
    has_money = (returned in stats and revenue in stats and cost_per_customer is not None
                 and all(c in cost_per_customer for c in design.cells))
    rois = (level_roi(design, returned=stats[returned], revenue=stats[revenue], holdout=holdout,
                      cost_per_customer=cost_per_customer, margin=margin, alpha=alpha) if has_money else [])
    picks = recommend(design, metric=primary, stats=stats[primary], holdout=holdout, interactions=pairs,
                      family_level=family_level, revenue=stats[revenue] if has_money else None,
                      cost_per_customer=cost_per_customer if has_money else None, margin=margin, alpha=alpha)
    return FactorialResult(DesignSummary.of(design), mains, pairs, rois, picks)


@dataclass(frozen=True)
class FactorialPlan:
    """Customers a factorial needs to detect a main effect or a two-way interaction of a given size."""

    effect: str  # "main" or "interaction"
    cells: int
    per_cell: int
    contacted: int  # customers in the cells
    total: int  # with the holdout
    mde_abs: float
    alpha: float
    power: float


def factorial_sample_size(baseline: float, mde_abs: float, levels: Sequence[int], *, effect: str = "main",
                          holdout: float = 0.1, alpha: float = 0.05, power: float = 0.8) -> FactorialPlan:
    """Sample size of a balanced full factorial with ``levels`` levels per factor (e.g. [2, 2, 2]) to
    detect a main effect (of a factor with ``levels[0]`` levels) or a two-way interaction (of the first
    two factors) of ``mde_abs`` on a rate near ``baseline``, two-sided at ``alpha`` (pass α/m for m
    tests) with ``power``; normal approximation with the variance p(1 − p) in every cell.

    With N contacted customers in k equal cells, a main effect of an L-level factor (level vs reference)
    has variance 2L·s²/N and an interaction of L₁- and L₂-level factors (a difference of differences)
    4·L₁·L₂·s²/N: for two-level factors an interaction of the same size needs four times the customers."""
    if effect not in ("main", "interaction"):
        raise ValueError(f"effect is 'main' or 'interaction'; got {effect!r}")
    if not 0 < baseline < 1 or not mde_abs > 0 or not 0 <= holdout < 1:
        raise ValueError("baseline is a rate in (0, 1), mde_abs > 0 and holdout in [0, 1)")
    if len(levels) < (2 if effect == "interaction" else 1) or any(n < 2 for n in levels):
        raise ValueError(f"need factors of at least two levels (two factors for an interaction); got {list(levels)}")
    cells = math.prod(levels)
    factor = 2 * levels[0] if effect == "main" else 4 * levels[0] * levels[1]
    z = float(norm_isf(alpha / 2)) + float(norm_isf(1 - power))
    contacted = factor * baseline * (1 - baseline) * z * z / mde_abs ** 2
    per_cell = math.ceil(contacted / cells)
    total = math.ceil(per_cell * cells / (1 - holdout))
    return FactorialPlan(effect, cells, per_cell, per_cell * cells, total, mde_abs, alpha, power)

"""One verdict per experiment: ship, keep running, stop for harm, no effect, or not analysable.

Computed once, from a :class:`~analysis.report.Report`, so the CLI report, its JSON, the Results page
and the Overview say the same thing. The rules, in order:

1. **not analysable**: nobody assigned or no outcome yet, or a sample ratio mismatch (the split is
   broken, so every comparison is biased).
2. **ship** the contacted variant with the largest uplift on the primary metric among those that are
   significantly better after the multiple-testing correction, breach no guardrail, do not provably
   lose money (ROI interval entirely below break-even) and, when sequential monitoring of a running
   test was asked for, have crossed its boundary. A positive verdict never rests on an unadjusted p.
3. **keep running** when such a variant has not crossed the sequential boundary yet.
4. **stop for harm** when a variant breaches a guardrail or is significantly worse on the primary
   metric, and no variant can be shipped; **no effect** when the only better variants lose money.
5. **keep running** while the attribution window of the last assigned customer is still open, or
   while a designed test has fewer customers than the power calculation asks for (the days or
   customers still needed are given; a stopped one needs them in a clone).
6. **no effect** otherwise: the test had its customers and its time and no variant is better
   (imported results without enough customers say so among the reasons).

A factorial design's verdict (designed with ``[factors]`` or imported with ``--factors``) adds the
recommendation of :func:`analysis.factorial.recommend` to its reasons (unless the test is not
analysable): the best cell, and the best level of each factor whose interactions are negligible (or
that its best level depends on another factor), by return rate and by ROI, each with its interval and
"unproven" when the lead's interval includes 0 or the ROI's includes break-even.

Each verdict carries its reasons (SRM, adjusted significance, guardrails, sequential boundary, ROI
interval, recall quality, power) as codes with values; :mod:`analysis.render` words them in zh or en.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from analysis import power as planning
from analysis.quality import verdict as quality_verdict

if TYPE_CHECKING:
    from analysis.report import Comparison, Report

SHIP = "ship"
KEEP_RUNNING = "keep_running"
STOP_FOR_HARM = "stop_for_harm"
NO_EFFECT = "no_effect"
NOT_ANALYSABLE = "not_analysable"
DECISIONS = (SHIP, KEEP_RUNNING, STOP_FOR_HARM, NO_EFFECT, NOT_ANALYSABLE)

# The smallest uplift the power calculation plans for (specs name none): one percentage point of the
# primary rate, the Design page's default.
PLANNED_MDE_ABS = 0.01
PLANNED_POWER = 0.8


@dataclass(frozen=True)
class Reason:
    """One reason of a verdict: a code (see :data:`analysis.render.REASONS`), the variant it is about,
    and the numbers it cites."""

    code: str
    variant: str | None = None
    values: dict[str, Any] = field(default_factory=dict)  # numbers (null when not finite) and names


@dataclass(frozen=True)
class Verdict:
    decision: str  # one of DECISIONS
    variant: str | None  # the variant to ship, or the harmful one; None otherwise
    reasons: list[Reason]
    customers_needed: int | None = None  # keep_running: more customers for the planned power
    days_needed: int | None = None  # keep_running: days until the window closes or the customers arrive


@dataclass(frozen=True)
class Horizon:
    """Where a test stands in time: days until the last assigned customer's attribution window
    closes (None when closed or unknown) and how fast customers have been assigned per day (None
    when they were all assigned on one day)."""

    days_left: int | None = None
    assigned_per_day: float | None = None


def _finite(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def _primary(report: Report) -> list[Comparison]:
    return [c for c in report.comparisons if c.metric == report.primary_metric and c.segment is None]


def decide(report: Report, horizon: Horizon | None = None) -> Verdict:
    """The verdict of ``report`` (see the module docstring for the rules)."""
    verdict = _decide(report, horizon)
    if verdict.decision == NOT_ANALYSABLE or not report.recommendation:
        return verdict
    return replace(verdict, reasons=[*verdict.reasons, *factorial_reasons(report)])


def factorial_reasons(report: Report) -> list[Reason]:
    """A factorial's recommendation as reasons (one per pick; "depends" once per factor): the choice,
    its lead over the runner-up with the adjusted interval, and its uplift over the holdout (rate) or
    its ROI with their intervals. A best cell that breaches a guardrail says so right after it: the
    recommendation ranks by rate or ROI alone, the guardrail decides whether it may ship."""
    out: list[Reason] = []
    breached = {g.variant: g for g in report.guardrails if g.breached}
    for p in report.recommendation:
        level = p.subject != "cell"
        if p.verdict == "depends":
            reason = Reason("factorial_depends", values={"factor": p.subject, "others": ", ".join(p.depends_on)})
            out += [] if reason in out else [reason]  # the same for rate and ROI: said once
            continue
        code = f"factorial_{'level' if level else 'cell'}_{p.basis}_{'clear' if p.verdict == 'clear' else 'leading'}"
        values = {"kind": report.metric_kind(p.metric), "metric": p.metric, "runner_up": p.runner_up or "",
                  "lead": p.lead, "lead_lo": p.lead_ci[0], "lead_hi": p.lead_ci[1],
                  "value": p.value, "value_lo": p.value_ci[0], "value_hi": p.value_ci[1]}
        if level:
            values |= {"factor": p.subject, "level": p.choice}
        out.append(Reason(code, None if level else p.choice, values))
        if not level and p.choice in breached:
            g = breached[p.choice]
            out.append(Reason("factorial_cell_guardrail", p.choice, {"metric": g.metric, "basis": p.basis}))
    return out


def _decide(report: Report, horizon: Horizon | None) -> Verdict:
    horizon = horizon or Horizon()
    primary = _primary(report)
    assigned = sum(v.n for v in report.variants)
    if assigned == 0:
        return Verdict(NOT_ANALYSABLE, None, [Reason("no_customers")])
    if not any(_finite(c.p_value) for c in primary):
        if horizon.days_left:  # launched, outcomes still to come
            return Verdict(KEEP_RUNNING, None, [Reason("no_outcomes"),
                                                Reason("window_open", values={"days": horizon.days_left})],
                           days_needed=horizon.days_left)
        return Verdict(NOT_ANALYSABLE, None, [Reason("no_outcomes")])
    srm = report.srm
    if srm.mismatch:
        return Verdict(NOT_ANALYSABLE, None, [Reason("srm_mismatch", values={"p": srm.p_value,
                                                                            "threshold": srm.threshold})])
    reasons = [Reason("srm_ok", values={"p": srm.p_value})]
    breached = {g.variant: g for g in report.guardrails if g.breached}
    roi = {r.variant: r for r in report.roi}
    sequential = {s.variant: s for s in report.sequential}
    monitoring = bool(sequential) and report.status == "running"

    def loses_money(variant: str) -> bool:
        r = roi.get(variant)
        return r is not None and r.roi_ci is not None and _finite(*r.roi_ci) and r.roi_ci[1] < 0

    better = [c for c in primary if c.significant and c.abs_uplift > 0]
    worse = [c for c in primary if c.significant and c.abs_uplift < 0]
    shippable = [c for c in better if c.variant not in breached and not loses_money(c.variant)]
    for c in better:
        if c.variant in breached:
            reasons.append(_guardrail_reason(breached[c.variant]))
        elif loses_money(c.variant):
            reasons.append(_roi_reason(roi[c.variant]))
    crossed = [c for c in shippable if not monitoring or sequential[c.variant].may_act]
    if crossed:
        best = max(crossed, key=lambda c: c.abs_uplift)
        reasons += [_significance(best), *_guardrail_reasons(report, best.variant)]
        if monitoring:
            reasons.append(Reason("sequential_crossed", best.variant))
        if best.variant in roi:
            reasons.append(_roi_reason(roi[best.variant]))
        reasons += _quality_reasons(report, best.variant)
        return Verdict(SHIP, best.variant, reasons)
    if shippable:
        best = max(shippable, key=lambda c: c.abs_uplift)
        reasons += [_significance(best), Reason("sequential_not_crossed", best.variant)]
        return Verdict(KEEP_RUNNING, best.variant, reasons, days_needed=horizon.days_left)
    harmed = [c.variant for c in worse] + [v for v in breached if v not in {c.variant for c in worse}]
    if harmed:  # better arms that breach a guardrail already have their reason above
        extra = [Reason("significantly_worse", c.variant, _interval_values(c)) for c in worse]
        extra += [_guardrail_reason(g) for v, g in breached.items() if v not in {c.variant for c in better}]
        return Verdict(STOP_FOR_HARM, harmed[0], reasons + extra)
    if better:  # significantly better, but every one provably loses money
        return Verdict(NO_EFFECT, None, reasons + [_significance(c) for c in better])
    leader = max(primary, key=lambda c: c.abs_uplift if _finite(c.abs_uplift) else -math.inf)
    reasons.append(Reason("not_significant", leader.variant, _interval_values(leader)))
    needed = customers_needed(report)
    if horizon.days_left:
        reasons.append(Reason("window_open", values={"days": horizon.days_left}))
    if needed:
        reasons.append(Reason("underpowered", values={"customers": needed, "mde": PLANNED_MDE_ABS}))
    # A designed test can take more customers (launch it again, or clone it); imported results cannot.
    if horizon.days_left or (needed and report.source == "designed"):
        days = horizon.days_left
        if needed and horizon.assigned_per_day:
            days = max(days or 0, math.ceil(needed / horizon.assigned_per_day))
        return Verdict(KEEP_RUNNING, None, reasons, customers_needed=needed or None, days_needed=days)
    if needed == 0:
        reasons.append(Reason("powered", values={"mde": PLANNED_MDE_ABS}))
    return Verdict(NO_EFFECT, None, reasons, customers_needed=needed or None)


def _interval_values(c: Comparison) -> dict[str, Any]:
    """The uplift with its interval at the family level, beside the adjusted p-value."""
    return {"metric": c.metric, "kind": c.kind, "uplift": c.abs_uplift, "lo": c.abs_ci_adjusted[0],
            "hi": c.abs_ci_adjusted[1], "p_adjusted": c.p_value_adjusted}


def _significance(c: Comparison) -> Reason:
    return Reason("significant", c.variant, _interval_values(c))


def _guardrail_reason(g) -> Reason:  # noqa: ANN001 - analysis.report.Guardrail
    return Reason("guardrail_breached", g.variant, {"metric": g.metric, "difference": g.difference,
                                                     "upper": g.upper_bound, "margin": g.margin})


def _guardrail_reasons(report: Report, variant: str) -> list[Reason]:
    mine = [g for g in report.guardrails if g.variant == variant]
    return [Reason("guardrails_ok", variant, {"metrics": ", ".join(g.metric for g in mine)})] if mine else []


def _roi_reason(r) -> Reason:  # noqa: ANN001 - analysis.roi.RoiResult
    lo, hi = r.roi_ci if r.roi_ci is not None else (math.nan, math.nan)
    values = {"roi": r.roi, "lo": lo, "hi": hi}
    if not _finite(r.roi, lo, hi):
        return Reason("roi_unknown", r.variant, values)
    code = "roi_positive" if lo > 0 else "roi_negative" if hi < 0 else "roi_unproven"
    return Reason(code, r.variant, values)


def _quality_reasons(report: Report, variant: str) -> list[Reason]:
    if not report.quality:
        return []
    c = next((q for q in report.quality if q.variant == variant and q.measure == "retained_30d"), None)
    values = {} if c is None else {"uplift": c.abs_uplift, "lo": c.abs_ci[0], "hi": c.abs_ci[1]}
    return [Reason(f"quality_{quality_verdict(report.quality, variant)}", variant, values)]


def customers_needed(report: Report) -> int | None:
    """More customers (in the design's shares) the primary rate needs to detect the planned uplift
    (one percentage point) with 80% power at the report's α, Bonferroni across the contacted
    variants (analysis.power); 0 when the test already has them; None when it cannot be computed (a
    continuous primary metric, whose spread the report does not carry, or a rate of 0 or 1)."""
    primary = _primary(report)
    control = next((v for v in report.variants if v.is_control), None)
    contacted = [v for v in report.variants if not v.is_control]
    if not primary or control is None or not contacted or primary[0].kind != "binary":
        return None
    baseline = primary[0].control_mean
    if not (_finite(baseline) and 0 < baseline < 1):
        return None
    shares = sum(v.designed_share for v in report.variants)
    control_share = control.designed_share / shares
    try:
        plan = planning.sample_size_proportions(baseline, mde_abs=PLANNED_MDE_ABS, alpha=report.alpha,
                                                power=PLANNED_POWER, control_share=control_share,
                                                variants=len(contacted))
    except ValueError:
        return None
    smallest = min(v.designed_share for v in contacted) / shares
    total_needed = max(plan.n_control / control_share, plan.n_variant / smallest)
    assigned = sum(v.n for v in report.variants)
    return max(0, math.ceil(total_needed - assigned))

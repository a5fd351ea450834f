"""``recall report`` and ``recall power``: significance reports and test planning."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from cli.common import DbOption, Lang, engine_for, fail, out


class RelativeCi(str, Enum):
    delta = "delta"
    fieller = "fieller"


class ReportFormat(str, Enum):
    markdown = "markdown"
    json = "json"


class CorrectionOption(str, Enum):
    holm = "holm"
    bh = "bh"
    bonferroni = "bonferroni"
    none = "none"


class MetricType(str, Enum):
    rate = "rate"
    mean = "mean"


def report(
    name: str,
    format: Annotated[ReportFormat, typer.Option("--format", "-f")] = ReportFormat.markdown,
    correction: Annotated[CorrectionOption, typer.Option(help="Multiple-testing correction.")] = CorrectionOption.holm,
    alpha: Annotated[float, typer.Option(min=1e-6, max=0.5)] = 0.05,
    lang: Annotated[Lang, typer.Option(help="Language of the Markdown report.")] = Lang.zh,
    output: Annotated[Path | None, typer.Option("--out", "-o", help="Write to a file instead of stdout.")] = None,
    sequential: Annotated[bool, typer.Option(help="Add always-valid intervals for monitoring a running test.")] = False,
    cuped: Annotated[bool, typer.Option(help="Add uplifts adjusted for pre-period covariates (CUPED / Lin).")] = False,
    bayesian: Annotated[bool, typer.Option(help="Add the chance to beat the control and the expected loss.")] = False,
    relative_ci: Annotated[RelativeCi, typer.Option(
        help="Interval of the relative uplift: delta (log ratio) or fieller (unbounded when the control "
             "mean is not clearly above 0).")] = RelativeCi.delta,
    guardrail_margin: Annotated[list[str] | None, typer.Option(
        help="Tolerated increase of a guardrail rate, e.g. unsubscribed=0.005 (repeatable).")] = None,
    segments: Annotated[str | None, typer.Option(
        help="Segment dimensions, comma-separated (e.g. cohort,rfm_tier), or none; default: all.")] = None,
    cap: Annotated[float | None, typer.Option(
        min=0.5, max=0.9999, help="Cap amounts (revenue) at this quantile of the positive values, e.g. 0.99.")] = None,
    db: DbOption = None,
) -> None:
    """Significance report of NAME: uplift over the natural return rate, CIs, p-values, SRM, ROI."""
    import inspect

    from analysis.render import render_markdown
    from analysis.report import build_report
    from analysis.runs import stored_report
    from analysis.tables import SourceOutOfMemory
    from experiments.store import NotFound

    try:
        margins = {}
        for item in guardrail_margin or []:
            metric, _, value = item.partition("=")
            try:
                margins[metric.strip()] = float(value)
            except ValueError:
                fail(f"--guardrail-margin: expected METRIC=RATE such as unsubscribed=0.005, got {item!r}")
        options = dict(alpha=alpha, correction=correction.value, guardrail_margins=margins or None,
                       sequential=sequential, cuped=cuped, bayesian=bayesian, relative_ci=relative_ci.value,
                       segments=None if segments is None else
                       [d.strip() for d in segments.split(",") if d.strip() and d.strip() != "none"],
                       cap=cap)
        defaults = {k: p.default for k, p in inspect.signature(build_report).parameters.items()
                    if p.kind == p.KEYWORD_ONLY}
        # stored for this data version (the app reads the run of the default options instead of recomputing)
        result = stored_report(engine_for(db), name, **{k: v for k, v in options.items() if v != defaults[k]})
    except (NotFound, ValueError, SourceOutOfMemory) as exc:
        fail(str(exc))
    text = result.to_json() if format == ReportFormat.json else render_markdown(result, lang=lang.value)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
        out.print(f"report written to {output}")
    else:
        sys.stdout.write(text + "\n")


def power(
    baseline: Annotated[float, typer.Option(help="Natural return rate of the cohort (rate, e.g. 0.08) or the "
                                                 "control's mean (mean, e.g. revenue 6.5 ¥ per customer).")],
    metric: Annotated[MetricType, typer.Option(help="rate (returned, ordered…) or mean (revenue…).")] = MetricType.rate,
    sd: Annotated[float | None, typer.Option(help="Per-customer standard deviation (mean metrics only).")] = None,
    mde_rel: Annotated[float | None, typer.Option(help="Smallest uplift worth detecting, relative (0.1 = +10%).")] = None,
    mde_abs: Annotated[float | None, typer.Option(help="…or absolute (0.01 = one percentage point).")] = None,
    customers: Annotated[int | None, typer.Option(
        help="Instead of a sample size: the customers available; prints the minimum detectable uplift.")] = None,
    holdout: Annotated[float, typer.Option(min=0.01, max=0.9, help="Share of the no-contact control.")] = 0.1,
    variants: Annotated[int, typer.Option(min=1, max=20, help="Contacted variants (share the rest equally).")] = 1,
    alpha: Annotated[float, typer.Option(min=1e-6, max=0.5)] = 0.05,
    power_: Annotated[float, typer.Option("--power", min=0.5, max=0.999)] = 0.8,
    eligible_per_day: Annotated[float | None, typer.Option(help="Newly eligible customers a day: prints the duration.")] = None,
    eligible_now: Annotated[int, typer.Option(min=0, help="Customers eligible today (they join at launch).")] = 0,
    attribution_days: Annotated[int, typer.Option(min=0, help="Attribution window added to the duration.")] = 0,
    channel: Annotated[str, typer.Option(help="Channel of the contacted arms, for the cost.")] = "sms",
    coupon: Annotated[float, typer.Option(min=0, help="Coupon face value in ¥.")] = 0.0,
    redemption_rate: Annotated[float, typer.Option(min=0, max=1, help="Expected coupon redemption rate.")] = 0.0,
) -> None:
    """Plan a test: customers needed (or the minimum detectable uplift), duration and cost in ¥.

    Each variant is compared with the control at α / variants (Bonferroni), as the report's Holm
    correction never needs more; see docs/statistics/power.md."""
    from rich.table import Column, Table

    from analysis import power as planning
    from experiments.catalog import DEFAULT_CHANNEL_COSTS, Channel

    try:
        unit_cost = float(DEFAULT_CHANNEL_COSTS[Channel(channel)])
    except ValueError:
        fail(f"--channel: unknown channel {channel!r}; choose one of {', '.join(c.value for c in Channel)}")
    if metric == MetricType.mean and sd is None:
        fail("--sd: a mean metric needs the per-customer standard deviation (e.g. from last month's revenue)")
    share = (1 - holdout) / variants
    table = Table("", Column("", justify="right"), show_header=False)
    try:
        if customers is not None:
            n_control, n_variant = customers * holdout, customers * share
            if metric == MetricType.rate:
                mde = planning.minimum_detectable_effect(baseline, n_control, n_variant, alpha, power_,
                                                         variants=variants)
            else:
                mde = planning.minimum_detectable_effect_means(baseline, sd, n_control, n_variant, alpha, power_,
                                                               variants=variants)
            table.add_row("customers (control / each variant)", f"{n_control:,.0f} / {n_variant:,.0f}")
            table.add_row("minimum detectable uplift (absolute)", f"{mde.mde_abs:+.4g}")
            table.add_row("minimum detectable uplift (relative)", f"{mde.mde_rel:+.1%}")
            table.add_row("α per comparison", f"{mde.alpha_used:.4g}")
            n_contacted = customers - round(n_control)
        else:
            if (mde_rel is None) == (mde_abs is None):
                fail("give exactly one of --mde-rel and --mde-abs (or --customers for the detectable uplift)")
            if metric == MetricType.rate:
                plan = planning.sample_size_proportions(baseline, mde_abs, mde_rel, alpha, power_, holdout, variants)
            else:
                plan = planning.sample_size_means(baseline, sd, mde_abs, mde_rel, alpha, power_, holdout, variants)
            table.add_row("control (no contact)", f"{plan.n_control:,}")
            table.add_row(f"each contacted variant (× {variants})", f"{plan.n_variant:,}")
            table.add_row("customers in all", f"{plan.n_total:,}")
            table.add_row("baseline → target", f"{plan.baseline:.4g} → {plan.target:.4g}")
            table.add_row("α per comparison", f"{plan.alpha_used:.4g}")
            n_contacted = variants * plan.n_variant
            if eligible_per_day:
                days = planning.enrolment_days(plan.n_total, eligible_per_day, eligible_now) + attribution_days
                table.add_row("duration", f"{days} days")
        cost = planning.experiment_cost(n_contacted, unit_cost, coupon, redemption_rate)
    except ValueError as exc:
        fail(str(exc))
    table.add_row("messages", f"¥{cost.messages:,.2f}")
    table.add_row("coupons (expected)", f"¥{cost.coupons:,.2f}")
    table.add_row("cost in all", f"¥{cost.total:,.2f}")
    out.print(table)



def register(app: typer.Typer) -> None:
    app.command()(report)
    app.command()(power)

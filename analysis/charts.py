"""Charts of a report, as Altair specifications (pure: no Streamlit, testable on their own).

- :func:`variant_rates`: each variant's rate with its 95% interval against the natural rate,
- :func:`uplift_forest`: a forest plot of absolute uplifts with intervals around 0,
- :func:`recall_vs_natural`: per campaign, the contacted customers' rate next to the natural rate,
- :func:`monthly_trend`: the same two rates by launch month,
- :func:`monitoring_path`: the always-valid interval of each variant day by day (one panel each),
- :func:`main_effects`: a factorial design's mean per level, one panel per factor,
- :func:`interaction_lines`: one factor's levels as lines across another factor's levels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import altair as alt
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from analysis.report import Report

CONTROL_COLOUR = "#8c8c8c"
SIGNIFICANT_COLOUR = "#d62728"
NEUTRAL_COLOUR = "#1f77b4"
ROW_HEIGHT = 34


def variant_rate_frame(report: Report, metric: str) -> pd.DataFrame:
    """One row per variant: its mean and, for a rate, its Wilson 95% interval."""
    rows = []
    comparisons = [c for c in report.comparisons if c.metric == metric]
    if not comparisons:
        return pd.DataFrame(columns=["variant", "mean", "lo", "hi", "is_control", "significant"])
    first = comparisons[0]
    binary = first.kind == "binary"

    def interval(mean: float, n: int) -> tuple[float, float]:
        if not binary or n == 0 or not math.isfinite(mean):
            return mean, mean
        lo, hi = proportion_confint(round(mean * n), n, alpha=1 - 0.95, method="wilson")
        return float(lo), float(hi)

    rows.append(dict(variant=report.control, mean=first.control_mean, is_control=True, significant=False,
                     **dict(zip(("lo", "hi"), interval(first.control_mean, first.control_n), strict=True))))
    for c in comparisons:
        rows.append(dict(variant=c.variant, mean=c.variant_mean, is_control=False, significant=c.significant,
                         **dict(zip(("lo", "hi"), interval(c.variant_mean, c.n), strict=True))))
    return pd.DataFrame(rows)


ROLES = ("control", "significant", "not significant")


def _role_colour(legend: dict[str, str] | None, roles: Sequence[str] = ROLES) -> alt.Color:
    """Grey control, red significant (adjusted), blue not significant, with a legend in the page's words."""
    colours = dict(zip(ROLES, (CONTROL_COLOUR, SIGNIFICANT_COLOUR, NEUTRAL_COLOUR), strict=True))
    return alt.Color("role_label:N", title=None, legend=alt.Legend(orient="top", labelLimit=240, columns=3),
                     scale=alt.Scale(domain=[(legend or {}).get(r, r) for r in roles], range=[colours[r] for r in roles]))


def _height(rows: int) -> int:
    """Tall enough for its rows: a few arms still get a readable chart, many arms one row each."""
    return max(160, ROW_HEIGHT * rows + 40)


def variant_rates(report: Report, metric: str, *, label: str = "", natural_label: str = "natural",
                  legend: dict[str, str] | None = None) -> alt.LayerChart:
    """Points with 95% intervals per variant and a dashed rule at the control's (natural) level.
    ``legend`` names the colours (control, significant, not significant) in the page's language."""
    frame = variant_rate_frame(report, metric)
    axis_format = ".1%" if _is_binary(report, metric) else ",.2f"
    frame["role"] = ["control" if c else ("significant" if s else "not significant")
                     for c, s in zip(frame["is_control"], frame["significant"], strict=True)]
    frame["role_label"] = [(legend or {}).get(r, r) for r in frame["role"]]
    colour = _role_colour(legend)
    base = alt.Chart(frame).encode(y=_variant_axis())
    bars = base.mark_rule(strokeWidth=2).encode(x=alt.X("lo:Q", title=label or metric, axis=alt.Axis(format=axis_format),
                                                        scale=_padded(frame, ("lo", "hi", "mean"))),
                                                x2="hi:Q", color=colour)
    points = base.mark_point(filled=True, size=80).encode(
        x="mean:Q", color=colour,
        tooltip=[alt.Tooltip("variant:N"), alt.Tooltip("mean:Q", format=axis_format),
                 alt.Tooltip("lo:Q", format=axis_format), alt.Tooltip("hi:Q", format=axis_format)])
    natural = frame[frame.is_control]["mean"].iloc[0] if len(frame) else 0.0
    rule = alt.Chart(pd.DataFrame({"natural": [natural], "label": [natural_label]})).mark_rule(
        strokeDash=[6, 4], color=CONTROL_COLOUR).encode(x="natural:Q", tooltip=["label:N"])
    return alt.layer(bars, points, rule).properties(height=_height(len(frame)))


def _padded(frame: pd.DataFrame, columns: Sequence[str], *, include_zero: bool = False) -> alt.Scale:
    """An x scale around the finite values of ``columns`` with 8% room on each side, so the ends of
    the intervals are never cut at the chart's edge."""
    values = [float(v) for c in columns for v in frame[c] if v is not None and math.isfinite(float(v))]
    if include_zero:
        values.append(0.0)
    if not values:
        return alt.Scale(zero=include_zero)
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.08 or 0.01
    return alt.Scale(domain=[lo - pad, hi + pad], nice=False, zero=False)


def uplift_frame(report: Report, metric: str, segment: str | None = None,
                 segment_label: Callable[[str], str] | None = None) -> pd.DataFrame:
    """One row per comparison (of ``segment``'s dimension, e.g. "cohort="); ``segment_label`` words a
    segment in the page's language."""
    source = report.comparisons if segment is None else report.segments
    word = segment_label or str
    return pd.DataFrame([
        dict(variant=c.variant if segment is None else f"{word(c.segment)} · {c.variant}", uplift=c.abs_uplift,
             lo=c.abs_ci[0], hi=c.abs_ci[1], significant=c.significant, p_adj=c.p_value_adjusted)
        for c in source if c.metric == metric and (segment is None or c.segment.startswith(segment))
    ], columns=["variant", "uplift", "lo", "hi", "significant", "p_adj"])


def uplift_forest(report: Report, metric: str, *, segment: str | None = None, label: str = "",
                  points: str = "pt", legend: dict[str, str] | None = None,
                  segment_label: Callable[[str], str] | None = None) -> alt.LayerChart:
    """Absolute uplift over the control with 95% intervals; the zero line is 'no effect'. The uplift of
    a rate is a difference of percentages, so it is drawn in percentage points (``points`` names the
    unit: "pt", "个百分点"), never as "%"."""
    frame = uplift_frame(report, metric, segment, segment_label)
    binary = _is_binary(report, metric)
    if binary:
        frame[["uplift", "lo", "hi"]] = frame[["uplift", "lo", "hi"]].astype(float) * 100
    axis_format = "+.1f" if binary else "+,.2f"
    title = (label or metric) + (f" ({points})" if binary else "")
    frame["role"] = ["significant" if s else "not significant" for s in frame["significant"]]
    frame["role_label"] = [(legend or {}).get(r, r) for r in frame["role"]]
    colour = _role_colour(legend, ROLES[1:])  # no control row in a forest of uplifts
    base = alt.Chart(frame).encode(y=_variant_axis())
    interval = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("lo:Q", title=title, axis=alt.Axis(format=axis_format),
                scale=_padded(frame, ("lo", "hi", "uplift"), include_zero=True)), x2="hi:Q", color=colour)
    point = base.mark_point(filled=True, size=80, shape="diamond").encode(
        x="uplift:Q", color=colour,
        tooltip=[alt.Tooltip("variant:N"), alt.Tooltip("uplift:Q", format=axis_format),
                 alt.Tooltip("lo:Q", format=axis_format), alt.Tooltip("hi:Q", format=axis_format),
                 alt.Tooltip("p_adj:Q", format=".4f")])
    zero = alt.Chart(pd.DataFrame({"zero": [0.0]})).mark_rule(color="black").encode(x="zero:Q")
    return alt.layer(interval, point, zero).properties(height=_height(len(frame)))


def recall_vs_natural(rows: Sequence[dict], *, recall_label: str, natural_label: str) -> alt.LayerChart:
    """Grouped bars per campaign: the contacted customers' return rate next to the natural rate."""
    frame = pd.DataFrame(
        [dict(campaign=r["campaign"], series=recall_label, rate=r["recall_rate"]) for r in rows]
        + [dict(campaign=r["campaign"], series=natural_label, rate=r["natural_rate"]) for r in rows],
        columns=["campaign", "series", "rate"],
    )
    bars = alt.Chart(frame).mark_bar(cornerRadiusEnd=3).encode(
        x=alt.X("rate:Q", axis=alt.Axis(format=".0%"), title=None),
        y=alt.Y("campaign:N", title=None, sort=None, axis=alt.Axis(labelOverlap=False, labelLimit=260)),
        yOffset=alt.YOffset("series:N", sort=[recall_label, natural_label]),
        color=alt.Color("series:N", title=None, legend=alt.Legend(orient="top"),
                        scale=alt.Scale(domain=[recall_label, natural_label], range=[NEUTRAL_COLOUR, CONTROL_COLOUR])),
        tooltip=["campaign:N", "series:N", alt.Tooltip("rate:Q", format=".2%")],
    )
    labels = bars.mark_text(align="left", dx=4).encode(text=alt.Text("rate:Q", format=".1%"), color=alt.value("#333"))
    return alt.layer(bars, labels).properties(height=max(160, 80 * len(rows)))


def _variant_axis() -> alt.Y:
    return alt.Y("variant:N", sort=None, title=None, axis=alt.Axis(labelOverlap=False, labelLimit=260))


def _is_binary(report: Report, metric: str) -> bool:
    return any(c.kind == "binary" for c in report.comparisons if c.metric == metric)


def monitoring_path(looks: Sequence, *, label: str = "", day_label: str = "day", binary: bool = True,
                    points: str = "pt") -> alt.FacetChart:
    """Always-valid intervals over the daily looks around the zero line: one panel per variant (one
    band each, not eight overlapping), in percentage points for a rate."""
    frame = pd.DataFrame([dict(day=k.day, variant=k.variant, uplift=k.abs_uplift, lo=k.ci_lo, hi=k.ci_hi)
                          for k in looks], columns=["day", "variant", "uplift", "lo", "hi"])
    scale = 100 if binary else 1
    frame[["uplift", "lo", "hi"]] = frame[["uplift", "lo", "hi"]].astype(float) * scale
    axis_format = "+.1f" if binary else "+,.2f"
    title = (label or "") + (f" ({points})" if binary else "")
    base = alt.Chart().encode(x=alt.X("day:Q", title=day_label, axis=alt.Axis(tickMinStep=1)))
    band = base.mark_area(opacity=0.18, color=NEUTRAL_COLOUR).encode(
        y=alt.Y("lo:Q", title=title, axis=alt.Axis(format=axis_format)), y2="hi:Q")
    line = base.mark_line(point=True, color=NEUTRAL_COLOUR).encode(
        y="uplift:Q", tooltip=["day:Q", "variant:N", alt.Tooltip("uplift:Q", format=axis_format),
                               alt.Tooltip("lo:Q", format=axis_format), alt.Tooltip("hi:Q", format=axis_format)])
    zero = alt.Chart().mark_rule(color="black").encode(y=alt.datum(0))
    # four panels of 190 px and their axis fit the app's page at 1440 px (at 220 the fourth was cut off)
    return alt.layer(band, line, zero, data=frame).properties(width=190, height=160).facet(
        facet=alt.Facet("variant:N", title=None, sort=list(dict.fromkeys(frame.variant))), columns=4)


def monthly_trend(rows: Sequence[dict], *, month_label: str, recall_label: str, natural_label: str) -> alt.Chart:
    """By launch month: the contacted customers' return rate against the natural return rate."""
    frame = pd.DataFrame(
        [dict(month=r["month"], series=recall_label, rate=r["recall_rate"]) for r in rows]
        + [dict(month=r["month"], series=natural_label, rate=r["natural_rate"]) for r in rows],
        columns=["month", "series", "rate"])
    return alt.Chart(frame).mark_line(point=alt.OverlayMarkDef(filled=True, size=70)).encode(
        x=alt.X("month:O", title=month_label, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("rate:Q", title=None, axis=alt.Axis(format=".0%")),
        color=alt.Color("series:N", title=None, legend=alt.Legend(orient="top"),
                        scale=alt.Scale(domain=[recall_label, natural_label], range=[NEUTRAL_COLOUR, CONTROL_COLOUR])),
        tooltip=["month:O", "series:N", alt.Tooltip("rate:Q", format=".2%")],
    ).properties(height=260)


def main_effects_frame(report: Report, metric: str) -> pd.DataFrame:
    """One row per factor × level: the level's mean averaged over the other factors (equal weight)."""
    rows = []
    natural = next((c.control_mean for c in report.comparisons if c.metric == metric), math.nan)
    for e in report.factors:
        if e.metric != metric:
            continue
        if not any(r["factor"] == e.factor for r in rows):
            rows.append(dict(factor=e.factor, level=e.reference, mean=e.reference_mean, effect=0.0,
                             p_adj=math.nan, natural=natural))
        rows.append(dict(factor=e.factor, level=e.level, mean=e.level_mean, effect=e.abs_effect,
                         p_adj=e.p_value_adjusted, natural=natural))
    return pd.DataFrame(rows, columns=["factor", "level", "mean", "effect", "p_adj", "natural"])


def main_effects(report: Report, metric: str, *, label: str = "", natural_label: str = "natural",
                 factor_label: str = "factor", effect_label: str = "effect", points: str = "pt",
                 level_label: str = "level", p_label: str = "p_adj") -> alt.FacetChart:
    """One panel per factor: the mean at each of its levels (a line from the reference level), and the
    natural rate of the holdout as a dashed rule. The means of a rate are percentages; the effect (a
    difference of rates, in the tooltip) is in percentage points (``points``: "pt", "个百分点")."""
    frame = main_effects_frame(report, metric)
    frame["natural_label"] = natural_label
    binary = _is_binary(report, metric)
    axis_format = ".1%" if binary else ",.2f"
    frame["effect_shown"] = frame["effect"] * (100 if binary else 1)
    effect_title = f"{effect_label} ({points})" if binary else effect_label
    base = alt.Chart().encode(x=alt.X("level:N", sort=None, title=None, axis=alt.Axis(labelAngle=0)))
    line = base.mark_line(point=alt.OverlayMarkDef(filled=True, size=80), color=NEUTRAL_COLOUR).encode(
        y=alt.Y("mean:Q", title=label or metric, axis=alt.Axis(format=axis_format), scale=alt.Scale(zero=False)),
        tooltip=[alt.Tooltip("factor:N", title=factor_label), alt.Tooltip("level:N", title=level_label),
                 alt.Tooltip("mean:Q", title=label or metric, format=axis_format),
                 alt.Tooltip("effect_shown:Q", title=effect_title, format="+.2f" if binary else "+,.2f"),
                 alt.Tooltip("p_adj:Q", title=p_label, format=".4f")])
    rule = alt.Chart().mark_rule(strokeDash=[6, 4], color=CONTROL_COLOUR).encode(
        y="natural:Q", tooltip=["natural_label:N", alt.Tooltip("natural:Q", format=axis_format)])
    return alt.layer(line, rule, data=frame).properties(width=180, height=240).facet(
        column=alt.Column("factor:N", sort=list(dict.fromkeys(frame.factor)), title=None)).resolve_scale(x="independent")


def interaction_frame(report: Report, metric: str, across: str, lines: str) -> pd.DataFrame:
    """Means of each (``across`` level, ``lines`` level) pair, averaged over the remaining factors."""
    design = report.factorial
    if design is None:
        return pd.DataFrame(columns=["across", "line", "mean"])
    means = {c.variant: c.variant_mean for c in report.comparisons if c.metric == metric and c.segment is None}
    rows = []
    for x in design.factors[across]:
        for line in design.factors[lines]:
            cells = [c for c, lv in design.cells.items() if lv[across] == x and lv[lines] == line and c in means]
            if cells:
                rows.append(dict(across=x, line=line, mean=sum(means[c] for c in cells) / len(cells)))
    return pd.DataFrame(rows, columns=["across", "line", "mean"])


def interaction_lines(report: Report, metric: str, across: str, lines: str, *, label: str = "") -> alt.Chart:
    """Lines for each level of ``lines`` across the levels of ``across``: parallel lines, no interaction;
    lines that converge, diverge or cross, an interaction."""
    frame = interaction_frame(report, metric, across, lines)
    axis_format = ".1%" if _is_binary(report, metric) else ",.2f"
    return alt.Chart(frame).mark_line(point=alt.OverlayMarkDef(filled=True, size=70)).encode(
        x=alt.X("across:N", sort=None, title=across, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("mean:Q", title=label or metric, axis=alt.Axis(format=axis_format), scale=alt.Scale(zero=False)),
        color=alt.Color("line:N", sort=None, title=lines, legend=alt.Legend(orient="top")),
        tooltip=[alt.Tooltip("across:N", title=across), alt.Tooltip("line:N", title=lines),
                 alt.Tooltip("mean:Q", format=axis_format)],
    ).properties(height=280)


def to_png(chart: alt.TopLevelMixin, scale: float = 2) -> bytes:
    """The chart as a PNG (vl-convert-python draws Vega-Lite without a browser)."""
    import vl_convert

    return vl_convert.vegalite_to_png(chart.to_json(), scale=scale)


def funnel_frame(rows: Sequence, stage_labels: dict[str, str]) -> pd.DataFrame:
    """One row per variant × stage: customers and their share of the variant's sent customers."""
    frame = [dict(variant=r.variant, stage=stage_labels.get(stage, stage), order=i, customers=n,
                  share=n / r.sent if r.sent else 0.0)
             for r in rows for i, (stage, n) in enumerate(r.stages().items())]
    return pd.DataFrame(frame, columns=["variant", "stage", "order", "customers", "share"])


def funnel_chart(rows: Sequence, stage_labels: dict[str, str], *, label: str = "", share_label: str = "share") -> alt.Chart:
    """Sent → delivered → clicked → redeemed → returned, one bar per variant at each stage (share of sent)."""
    frame = funnel_frame(rows, stage_labels)
    order = [stage_labels.get(s, s) for s in ("sent", "delivered", "clicked", "redeemed", "returned")]
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("stage:N", sort=order, title=None, axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("variant:N"),
        y=alt.Y("share:Q", title=share_label, axis=alt.Axis(format="%")),
        color=alt.Color("variant:N", title=label or None),
        tooltip=["variant", "stage", alt.Tooltip("customers:Q", format=","), alt.Tooltip("share:Q", format=".1%")],
    ).properties(height=260)

"""Overview (leadership): every campaign's recall rate against the natural return rate, what it
proved and what it paid; by month, by channel and by cohort, for a chosen period.

Totals count only proven effects: variants significantly better than the control after the
multiple-testing correction, or shipped by a decision. A non-significant point estimate is never
added up. Each card says the report's own verdict (the same object as ``recall report``), and its
numbers are the headline's numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, timedelta

import pandas as pd
import streamlit as st

from analysis.charts import monthly_trend, recall_vs_natural, to_png
from analysis.render import decision_text, show
from analysis.report import Comparison, Report
from analysis.verdict import SHIP, STOP_FOR_HARM
from experiments.access import Forbidden, Permission
from experiments.config import settings
from experiments.store import utcnow
from views.actions import record_download
from views.auth import acting, page_actor
from views.common import (
    ExperimentRow,
    acquisition_cost,
    channel_label,
    cohort_label,
    current_url,
    engine,
    experiment_rows,
    lifecycle_of,
    money,
    pct,
    reports_for,
    roi_text,
)
from views.i18n import lang, t

Z95 = 1.959963984540054
PERIODS = ("all", "30", "90", "365")


@dataclass(frozen=True)
class Proven:
    """A sum of proven effects with its 95% interval (lo, hi)."""

    value: float = 0.0
    lo: float = 0.0
    hi: float = 0.0


@dataclass(frozen=True)
class Campaign:
    name: str
    month: str  # launch month, Asia/Shanghai
    cohort: str
    contacted: int
    natural_rate: float
    recall_rate: float
    counted: list[str]  # the variants whose effect counts (proven or shipped)
    returns: Proven
    revenue: Proven
    cost: float  # of the counted variants
    spent: float  # of every contacted variant
    roi: float | None  # of the verdict's (or the decision's) variant
    roi_ci: tuple[float, float] | None
    headline_variant: str | None
    measured: bool = True  # False: no outcome yet, so no rate to show


NO_DATA = ("no_customers", "no_outcomes")


def return_metric(report: Report) -> str | None:
    """The campaign's return metric: ``returned`` for designed tests, the first binary metric otherwise."""
    metrics = [c.metric for c in report.comparisons if c.kind == "binary"]
    return "returned" if "returned" in metrics else (metrics[0] if metrics else None)


def _rows(report: Report) -> list[Comparison]:
    metric = return_metric(report)
    return [c for c in report.comparisons if c.metric == metric and c.segment is None]


def _sum(values: list[tuple[float, tuple[float, float]]]) -> tuple[float, float]:
    """Sum of estimates and the standard error of the sum, the estimates sharing a control: standard
    errors add up (an upper bound for positively correlated estimates)."""
    total = sum(v for v, _ in values)
    se = sum((ci[1] - ci[0]) / (2 * Z95) for _, ci in values if all(math.isfinite(x) for x in ci))
    return total, se


def campaign(report: Report, row: ExperimentRow, shipped: str | None) -> Campaign | None:
    rows = _rows(report)
    if not rows:
        return None
    counted = [c for c in rows if (c.significant and c.abs_uplift > 0) or c.variant == shipped]
    counted = [c for c in counted if math.isfinite(c.abs_uplift)]
    roi = {r.variant: r for r in report.roi}
    returns, returns_se = _sum([(c.abs_uplift * c.n, (c.abs_ci[0] * c.n, c.abs_ci[1] * c.n)) for c in counted])
    revenue, revenue_se = _sum([(roi[c.variant].incremental_revenue, roi[c.variant].incremental_revenue_ci)
                                for c in counted if c.variant in roi])
    n = sum(c.n for c in rows)
    finite = [c for c in rows if math.isfinite(c.variant_mean)]
    headline = report.verdict.variant if report.verdict and report.verdict.decision == SHIP else shipped
    chosen = roi.get(headline) if headline else None
    return Campaign(
        name=report.experiment, month=row.launched[:7], cohort=row.cohort, contacted=n,
        natural_rate=rows[0].control_mean,
        recall_rate=sum(c.variant_mean * c.n for c in finite) / sum(c.n for c in finite)
        if finite and sum(c.n for c in finite) else math.nan,
        counted=[c.variant for c in counted],
        returns=Proven(returns, returns - Z95 * returns_se, returns + Z95 * returns_se),
        revenue=Proven(revenue, revenue - Z95 * revenue_se, revenue + Z95 * revenue_se),
        cost=sum(roi[c.variant].cost for c in counted if c.variant in roi),
        spent=sum(r.cost for r in report.roi),
        roi=chosen.roi if chosen else None, roi_ci=chosen.roi_ci if chosen else None,
        headline_variant=headline,
        measured=not (report.verdict and any(r.code in NO_DATA for r in report.verdict.reasons)),
    )


def total(parts: list[Proven]) -> Proven:
    """Campaigns reach different customers: their standard errors combine in quadrature."""
    value = sum(p.value for p in parts)
    se = math.sqrt(sum(((p.hi - p.lo) / (2 * Z95)) ** 2 for p in parts))
    return Proven(value, value - Z95 * se, value + Z95 * se)


def count_text(p: Proven) -> str:
    return f"{p.value:,.0f} [{p.lo:,.0f}, {p.hi:,.0f}]"


def money_text(p: Proven) -> str:
    return f"{money(p.value)} [{money(p.lo)}, {money(p.hi)}]"


def interval_caption(p: Proven, show: Callable[[float], str] = "{:,.0f}".format) -> str:
    """The 95% interval under a card that shows the value alone."""
    return f"95%: [{show(p.lo)}, {show(p.hi)}]"


def roi_reading(c: Campaign) -> str:
    """"6.7× [2.1×, 11.0×]" when the interval is above break-even; otherwise worded as unproven (or losing)."""
    if c.roi is None or not math.isfinite(c.roi):
        return "–"
    span = (f" [{roi_text(c.roi_ci[0])}, {roi_text(c.roi_ci[1])}]"
            if c.roi_ci and all(math.isfinite(x) for x in c.roi_ci) else "")
    if not span or c.roi_ci[0] <= 0 <= c.roi_ci[1]:
        return f"{t('roi_unproven')} ({roi_text(c.roi)}{span})"
    if c.roi_ci[1] < 0:
        return f"{t('roi_negative_short')} ({roi_text(c.roi)}{span})"
    return roi_text(c.roi) + span


def headline(report: Report, c: Campaign) -> str:
    """The verdict in words and, when a variant ships, the same numbers as the card."""
    verdict = decision_text(report.verdict, lang()) if report.verdict else ""
    if report.verdict and report.verdict.decision == STOP_FOR_HARM and report.verdict.variant:
        # the harmful arm may be the one that brings most customers back: say so, not "no variant beats it"
        harmful = report.verdict.variant
        wins = any(x.variant == harmful and x.significant and x.abs_uplift > 0 for x in _rows(report))
        return f"{verdict} · {t('headline_harm_wins' if wins else 'headline_harm', variant=harmful)}"
    if not c.headline_variant or not c.counted:
        return f"{verdict} · {t('headline_none')}"
    text = t("headline_no_roi", variant=c.headline_variant, returns=count_text(c.returns))
    reading = roi_reading(c)
    return f"{verdict} · {text}" + (f"; {reading if reading.startswith(t('roi_unproven')) else 'ROI ' + reading}"
                                    if c.roi is not None else "")


def in_period(row: ExperimentRow, period: str) -> bool:
    if period == "all":
        return True
    today = utcnow().replace(tzinfo=UTC).astimezone(settings().timezone)  # the team's calendar
    return bool(row.launched) and row.launched[:10] >= (today - timedelta(days=int(period))).strftime("%Y-%m-%d")


def rollup(campaigns: list[Campaign], reports: dict[str, Report], by: str) -> pd.DataFrame:
    """Contacted customers, their return rate, the natural rate and the proven incremental returns per
    channel (of the contacted variants) or per cohort (of the campaigns)."""
    groups: dict[str, dict[str, float]] = {}
    for c in (c for c in campaigns if c.measured):
        report = reports[c.name]
        channels = {v.name: v.channel for v in report.variants}
        for comparison in _rows(report):
            channel = channels.get(comparison.variant)
            key = ((channel_label(channel) if channel else t("channel_unknown")) if by == "channel"
                   else cohort_label(c.cohort))
            g = groups.setdefault(key, dict(n=0, returned=0.0, natural=0.0, proven=0.0))
            if not (math.isfinite(comparison.variant_mean) and math.isfinite(comparison.control_mean)):
                continue
            g["n"] += comparison.n
            g["returned"] += comparison.variant_mean * comparison.n
            g["natural"] += comparison.control_mean * comparison.n
            if comparison.variant in c.counted:
                g["proven"] += comparison.abs_uplift * comparison.n
    return pd.DataFrame([
        {t("dim_channel") if by == "channel" else t("cohort"): key, t("contacted"): f"{g['n']:,.0f}",
         t("recall_rate"): pct(g["returned"] / g["n"]) if g["n"] else "–",
         t("natural_rate"): pct(g["natural"] / g["n"]) if g["n"] else "–",
         t("incremental_returns"): f"{g['proven']:,.0f}"}
        for key, g in groups.items()
    ])


def campaign_table(campaigns: list[Campaign], reports: dict[str, Report]) -> pd.DataFrame:
    """What the CSV export holds: one row per campaign, in the page's language."""
    return pd.DataFrame([
        {t("campaign"): c.name, t("month"): c.month, t("cohort"): cohort_label(c.cohort),
         t("verdict"): decision_text(reports[c.name].verdict, lang()) if reports[c.name].verdict else "",
         t("contacted"): c.contacted, t("natural_rate"): show(c.natural_rate, lambda x: round(x, 4)),
         t("recall_rate"): show(c.recall_rate, lambda x: round(x, 4)),
         t("incremental_returns"): count_text(c.returns) if c.counted else "–",
         t("incremental_revenue"): money_text(c.revenue) if c.counted else "–",
         t("roi"): roi_reading(c)}
        for c in campaigns
    ])


def _downloaded(kind: str, data: bytes | str) -> None:
    """Audit an export (the PNG is recorded by its chart specification, drawn only on the click)."""
    try:
        record_download(engine(), "overview", kind, data, actor=acting(Permission.DOWNLOAD, "overview"))
    except Forbidden:
        st.session_state["overview_message"] = t("forbidden")


def monthly(campaigns: list[Campaign]) -> list[dict]:
    months: dict[str, dict[str, float]] = {}
    for c in campaigns:
        if c.measured and c.month and math.isfinite(c.recall_rate) and math.isfinite(c.natural_rate):
            m = months.setdefault(c.month, dict(n=0, recall=0.0, natural=0.0))
            m["n"] += c.contacted
            m["recall"] += c.recall_rate * c.contacted
            m["natural"] += c.natural_rate * c.contacted
    return [dict(month=k, recall_rate=m["recall"] / m["n"], natural_rate=m["natural"] / m["n"])
            for k, m in sorted(months.items()) if m["n"]]


actor = page_actor(Permission.VIEW)
st.title(t("overview_title"))
st.caption(t("overview_caption"))
url = current_url()
rows = [r for r in experiment_rows(url) if r.status != "draft"]
if not rows:
    st.info(t("no_experiments"))
    st.markdown(t("no_experiments_help"))
    st.stop()

period = st.selectbox(t("period"), PERIODS, format_func={p: t(f"period_{p}") for p in PERIODS}.get,
                      key=f"period_{lang()}")
rows = [r for r in rows if in_period(r, period)]
if not rows:
    st.info(t("period_empty"))
    st.stop()
reports = reports_for(url, [r.name for r in rows])
campaigns = [c for c in (campaign(reports[r.name], r, lifecycle_of(url, r.name).variant) for r in rows)
             if c is not None]
proven = [c for c in campaigns if c.counted]
if message := st.session_state.pop("overview_message", None):
    st.error(message)

st.subheader(t("counted_title"))
returns, revenue = total([c.returns for c in proven]), total([c.revenue for c in proven])
cost = sum(c.cost for c in proven)
cac = acquisition_cost()
cols = st.columns(4)
# A card shows its value alone and the interval in a caption below: a metric cuts off what is wider
# than its column ("105 [69, 1…").
cols[0].metric(t("incremental_returns"), f"{returns.value:,.0f}" if proven else "–")
cols[1].metric(t("incremental_revenue"), money(revenue.value) if proven else "–")
if proven:
    cols[0].caption(interval_caption(returns))
    cols[1].caption(interval_caption(revenue, money))
cols[2].metric(t("total_cost"), money(cost) if proven else "–")
cpir = cost / returns.value if proven and returns.value > 0 else None
cols[3].metric(t("cpir"), money(cpir),
               delta=(t("cheaper_than_cac") if cpir < cac else t("dearer_than_cac")) if cpir is not None else None,
               delta_color="normal" if cpir is not None and cpir < cac else "inverse")
if cpir is not None:
    cols[3].caption(f"{t('cac')}: {money(cac)}")
variants = sum(len(_rows(reports[c.name])) for c in campaigns)
st.caption(t("counted_caption", n=sum(len(c.counted) for c in campaigns), m=variants) if proven else t("counted_none"))

chart = recall_vs_natural([dict(campaign=c.name, recall_rate=c.recall_rate, natural_rate=c.natural_rate)
                           for c in campaigns if c.measured and math.isfinite(c.recall_rate)],
                          recall_label=t("recall_rate"), natural_label=t("natural_rate"))
st.altair_chart(chart, width="stretch")
trend = monthly(campaigns)
left, right = st.columns([3, 2])
with left:
    st.subheader(t("trend_title"))
    trend_chart = monthly_trend(trend, month_label=t("month"), recall_label=t("recall_rate"),
                                natural_label=t("natural_rate"))
    st.altair_chart(trend_chart, width="stretch")
with right:
    st.subheader(t("by_channel"))
    st.dataframe(rollup(campaigns, reports, "channel"), hide_index=True, width="stretch")
    st.subheader(t("by_cohort"))
    st.dataframe(rollup(campaigns, reports, "cohort"), hide_index=True, width="stretch")

if actor.can(Permission.DOWNLOAD):  # like the report downloads: analysts and above, audited
    table = campaign_table(campaigns, reports).to_csv(index=False).encode("utf-8-sig")
    c = st.columns(2)
    c[0].download_button(t("export_csv"), table, file_name="recall-overview.csv", mime="text/csv", key="overview_csv",
                         on_click=_downloaded, args=("csv", table))
    c[1].download_button(t("export_png"), lambda: to_png(chart), file_name="recall-overview.png", mime="image/png",
                         key="overview_png", on_click=_downloaded, args=("png", chart.to_json()))

st.subheader(t("campaigns"))
for c in campaigns:
    report = reports[c.name]
    with st.container(border=True):
        st.markdown(f"**{c.name}** · {cohort_label(c.cohort)} · {headline(report, c)}")
        m = st.columns(5)
        m[0].metric(t("natural_rate"), pct(c.natural_rate) if c.measured else "–")
        gap = c.recall_rate - c.natural_rate
        proven_gain = bool(c.counted)
        m[1].metric(t("recall_rate"), pct(c.recall_rate) if c.measured else "–",
                    delta=f"{gap * 100:+.2f} {t('pt')}" + ("" if proven_gain else f" ({t('unproven')})")
                    if c.measured and math.isfinite(gap) else None,
                    delta_color="normal" if proven_gain else "off", delta_arrow="auto" if proven_gain else "off")
        m[2].metric(t("incremental_returns"), f"{c.returns.value:,.0f}" if c.counted else "–",
                    help=t("counted_variant", variant=", ".join(c.counted)) if c.counted else t("not_counted"))
        if c.counted:
            m[2].caption(interval_caption(c.returns))
        reading = roi_reading(c)
        flag = next((w for w in (t("roi_unproven"), t("roi_negative_short")) if reading.startswith(w)), None)
        # an unproven ROI is not shown as a number to act on: the number and its interval are in the help
        m[3].metric(t("roi"), (t("unproven") if flag == t("roi_unproven") else flag) if flag else roi_text(c.roi),
                    help=reading)
        m[4].metric(t("cpir"), money(c.cost / c.returns.value) if c.counted and c.returns.value > 0 else "–")

"""Results (analysts): uplift over the natural rate with intervals, significance, guardrails, ROI,
segments, recall quality and monitoring; downloads of the report."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from analysis.charts import monitoring_path, uplift_forest, variant_rates
from analysis.quality import verdict
from analysis.render import LABELS, fmt_ci, fmt_p, fmt_value, render_markdown
from analysis.report import Comparison, Report
from experiments.access import Forbidden, Permission
from views.actions import record_download
from views.auth import acting, page_actor
from views.common import currency, current_url, engine, daily_looks_for, labels, experiment_rows, metric_name, money, pct, report_for, roi_text
from views.factorial import show_factorial
from views.i18n import lang, t


def comparison_table(rows: list[Comparison], *, with_segment: bool = False) -> pd.DataFrame:
    return pd.DataFrame([
        {
            **({t("segment"): c.segment} if with_segment else {}),
            t("variant"): c.variant,
            t("n"): f"{c.n:,}",
            t("control_mean"): fmt_value(c.control_mean, c.kind),
            t("variant_mean"): fmt_value(c.variant_mean, c.kind),
            t("abs_uplift"): f"{fmt_value(c.abs_uplift, c.kind, signed=True)} {fmt_ci(c.abs_ci, c.kind)}",
            t("rel_uplift"): f"{fmt_value(c.rel_uplift, 'binary', signed=True)} {fmt_ci(c.rel_ci, 'binary')}",
            t("p"): fmt_p(c.p_value),
            t("p_adj"): fmt_p(c.p_value_adjusted),
            t("significant"): "✓" if c.significant else "",
        }
        for c in rows
    ])


def csv_of(report: Report) -> bytes:
    frame = pd.DataFrame([
        dict(variant=c.variant, metric=c.metric, segment=c.segment or "", n=c.n, control_n=c.control_n,
             control_mean=c.control_mean, variant_mean=c.variant_mean, abs_uplift=c.abs_uplift,
             abs_ci_lo=c.abs_ci[0], abs_ci_hi=c.abs_ci[1], rel_uplift=c.rel_uplift, rel_ci_lo=c.rel_ci[0],
             rel_ci_hi=c.rel_ci[1], p_value=c.p_value, p_value_adjusted=c.p_value_adjusted, significant=c.significant,
             method=c.method)
        for c in report.comparisons + report.segments
    ])
    return frame.to_csv(index=False).encode("utf-8-sig")  # BOM: Excel opens Chinese text correctly


def _downloaded(name: str, kind: str, data: bytes | str) -> None:
    try:
        record_download(engine(), name, kind, data, actor=acting(Permission.DOWNLOAD, name))
    except Forbidden:
        st.session_state["results_message"] = t("forbidden")


actor = page_actor(Permission.VIEW)
st.title(t("results_title"))
url = current_url()
status = {r.name: r.status for r in experiment_rows(url) if r.status != "draft"}
names = list(status)
if not names:
    st.info(t("no_experiments"))
    st.markdown(t("no_experiments_help"))
    st.stop()
default = st.session_state.get("experiment")
name = st.selectbox(t("experiment"), names, index=names.index(default) if default in names else 0, key="results_exp")
st.session_state["experiment"] = name
report = report_for(url, name, sequential=status[name] == "running")
if report.hypothesis:
    st.caption(report.hypothesis)

srm = report.srm
if srm.mismatch:
    st.error(t("srm_bad", p=fmt_p(srm.p_value)))
else:
    st.success(t("srm_ok", p=fmt_p(srm.p_value)))

metrics = list(dict.fromkeys(c.metric for c in report.comparisons))
if not metrics:
    st.info(t("no_comparisons"))
    st.stop()
metric = st.selectbox(t("metric"), metrics, index=metrics.index(report.primary_metric)
                      if report.primary_metric in metrics else 0, format_func=labels(metrics, metric_name).get, key="results_metric")
rows = [c for c in report.comparisons if c.metric == metric]
best = max(rows, key=lambda c: c.abs_uplift if math.isfinite(c.abs_uplift) else -math.inf)
cols = st.columns(3)
cols[0].metric(t("natural_metric", metric=metric_name(metric)), fmt_value(rows[0].control_mean, rows[0].kind))
cols[1].metric(t("best_variant"), best.variant, delta=fmt_value(best.abs_uplift, best.kind, signed=True))
cols[2].metric(t("p_adj"), fmt_p(best.p_value_adjusted))

left, right = st.columns(2)
with left:
    st.subheader(t("rate_chart"))
    st.altair_chart(variant_rates(report, metric, label=metric_name(metric), natural_label=t("natural_rate")),
                    width="stretch")
with right:
    st.subheader(t("forest_chart"))
    st.altair_chart(uplift_forest(report, metric, label=metric_name(metric)), width="stretch")

st.subheader(t("comparisons"))
st.dataframe(comparison_table(rows), hide_index=True, width="stretch")
st.caption(f"{t('method')}: {rows[0].method} · {report.correction}")
show_factorial(report, metric=metric)

if report.guardrails:
    st.subheader(t("guardrails"))
    for g in report.guardrails:
        if g.breached:
            st.warning(t("guardrail_breached", variant=g.variant, metric=metric_name(g.metric)))
    st.dataframe(pd.DataFrame([
        {t("variant"): g.variant, t("metric"): metric_name(g.metric), t("control_mean"): pct(g.control_rate),
         t("variant_mean"): pct(g.variant_rate), t("increase"): f"{g.difference * 100:+.2f} pt (≤ {g.margin * 100:.2f} pt)",
         t("p"): fmt_p(g.p_value), "⚠️": "⚠️" if g.breached else ""}
        for g in report.guardrails
    ]), hide_index=True, width="stretch")

if report.roi:
    st.subheader(t("roi_title"))
    st.dataframe(pd.DataFrame([
        {t("variant"): r.variant, t("contacted"): f"{r.contacted:,}",
         t("incremental_returns"): f"{r.incremental_returns:,.0f} [{r.incremental_returns_ci[0]:,.0f}, "
                                   f"{r.incremental_returns_ci[1]:,.0f}]",
         t("incremental_revenue"): f"{money(r.incremental_revenue)} [{money(r.incremental_revenue_ci[0])}, "
                                   f"{money(r.incremental_revenue_ci[1])}]",
         t("cost"): money(r.cost),
         t("roi"): roi_text(r.roi) + (f" [{roi_text(r.roi_ci[0])}, {roi_text(r.roi_ci[1])}]" if r.roi_ci else ""),
         t("cpir"): money(r.cost_per_incremental_return)}
        for r in report.roi
    ]), hide_index=True, width="stretch")

if report.sequential:
    st.subheader(t("sequential_title"))
    st.caption(t("sequential_caption"))
    kind = report.metric_kind(report.sequential[0].metric)
    looks = daily_looks_for(url, name, report.sequential[0].metric)
    if looks:
        st.altair_chart(monitoring_path(looks, label=metric_name(report.sequential[0].metric), day_label=t("day")),
                        width="stretch")
    st.dataframe(pd.DataFrame([
        {t("variant"): q.variant, t("abs_uplift"): f"{fmt_value(q.abs_uplift, kind, signed=True)} {fmt_ci(q.ci, kind)}",
         t("p"): fmt_p(q.p_value_always_valid), "": t("may_act") if q.may_act else t("keep_running")}
        for q in report.sequential
    ]), hide_index=True, width="stretch")

if report.segments:
    st.subheader(t("segments_title"))
    dims = sorted({c.segment.split("=", 1)[0] for c in report.segments})
    dim = st.selectbox(t("dimension"), dims, key="results_dim")
    st.altair_chart(uplift_forest(report, report.segments[0].metric, segment=f"{dim}=",
                                  label=metric_name(report.segments[0].metric)), width="stretch")
    st.dataframe(comparison_table([c for c in report.segments if c.segment.startswith(f"{dim}=")], with_segment=True),
                 hide_index=True, width="stretch")

if report.quality:
    st.subheader(t("quality_title"))
    st.dataframe(pd.DataFrame([
        {t("variant"): q.variant, t("metric"): LABELS[lang()][q.measure], t("n"): f"{q.n:,}",
         t("control_mean"): fmt_value(q.control_mean, q.kind), t("variant_mean"): fmt_value(q.variant_mean, q.kind),
         t("abs_uplift"): f"{fmt_value(q.abs_uplift, q.kind, signed=True)} {fmt_ci(q.abs_ci, q.kind)}",
         t("p"): fmt_p(q.p_value)}
        for q in report.quality if not math.isnan(q.control_mean) or q.n
    ]), hide_index=True, width="stretch")
    st.caption(" · ".join(f"{v}: {LABELS[lang()][verdict(report.quality, v)]}"
                          for v in dict.fromkeys(q.variant for q in report.quality)))

if actor.can(Permission.DOWNLOAD):  # viewers read; analysts and above take the report away (audited)
    downloads = [("download_md", render_markdown(report, lang=lang(), currency=currency()), "md", "text/markdown"),
                 ("download_csv", csv_of(report), "csv", "text/csv"),
                 ("download_json", report.to_json(), "json", "application/json")]
    for column, (label, data, kind, mime) in zip(st.columns(3), downloads, strict=True):
        column.download_button(t(label), data, file_name=f"{name}.{kind}", mime=mime, key=f"download_{kind}",
                               on_click=_downloaded, args=(name, kind, data))
if message := st.session_state.pop("results_message", None):
    st.error(message)

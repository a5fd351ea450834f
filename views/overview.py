"""Overview (leadership): every campaign's recall rate against the natural return rate, and what it paid."""

from __future__ import annotations

import streamlit as st

from analysis.charts import recall_vs_natural
from analysis.report import Report
from experiments.access import Permission
from views.auth import page_actor
from views.common import (
    acquisition_cost,
    current_url,
    experiment_rows,
    money,
    pct,
    reports_for,
    roi_text,
)
from views.i18n import t


def return_metric(report: Report) -> str | None:
    """The campaign's return metric: ``returned`` for designed tests, the first binary metric otherwise."""
    metrics = [c.metric for c in report.comparisons if c.kind == "binary"]
    return "returned" if "returned" in metrics else (metrics[0] if metrics else None)


def campaign_summary(report: Report) -> dict | None:
    metric = return_metric(report)
    rows = [c for c in report.comparisons if c.metric == metric]
    if not rows:
        return None
    n = sum(c.n for c in rows)
    cost = sum(r.cost for r in report.roi)
    incremental_revenue = sum(r.incremental_revenue for r in report.roi)
    incremental_returns = sum((c.variant_mean - c.control_mean) * c.n for c in rows)
    return dict(
        campaign=report.experiment,
        natural_rate=rows[0].control_mean,
        recall_rate=sum(c.variant_mean * c.n for c in rows) / n if n else float("nan"),
        incremental_returns=incremental_returns,
        incremental_revenue=incremental_revenue if report.roi else None,
        cost=cost if report.roi else None,
        roi=(incremental_revenue - cost) / cost if report.roi and cost > 0 else None,
        cpir=cost / incremental_returns if report.roi and incremental_returns > 0 else None,
    )


def headline(report: Report) -> str:
    """The best significant variant by incremental returns, in one sentence."""
    metric = return_metric(report)
    winners = [c for c in report.comparisons if c.metric == metric and c.significant and c.abs_uplift > 0]
    if not winners:
        return t("headline_none")
    best = max(winners, key=lambda c: c.abs_uplift * c.n)
    roi = next((r for r in report.roi if r.variant == best.variant), None)
    returns = f"{best.abs_uplift * best.n:,.0f}"
    if roi is None or roi.roi is None or roi.roi_ci is None:
        return t("headline_no_roi", variant=best.variant, returns=returns)
    return t("headline", variant=best.variant, returns=returns, roi=roi_text(roi.roi),
             lo=roi_text(roi.roi_ci[0]), hi=roi_text(roi.roi_ci[1]))


page_actor(Permission.VIEW)
st.title(t("overview_title"))
st.caption(t("overview_caption"))
url = current_url()
rows = [r for r in experiment_rows(url) if r.status != "draft"]
if not rows:
    st.info(t("no_experiments"))
    st.markdown(t("no_experiments_help"))
    st.stop()

reports = reports_for(url, [r.name for r in rows])
summaries = [s for s in (campaign_summary(rep) for rep in reports.values()) if s is not None]

total_returns = sum(s["incremental_returns"] for s in summaries)
costed = [s for s in summaries if s["cost"] is not None]
total_cost = sum(s["cost"] for s in costed)
total_revenue = sum(s["incremental_revenue"] for s in costed)
cac = acquisition_cost()
cols = st.columns(4)
cols[0].metric(t("incremental_returns"), f"{total_returns:,.0f}")
cols[1].metric(t("incremental_revenue"), money(total_revenue))
cols[2].metric(t("total_cost"), money(total_cost))
cpir = total_cost / total_returns if total_returns > 0 else None
cols[3].metric(t("cpir"), money(cpir),
               delta=(t("cheaper_than_cac") if cpir is not None and cpir < cac else t("dearer_than_cac"))
               + f" ({t('cac')} {money(cac)})", delta_color="normal" if cpir is not None and cpir < cac else "inverse")

st.altair_chart(recall_vs_natural(summaries, recall_label=t("recall_rate"), natural_label=t("natural_rate")),
                width="stretch")

for s in summaries:
    with st.container(border=True):
        st.markdown(f"**{s['campaign']}** · {headline(reports[s['campaign']])}")
        c = st.columns(5)
        c[0].metric(t("natural_rate"), pct(s["natural_rate"]))
        c[1].metric(t("recall_rate"), pct(s["recall_rate"]),
                    delta=f"{(s['recall_rate'] - s['natural_rate']) * 100:+.2f} pt")
        c[2].metric(t("incremental_returns"), f"{s['incremental_returns']:,.0f}")
        c[3].metric(t("roi"), roi_text(s["roi"]))
        c[4].metric(t("cpir"), money(s["cpir"]))

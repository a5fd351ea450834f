"""Experiments: every test with its status, cohort, dates and primary result; filter, search, open."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analysis.render import decision_text, fmt_value
from analysis.report import Report
from experiments.access import Permission
from views.auth import page_actor
from views.common import cohort_label, current_url, experiment_rows, labels, metric_name, reports_for, status_label
from views.i18n import lang, t

STATUSES = ["draft", "running", "stopped", "decided", "rolled_out"]


def primary_result(report: Report | None, primary: str) -> str:
    """The report's verdict and, when a variant is significantly better after the correction, its
    uplift marked ✓ (never a point estimate that is not proven)."""
    if report is None or report.verdict is None:
        return "–"
    verdict = decision_text(report.verdict, lang())
    proven = [c for c in report.comparisons if c.metric == primary and c.segment is None and c.significant
              and c.abs_uplift > 0]
    if not proven:
        return verdict
    best = max(proven, key=lambda c: c.abs_uplift)
    uplift = (f"{best.abs_uplift * 100:+.2f} {t('pt')}" if best.kind == "binary"
              else fmt_value(best.abs_uplift, best.kind, signed=True))
    return f"{verdict} · {best.variant}: {uplift} ✓"


page_actor(Permission.VIEW)
st.title(t("experiments_title"))
url = current_url()
rows = experiment_rows(url)
if not rows:
    st.info(t("no_experiments"))
    st.markdown(t("no_experiments_help"))
    st.stop()

left, right = st.columns([2, 3])
statuses = left.multiselect(t("filter_status"), STATUSES, default=STATUSES, format_func=labels(STATUSES, status_label).get,
                            key="status_filter")
query = right.text_input(t("search"), key="search").strip().lower()
shown = [r for r in rows if r.status in statuses and (not query or query in r.name.lower()
                                                       or query in r.hypothesis.lower())]
st.caption(t("shown", n=len(shown), total=len(rows)))
reports = reports_for(url, [r.name for r in shown if r.status != "draft"])
table = pd.DataFrame([
    {
        t("name"): r.name,
        t("status"): status_label(r.status),
        t("source"): t(f"source_{r.source}"),
        t("cohort"): cohort_label(r.cohort),
        t("variants"): r.variants,
        t("launched"): r.launched,
        t("primary_metric"): metric_name(r.primary_metric),
        t("primary_result"): primary_result(reports.get(r.name), r.primary_metric),
    }
    for r in shown
])
st.dataframe(table, hide_index=True, width="stretch")

if shown:
    names = [r.name for r in shown]
    choice = st.selectbox(t("experiment"), names, key="open_experiment")
    if st.button(t("open_results"), type="primary"):
        st.session_state["experiment"] = choice
        st.switch_page("views/results.py", query_params={"experiment": choice, "lang": lang()})

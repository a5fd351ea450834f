"""Targeting (analysts and growth leads): whom the message changes, learned from the holdout, and what
contacting the top x% or the cost-optimal cut is worth. Fitting runs only on a click; the result is
kept in a process-wide cache (nothing is written to the database while the page renders)."""

from __future__ import annotations

import io
import math

import altair as alt
import pandas as pd
import streamlit as st

from analysis.targeting import TargetingError
from experiments.access import Permission
from experiments.audit import Action, record_now
from experiments.db import session_scope
from experiments.store import get_experiment
from experiments.targeting import ALL_VARIANTS, Targeting, learn
from views.auth import acting, page_actor
from views.common import currency, current_url, data_version_for, engine_for, experiment_rows, money, roi_text
from views.i18n import lang, t


@st.cache_resource(show_spinner=False)
def _learned() -> dict[tuple, Targeting]:
    """Learned targetings of this app process, by (database, experiment, variant, metric, data version)."""
    return {}


@st.cache_data(show_spinner=False)
def _variants(url: str, name: str) -> tuple[list[str], list[str]]:
    with session_scope(engine_for(url)) as session:
        experiment = get_experiment(session, name)
        metrics = ["returned", "revenue"] if experiment.source.value == "designed" else [
            m.name for m in experiment.metrics if m.role.value == "metric"]
        return [v.name for v in experiment.variants if not v.is_control], metrics


def _fit(url: str, key: tuple, name: str, variant: str, metric: str) -> None:
    with session_scope(engine_for(url)) as session:
        _learned()[key] = learn(session.connection(), get_experiment(session, name), metric=metric, variant=variant)


def _record_download(url: str, name: str, rows: int) -> None:
    record_now(engine_for(url), acting(Permission.DOWNLOAD, name), Action.DOWNLOAD, name, what="targeting scores",
               rows=rows)


def qini_chart(learned: Targeting) -> alt.Chart:
    e = learned.result.evaluation
    rows = [{"share": s, "value": v, "ranking": t("targeting_by_uplift")} for s, v in e.curve]
    rows += [{"share": s, "value": v, "ranking": t("targeting_by_response")} for s, v in e.response_curve]
    end = e.curve[-1][1]
    rows += [{"share": s, "value": s * end, "ranking": t("targeting_random")} for s in (0.0, 1.0)]
    return alt.Chart(pd.DataFrame(rows)).mark_line().encode(
        x=alt.X("share:Q", title=t("targeting_share"), axis=alt.Axis(format="%")),
        y=alt.Y("value:Q", title=t("targeting_incremental")),
        color=alt.Color("ranking:N", title=t("targeting_ranking")),
        strokeDash=alt.StrokeDash("ranking:N", legend=None),
    )


def scores_csv(learned: Targeting) -> bytes:
    frame = pd.DataFrame({"customer_id": learned.customer_ids, "uplift": learned.uplift.round(6)})
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode("utf-8")


def _ci(ci: tuple[float, float] | None, fmt) -> str:  # noqa: ANN001 - a formatter
    return f" [{fmt(ci[0])}, {fmt(ci[1])}]" if ci and all(math.isfinite(x) for x in ci) else ""


st.title(t("targeting_title"))
st.caption(t("targeting_caption"))
actor = page_actor(Permission.DOWNLOAD)
url = current_url()
names = [r.name for r in experiment_rows(url) if r.status != "draft"]
if not names:
    st.info(t("no_experiments"))
    st.stop()
default = st.session_state.get("experiment")
name = st.selectbox(t("experiment"), names, index=names.index(default) if default in names else 0, key="targeting_exp")
variants, metrics = _variants(url, name)
c1, c2 = st.columns(2)
choices = {ALL_VARIANTS: t("targeting_all_variants"), **{v: v for v in variants}}
variant = c1.selectbox(t("targeting_variant"), list(choices), key="targeting_variant", format_func=choices.get)
metric = c2.selectbox(t("metric"), metrics, key="targeting_metric")
key = (url, name, variant, metric, data_version_for(url))

if st.button(t("targeting_fit"), type="primary", key="targeting_fit"):
    with st.spinner(t("targeting_fitting")):
        try:
            _fit(url, key, name, variant, metric)
        except TargetingError as exc:
            st.error(t("targeting_error", error=str(exc)))
learned = _learned().get(key)
if learned is None:
    st.info(t("targeting_not_fitted"))
    st.stop()

e = learned.result.evaluation
o = e.cost_optimal
cols = st.columns(4)
cols[0].metric(t("targeting_model"), e.estimator)
cols[1].metric(t("targeting_qini"), f"{e.qini:.3f}", help=_ci(e.qini_ci, lambda x: f"{x:.3f}"))
cols[2].metric(t("targeting_response_qini"), f"{e.response.qini:.3f}")
cols[3].metric(t("targeting_cutoff_roi"), roi_text(o.roi), help=_ci(o.roi_ci, roi_text))
st.success(t("targeting_cutoff_text", unit=money(e.unit_cost) if e.unit_cost >= 1 else f"{currency()}{e.unit_cost:.2f}",
             share=f"{o.share:.0%}", n=f"{o.contacted:,}",
             returns=f"{o.incremental_returns:,.0f}{_ci(o.ci, lambda x: f'{x:,.0f}')}", roi=roi_text(o.roi)))

st.subheader(t("targeting_curve"))
st.caption(t("targeting_curve_help"))
st.altair_chart(qini_chart(learned), width="stretch")

st.subheader(t("targeting_policy"))
st.dataframe(pd.DataFrame([
    {t("targeting_share"): f"{p.share:.0%}", t("contacted"): f"{p.contacted:,}",
     t("incremental_returns"): f"{p.incremental_returns:,.0f}{_ci(p.ci, lambda x: f'{x:,.0f}')}",
     t("incremental_revenue"): money(p.incremental_revenue) + _ci(p.revenue_ci, money),
     t("cost"): money(p.cost), t("roi"): roi_text(p.roi) + _ci(p.roi_ci, roi_text)}
    for p in e.policy
]), hide_index=True, width="stretch")

st.subheader(t("targeting_features"))
importance = pd.DataFrame([{t("targeting_feature"): i.feature, t("targeting_importance"): i.qini_drop}
                           for i in e.importance])
st.altair_chart(alt.Chart(importance).mark_bar().encode(
    x=alt.X(f"{t('targeting_importance')}:Q"), y=alt.Y(f"{t('targeting_feature')}:N", sort="-x")), width="stretch")
if e.notes:
    st.caption(f"{t('targeting_notes')}: " + "; ".join(e.notes))

st.download_button(t("targeting_download"), scores_csv(learned), file_name=f"{name}-uplift-{lang()}.csv",
                   mime="text/csv", on_click=_record_download, args=(url, name, len(learned.customer_ids)))

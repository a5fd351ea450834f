"""The Results page's section for factorial designs: main effects, interactions, ROI per level and
the recommendation (see analysis.factorial). Shown only when the report has a factorial design."""

from __future__ import annotations

import itertools

import pandas as pd
import streamlit as st

from analysis.charts import interaction_lines, main_effects
from analysis.render import POINTS, fmt_difference, fmt_difference_ci, fmt_p, level_label, recommendation_lines
from analysis.report import Report
from views.common import currency, metric_name, money, roi_text
from views.i18n import lang, t


def show_factorial(report: Report, *, metric: str) -> None:
    """Main-effects chart (one panel per factor), an interaction chart for a chosen pair of factors,
    the effect tables of ``metric`` (the primary metric when ``metric`` has no effects, e.g. a ratio)
    and the recommendation in words."""
    design = report.factorial
    if design is None or not report.factors:
        return
    if not any(e.metric == metric for e in report.factors):
        metric = report.primary_metric
    st.subheader(t("factorial_title"))
    st.caption(t("factorial_caption", factors="; ".join(f"{f}: {', '.join(v)}" for f, v in design.factors.items())))
    if design.defining_relation:
        st.info(t("factorial_fraction", fraction=design.fraction, relation=", ".join(design.defining_relation),
                  aliases="; ".join(f"{k} = {' = '.join(v)}" for k, v in design.aliases.items())))

    st.markdown(f"**{t('factorial_recommendation')}**")
    st.markdown("\n".join(f"- {line}" for line in recommendation_lines(report, lang(), currency())))

    label = metric_name(metric)
    st.markdown(f"**{t('factorial_main_chart')}**")
    st.altair_chart(main_effects(report, metric, label=label, natural_label=t("natural_rate"),
                                 factor_label=t("factorial_factor"), effect_label=t("factorial_effect_vs_reference"),
                                 points=POINTS[lang()], level_label=t("factorial_level"), p_label=t("p_adj")))
    pairs = [f"{a} × {b}" for a, b in itertools.permutations(design.factors, 2)]
    if pairs:
        choice = st.selectbox(t("factorial_pair"), pairs, key="factorial_pair")
        across, lines = choice.split(" × ")
        st.altair_chart(interaction_lines(report, metric, across, lines, label=label), width="stretch")
        st.caption(t("factorial_interaction_help"))

    kind = report.metric_kind(metric)

    def effect(x: float, ci: tuple[float, float]) -> str:  # a difference: rates in pt / 个百分点, never %
        return f"{fmt_difference(x, kind, lang())} {fmt_difference_ci(ci, kind)}"

    st.markdown(f"**{t('factorial_mains')}**")
    st.dataframe(pd.DataFrame([
        {t("factorial_factor"): e.factor, t("factorial_level"): f"{e.level} vs {e.reference}",
         t("factorial_effect"): effect(e.abs_effect, e.abs_ci),
         t("p"): fmt_p(e.p_value), t("p_adj"): fmt_p(e.p_value_adjusted), t("significant"): "✓" if e.significant else "",
         **({t("factorial_aliases"): ", ".join(e.aliases)} if design.aliases else {})}
        for e in report.factors if e.metric == metric
    ]), hide_index=True, width="stretch")
    rows = [i for i in report.interactions if i.metric == metric]
    if rows:
        st.markdown(f"**{t('factorial_interactions')}**")
        st.dataframe(pd.DataFrame([
            {t("factorial_factor"): " × ".join(i.factors),
             t("factorial_level"): f"{i.levels[0]} vs {i.references[0]} × {i.levels[1]} vs {i.references[1]}",
             t("factorial_effect"): effect(i.abs_effect, i.abs_ci),
             t("p"): fmt_p(i.p_value), t("p_adj"): fmt_p(i.p_value_adjusted), t("significant"): "✓" if i.significant else ""}
            for i in rows
        ]), hide_index=True, width="stretch")
    if report.factor_roi:
        st.markdown(f"**{t('factorial_roi')}**")
        st.dataframe(pd.DataFrame([
            {t("factorial_factor"): r.factor, t("factorial_level"): level_label(r.factor, r.level, currency()),
             t("factorial_inc_rate"): f"{fmt_difference(r.incremental_return_rate, 'binary', lang())} "
                                       f"{fmt_difference_ci(r.incremental_return_rate_ci, 'binary')}",
             t("factorial_cost_pc"): money(r.cost_per_customer), t("roi"): roi_text(r.roi),
             t("factorial_per_extra"): "–" if r.level == r.reference else money(r.cost_per_extra_return)}
            for r in report.factor_roi
        ]), hide_index=True, width="stretch")

"""Results (analysts): the verdict first, then a short summary and one tab per question: effects,
day by day, guardrails and ROI, segments, recall quality, the Bayesian and CUPED views, notes, and
the lifecycle actions (stop, decide, roll out) for operators. The experiment and the language are in
the URL (``?experiment=NAME&lang=en``), so a link opens the same view. Drawing writes nothing.
"""

from __future__ import annotations

import math
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from analysis.charts import monitoring_path, uplift_forest, variant_rates
from analysis.corrections import CORRECTIONS
from analysis.quality import verdict as quality_verdict
from analysis.render import (
    LABELS,
    decision_text,
    fmt_ci,
    fmt_p,
    fmt_value,
    reason_text,
    render_markdown,
    show,
)
from analysis.report import Comparison, Report
from analysis.verdict import KEEP_RUNNING, NO_EFFECT, SHIP, STOP_FOR_HARM
from experiments import lifecycle
from experiments.access import Forbidden, Permission
from experiments.notes import add_note
from views.actions import record_download
from views.auth import acting, page_actor
from views.common import (
    assigned_customers,
    currency,
    current_url,
    daily_looks_for,
    data_version_for,
    dimension_label,
    engine,
    experiment_rows,
    labels,
    lifecycle_of,
    mask_phone,
    metric_name,
    money,
    notes_for,
    pct,
    report_for,
    roi_text,
    segment_label,
    status_label,
)
from views.factorial import show_factorial
from views.i18n import lang, t

VERDICT_BOX = {SHIP: st.success, STOP_FOR_HARM: st.error, NO_EFFECT: st.warning, KEEP_RUNNING: st.info}


def uplift_text(x: float, kind: str) -> str:
    """An absolute uplift: percentage points for a rate ("+1.23 pt"), the metric's unit otherwise."""
    if kind == "binary":
        return show(x, lambda v: f"{v * 100:+.2f} {t('pt')}")
    return fmt_value(x, kind, signed=True)


def interval_text(ci: tuple[float, float] | None, kind: str) -> str:
    """"[lo, hi]" (points for a rate); nothing when an end is missing or unbounded (no data yet)."""
    if ci is None or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in ci):
        return ""
    if kind == "binary":
        return f"[{ci[0] * 100:+.2f}, {ci[1] * 100:+.2f}]"
    return fmt_ci(ci, kind)


def comparison_table(rows: list[Comparison], *, with_segment: bool = False) -> pd.DataFrame:
    return pd.DataFrame([
        {
            **({t("segment"): segment_label(c.segment or "")} if with_segment else {}),
            t("variant"): c.variant,
            t("n"): f"{c.n:,}",
            t("control_mean"): fmt_value(c.control_mean, c.kind),
            t("variant_mean"): fmt_value(c.variant_mean, c.kind),
            t("abs_uplift"): f"{uplift_text(c.abs_uplift, c.kind)} {interval_text(c.abs_ci, c.kind)}".strip(),
            t("rel_uplift"): f"{fmt_value(c.rel_uplift, 'binary', signed=True)} {fmt_ci(c.rel_ci, 'binary')}".strip(),
            t("p"): fmt_p(c.p_value),
            t("p_adj"): fmt_p(c.p_value_adjusted),
            t("adj_interval"): interval_text(c.abs_ci_adjusted, c.kind) or "–",
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


def legend() -> dict[str, str]:
    return {"control": t("legend_control"), "significant": t("legend_significant"),
            "not significant": t("legend_not_significant")}


# --------------------------------------------------------------------------- actions (on a click only)


def _downloaded(name: str, kind: str, data: bytes | str) -> None:
    try:
        record_download(engine(), name, kind, data, actor=acting(Permission.DOWNLOAD, name))
    except Forbidden:
        st.session_state["results_message"] = t("forbidden")


def _add_note(name: str) -> None:
    text = st.session_state.get("note_text", "")
    try:
        add_note(engine(), name, text, actor=acting(Permission.NOTE, name))
    except Forbidden:
        st.session_state["results_message"] = t("forbidden")
        return
    except ValueError:
        st.session_state["results_message"] = t("note_empty")
        return
    st.session_state["note_text"] = ""
    st.session_state["results_done"] = t("note_added")
    notes_for.clear()


def _ask(action: str) -> None:
    st.session_state["results_confirm"] = action


def _transition(name: str, action: str) -> None:
    """Stop, decide or roll out ``name`` as the signed-in user (checked and audited by experiments.lifecycle)."""
    st.session_state.pop("results_confirm", None)
    try:
        if action == "stop":
            lifecycle.stop(engine(), name, actor=acting(Permission.DECIDE, name),
                           reason=st.session_state.get("stop_reason", ""))
        elif action == "decide":
            choice = st.session_state.get("decide_choice")
            lifecycle.decide(engine(), name, actor=acting(Permission.DECIDE, name),
                             variant=None if choice == NO_GO else choice,
                             reason=st.session_state.get("decide_reason", ""))
        else:
            lifecycle.roll_out(engine(), name, actor=acting(Permission.LAUNCH, name))
    except Forbidden:
        st.session_state["results_message"] = t("forbidden")
        return
    except ValueError as exc:  # WrongState, a missing reason, an unknown variant: the message says which
        st.session_state["results_message"] = str(exc)
        return
    st.session_state["results_done"] = t("lifecycle_done", action=ACTION_LABELS[action]())
    for cached in (experiment_rows, data_version_for, lifecycle_of):
        cached.clear()


NO_GO = "__no_go__"
ACTION_LABELS = {"stop": lambda: t("stop_experiment"), "decide": lambda: t("decide_experiment"),
                 "roll_out": lambda: t("roll_out")}


# --------------------------------------------------------------------------- sections


def verdict_box(report: Report) -> None:
    """The decision, its variant, its reasons in the page's language, and what is still needed."""
    v = report.verdict
    if v is None:
        return
    with st.container(border=True):
        VERDICT_BOX.get(v.decision, st.info)(t("verdict_title", decision=decision_text(v, lang())))
        st.markdown("\n".join(f"- {reason_text(r, lang())}" for r in v.reasons))
        cols = st.columns(3)
        cols[0].metric(t("assigned"), f"{sum(x.n for x in report.variants):,}")
        if v.customers_needed:
            cols[1].metric(t("customers_needed"), f"{v.customers_needed:,}")
        if v.days_needed:
            cols[2].metric(t("days_needed"), f"{v.days_needed:,}")


def summary(report: Report, metric: str, rows: list[Comparison]) -> None:
    """Natural rate, the proven best variant (only with adjusted significance) and its adjusted p."""
    kind = rows[0].kind
    proven = [c for c in rows if c.significant and c.abs_uplift > 0]
    cols = st.columns(3)
    cols[0].metric(t("natural_metric", metric=metric_name(metric)), fmt_value(rows[0].control_mean, kind))
    if proven:
        best = max(proven, key=lambda c: c.abs_uplift)
        cols[1].metric(t("best_variant"), best.variant, delta=uplift_text(best.abs_uplift, kind))
    else:
        finite = [c for c in rows if math.isfinite(c.abs_uplift)]
        best = max(finite, key=lambda c: c.abs_uplift) if finite else None
        cols[1].metric(t("best_variant"), t("no_best_variant"))
        if best is not None:
            cols[1].caption(t("leader_unproven", variant=best.variant) + f": {uplift_text(best.abs_uplift, kind)}")
    cols[2].metric(t("p_adj"), fmt_p(best.p_value_adjusted) if best is not None else "–")


def effects(report: Report, metric: str, rows: list[Comparison]) -> None:
    left, right = st.columns(2)
    with left:
        st.subheader(t("rate_chart"))
        st.altair_chart(variant_rates(report, metric, label=metric_name(metric), natural_label=t("natural_rate"),
                                      legend=legend()), width="stretch")
    with right:
        st.subheader(t("forest_chart"))
        st.altair_chart(uplift_forest(report, metric, label=metric_name(metric), points=t("pt"), legend=legend()),
                        width="stretch")
    st.subheader(t("comparisons"))
    st.dataframe(comparison_table(rows), hide_index=True, width="stretch")
    st.caption(f"{t('method')}: {rows[0].method} · {report.correction}")
    show_factorial(report, metric=metric)


def day_by_day(report: Report, url: str, name: str, metric: str) -> None:
    kind = report.metric_kind(metric)
    looks = daily_looks_for(url, name, metric) if kind != "ratio" else []
    st.caption(t("daily_caption"))
    if looks:
        st.altair_chart(monitoring_path(looks, label=metric_name(metric), day_label=t("day"),
                                        binary=kind == "binary", points=t("pt")))
    else:
        st.info(t("daily_none"))
    if report.sequential:
        st.subheader(t("sequential_title"))
        st.caption(t("sequential_caption"))
        seq_kind = report.metric_kind(report.sequential[0].metric)
        st.dataframe(pd.DataFrame([
            {t("variant"): q.variant,
             t("abs_uplift"): f"{uplift_text(q.abs_uplift, seq_kind)} {interval_text(q.ci, seq_kind)}".strip(),
             t("p"): fmt_p(q.p_value_always_valid), "": t("may_act") if q.may_act else t("keep_running")}
            for q in report.sequential
        ]), hide_index=True, width="stretch")


def risks(report: Report) -> None:
    if report.guardrails:
        st.subheader(t("guardrails"))
        for g in report.guardrails:
            if g.breached:
                st.warning(t("guardrail_breached", variant=g.variant, metric=metric_name(g.metric)))
        st.dataframe(pd.DataFrame([
            {t("variant"): g.variant, t("metric"): metric_name(g.metric), t("control_mean"): pct(g.control_rate),
             t("variant_mean"): pct(g.variant_rate),
             t("increase"): f"{uplift_text(g.difference, 'binary')} (≤ {show(g.margin, lambda m: f'{m * 100:.2f}')} {t('pt')})",
             t("p"): fmt_p(g.p_value), "⚠️": "⚠️" if g.breached else ""}
            for g in report.guardrails
        ]), hide_index=True, width="stretch")
    if report.roi:
        st.subheader(t("roi_title"))
        words = LABELS[lang()]

        def reading(r) -> str:
            if r.roi_ci is None or not all(math.isfinite(x) for x in r.roi_ci):
                return "–"
            return words["roi_positive"] if r.roi_ci[0] > 0 else words["roi_negative"] if r.roi_ci[1] < 0 \
                else words["roi_unproven"]

        def span(ci: tuple[float, float], fmt) -> str:
            return f" [{fmt(ci[0])}, {fmt(ci[1])}]" if all(math.isfinite(x) for x in ci) else ""

        st.dataframe(pd.DataFrame([
            {t("variant"): r.variant, t("contacted"): f"{r.contacted:,}",
             t("incremental_returns"): show(r.incremental_returns, lambda x: f"{x:,.0f}")
             + span(r.incremental_returns_ci, lambda x: f"{x:,.0f}"),
             t("incremental_revenue"): money(r.incremental_revenue) + span(r.incremental_revenue_ci, money),
             t("cost"): money(r.cost),
             t("roi"): roi_text(r.roi) + (span(r.roi_ci, roi_text) if r.roi_ci else ""),
             words["roi_status"]: reading(r),
             t("cpir"): money(r.cost_per_incremental_return)}
            for r in report.roi
        ]), hide_index=True, width="stretch")
    if not report.guardrails and not report.roi:
        st.info(t("no_comparisons"))


def segments(report: Report) -> None:
    if not report.segments:
        st.info(t("no_comparisons"))
        return
    dims = sorted({c.segment.split("=", 1)[0] for c in report.segments})
    dim = st.selectbox(t("dimension"), dims, format_func=labels(dims, dimension_label).get, key="results_dim")
    metric = report.segments[0].metric
    names = labels({c.segment for c in report.segments}, segment_label)
    st.altair_chart(uplift_forest(report, metric, segment=f"{dim}=", label=metric_name(metric), points=t("pt"),
                                  legend=legend(), segment_label=names.get), width="stretch")
    st.dataframe(comparison_table([c for c in report.segments if c.segment.startswith(f"{dim}=")], with_segment=True),
                 hide_index=True, width="stretch")


def quality(report: Report) -> None:
    shown = [q for q in report.quality if not math.isnan(q.control_mean) or q.n]
    if not shown:
        st.info(t("no_comparisons"))
        return
    st.dataframe(pd.DataFrame([
        {t("variant"): q.variant, t("metric"): LABELS[lang()][q.measure], t("n"): f"{q.n:,}",
         t("control_mean"): fmt_value(q.control_mean, q.kind), t("variant_mean"): fmt_value(q.variant_mean, q.kind),
         t("abs_uplift"): f"{uplift_text(q.abs_uplift, q.kind)} {interval_text(q.abs_ci, q.kind)}".strip(),
         t("p"): fmt_p(q.p_value)}
        for q in shown
    ]), hide_index=True, width="stretch")
    st.caption(" · ".join(f"{v}: {LABELS[lang()][quality_verdict(report.quality, v)]}"
                          for v in dict.fromkeys(q.variant for q in report.quality)))


def bayesian_and_cuped(report: Report) -> None:
    if not report.bayesian and not report.cuped:
        st.info(t("more_none"))
    if report.bayesian:
        st.subheader(t("opt_bayesian"))
        st.dataframe(pd.DataFrame([
            {t("variant"): b.variant, t("metric"): metric_name(b.metric),
             t("bayes_chance"): show(b.chance_to_beat_control, lambda x: f"{x:.1%}"),
             t("bayes_loss"): show(b.expected_loss, lambda x: f"{x:.4g}"),
             t("bayes_interval"): interval_text(b.uplift_ci, report.metric_kind(b.metric))}
            for b in report.bayesian
        ]), hide_index=True, width="stretch")
    if report.cuped:
        st.subheader(t("opt_cuped"))
        st.dataframe(pd.DataFrame([
            {t("variant"): a.variant, t("metric"): metric_name(a.metric), t("covariates"): ", ".join(a.covariates),
             t("cuped_uplift"): f"{uplift_text(a.abs_uplift, report.metric_kind(a.metric))} "
                                f"{interval_text(a.abs_ci, report.metric_kind(a.metric))}".strip(),
             t("p"): fmt_p(a.p_value), t("variance_reduction"): show(a.variance_reduction, lambda x: f"{x:.1%}")}
            for a in report.cuped
        ]), hide_index=True, width="stretch")


def notes_section(url: str, name: str, can_write: bool) -> None:
    if can_write:
        st.text_area(t("note_text"), key="note_text", height=80)
        st.button(t("note_add"), key="note_add", on_click=_add_note, args=(name,))
    found = notes_for(url, name)
    if not found:
        st.caption(t("notes_none"))
    for n in found:  # newest first
        st.markdown(f"**{n.author}** · {n.created_at:%Y-%m-%d %H:%M} UTC\n\n{mask_phone(n.text)}")  # never a full phone


def decide_section(report: Report, url: str, name: str, actor) -> None:
    state = lifecycle_of(url, name)
    st.markdown(t("lifecycle_status", status=status_label(state.status)))
    if state.decision:
        decision = t("decision_ship", variant=state.variant) if state.decision == "ship" else t("decision_no_go")
        st.markdown(t("decision_recorded", decision=decision, who=state.decided_by, at=state.decided_at,
                      reason=state.reason))
    if not actor.can(Permission.DECIDE):
        return
    confirm = st.session_state.get("results_confirm")
    if state.status == "running":
        st.text_input(t("stop_reason"), key="stop_reason")
        st.button(t("stop_experiment"), key="stop", on_click=_ask, args=("stop",))
        if confirm == "stop":
            st.warning(t("confirm_stop", name=name))
            st.button(t("confirm"), key="stop_confirmed", type="primary", on_click=_transition, args=(name, "stop"))
    elif state.status == "stopped":
        choices = [*state.contacted, NO_GO]
        suggested = report.verdict.variant if report.verdict and report.verdict.decision == SHIP else NO_GO
        words = {c: (t("decision_ship", variant=c) if c != NO_GO else t("no_go")) for c in choices}
        choice = st.radio(t("decide_choice"), choices, index=choices.index(suggested), format_func=words.get,
                          key="decide_choice")
        st.text_area(t("decide_reason"), key="decide_reason", height=80)
        st.button(t("decide_experiment"), key="decide", on_click=_ask, args=("decide",))
        if confirm == "decide":
            st.warning(t("confirm_decide", name=name, decision=words[choice]))
            st.button(t("confirm"), key="decide_confirmed", type="primary", on_click=_transition,
                      args=(name, "decide"))
    elif state.status == "decided" and state.decision == "ship" and actor.can(Permission.LAUNCH):
        st.button(t("roll_out"), key="roll_out", on_click=_ask, args=("roll_out",))
        if confirm == "roll_out":
            st.warning(t("confirm_roll_out", name=name, variant=state.variant))
            st.button(t("confirm"), key="roll_out_confirmed", type="primary", on_click=_transition,
                      args=(name, "roll_out"))
    else:
        st.caption(t("lifecycle_nothing"))


def main_experiment(status: dict[str, str], customers: dict[str, int]) -> str:
    """The experiment Results opens on: a running one (its decision is still to be made) before the
    others, the one with the most assigned customers first, then the newest (``status`` lists them
    newest first): the main campaign, not merely the last one created."""
    order = {name: i for i, name in enumerate(status)}
    return min(status, key=lambda name: (status[name] != "running", -customers.get(name, 0), order[name]))


# --------------------------------------------------------------------------- the page

actor = page_actor(Permission.VIEW)
st.title(t("results_title"))
url = current_url()
status = {r.name: r.status for r in experiment_rows(url) if r.status != "draft"}
names = list(status)
if not names:
    st.info(t("no_experiments"))
    st.markdown(t("no_experiments_help"))
    st.stop()
wanted = st.query_params.get("experiment")
default = wanted if wanted in names else st.session_state.get("experiment")
if default not in names:  # no choice yet: the experiment most worth a look, not merely the newest
    default = main_experiment(status, assigned_customers(url))
name = st.selectbox(t("experiment"), names, index=names.index(default), key="results_exp")
st.session_state["experiment"] = name
st.query_params["experiment"] = name  # a permalink: ?experiment=NAME&lang=… (app.py keeps lang)
with st.expander(t("options")):
    c = st.columns(4)
    correction = c[0].selectbox(t("opt_correction"), CORRECTIONS,
                                format_func=labels(CORRECTIONS, lambda x: t(f"correction_{x}")).get,
                                key="results_correction")
    sequential = c[1].toggle(t("opt_sequential"), value=status[name] == "running", key=f"results_sequential_{name}")
    cuped = c[2].toggle(t("opt_cuped"), key="results_cuped")
    bayesian = c[3].toggle(t("opt_bayesian"), key="results_bayesian")
    st.caption(f"{t('permalink')}: `?{urlencode({'experiment': name, 'lang': lang()})}`")
report = report_for(url, name, correction, sequential, cuped=cuped, bayesian=bayesian)

if done := st.session_state.pop("results_done", None):
    st.success(done)
if message := st.session_state.pop("results_message", None):
    st.error(message)
verdict_box(report)
if report.srm.mismatch:
    st.error(t("srm_bad", p=fmt_p(report.srm.p_value)))
if report.hypothesis:
    st.caption(report.hypothesis)

metrics = list(dict.fromkeys(c.metric for c in report.comparisons))
if metrics:
    metric = st.selectbox(t("metric"), metrics, index=metrics.index(report.primary_metric)
                          if report.primary_metric in metrics else 0, format_func=labels(metrics, metric_name).get,
                          key="results_metric")
    rows = [c for c in report.comparisons if c.metric == metric]
    summary(report, metric, rows)
else:
    st.info(t("no_comparisons"))
tabs = st.tabs([t("tab_effects"), t("tab_time"), t("tab_risk"), t("tab_segments"), t("tab_quality"), t("tab_more"),
                t("tab_notes"), t("tab_decide")])
if metrics:
    with tabs[0]:
        effects(report, metric, rows)
    with tabs[1]:
        day_by_day(report, url, name, metric)
with tabs[2]:
    risks(report)
with tabs[3]:
    segments(report)
with tabs[4]:
    st.subheader(t("quality_title"))
    quality(report)
with tabs[5]:
    bayesian_and_cuped(report)
with tabs[6]:
    notes_section(url, name, actor.can(Permission.NOTE))
with tabs[7]:
    decide_section(report, url, name, actor)

if actor.can(Permission.DOWNLOAD):  # viewers read; analysts and above take the report away (audited)
    downloads = [("download_md", render_markdown(report, lang=lang(), currency=currency()), "md", "text/markdown"),
                 ("download_csv", csv_of(report), "csv", "text/csv"),
                 ("download_json", report.to_json(), "json", "application/json")]
    for column, (label, data, kind, mime) in zip(st.columns(3), downloads, strict=True):
        column.download_button(t(label), data, file_name=f"{name}.{kind}", mime=mime, key=f"download_{kind}",
                               on_click=_downloaded, args=(name, kind, data))

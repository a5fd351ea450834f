"""Design (growth teams): a draft in the browser, with live sample size, cost and message checks;
launching (after a confirmation naming the audience, or a second person's approval) assigns the
customers and locks the design; send lists are built on a click, then offered for download."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import streamlit as st

from analysis.power import duration_days, experiment_cost, sample_size_proportions
from experiments.access import Forbidden, Permission
from experiments.approvals import approval_required, approve_launch, pending_launches, request_launch
from experiments.catalog import BUILTIN_METRICS, DEFAULT_CHANNEL_COSTS, Channel
from experiments.cohorts import COHORTS
from experiments.lifecycle import launch_audience
from experiments.message_checks import Severity, check_message
from experiments.spec import SpecError, parse_spec
from experiments.store import DesignLocked
from views.actions import build_send_lists, launch_now, record_download, save_draft
from views.auth import acting, page_actor
from views.common import cohort_label, current_url, labels, eligible_customers, engine, experiment_rows, metric_name, money, natural_rate, pct
from views.i18n import lang, t

DEFAULT_VARIANTS = pd.DataFrame([
    dict(name="c5_sms_10h", channel="sms", coupon=5.0, send_hour=10, weight=1.0,
         template="【好物商城】好久不见！为您预留{coupon}元礼金，3天内有效，戳 m.haowu.cn/r 回TD退订"),
    dict(name="c10_sms_20h", channel="sms", coupon=10.0, send_hour=20, weight=1.0,
         template="【好物商城】亲～{coupon}元红包已到账，今晚下单立减，戳 m.haowu.cn/r 回TD退订"),
])
GUARDRAILS = ["unsubscribed", "complained"]
COHORT_SPAN_DAYS = {"new_inactive": 5, "dormant_30d": 15, "lapsed_1_3m": 45}  # length of each lifecycle window


def spec_data(form: dict, variants: pd.DataFrame) -> dict:
    """The spec mapping the form describes: the holdout, then the contacted variants by weight."""
    rows = variants.dropna(subset=["name"]).to_dict("records")
    total = sum(float(r.get("weight") or 0) for r in rows) or 1.0
    contacted = [
        dict(name=str(r["name"]).strip(), share=(1 - form["holdout"]) * float(r.get("weight") or 0) / total,
             channel=r.get("channel"), coupon=float(r.get("coupon") or 0), template=str(r.get("template") or ""),
             send_hour=int(r["send_hour"]) if pd.notna(r.get("send_hour")) else None)
        for r in rows
    ]
    return dict(name=form["name"], hypothesis=form["hypothesis"], cohort=form["cohort"],
                attribution_days=form["attribution_days"], primary_metric=form["primary_metric"],
                start=form["start"], guardrails=form["guardrails"], variants=[dict(name="holdout", share=form["holdout"], control=True), *contacted])


def planning_panel(form: dict, variants: pd.DataFrame) -> None:
    """Sample size for the chosen minimum detectable uplift, duration against today's audience, cost."""
    url = current_url()
    st.subheader(t("planning"))
    baseline = natural_rate(url, form["cohort"])
    eligible = eligible_customers(url, form["cohort"])
    c = st.columns(2)
    c[0].metric(t("cohort_natural"), pct(baseline))
    c[1].metric(t("eligible"), f"{eligible:,}")
    mde = st.slider(t("mde"), 0.2, 5.0, 1.0, 0.1, key="design_mde") / 100
    k = max(len(variants.dropna(subset=["name"])), 1)
    try:
        plan = sample_size_proportions(baseline, mde_abs=mde, control_share=form["holdout"], variants=k)
    except ValueError as exc:
        st.warning(str(exc))
        return
    st.metric(t("needed"), f"{plan.n_total:,}")
    st.caption(t("per_arm", c=f"{plan.n_control:,}", v=f"{plan.n_variant:,}"))
    # Customers enter a lifecycle window at about (customers in it) / (its length in days) a day.
    per_day = eligible / COHORT_SPAN_DAYS.get(form["cohort"], 30)
    if eligible >= plan.n_total:
        st.success(t("enough") + " · " + t("duration_window", days=form["attribution_days"]))
    elif per_day > 0:
        days = duration_days(plan.n_total - eligible, per_day) + form["attribution_days"]
        st.warning(t("not_enough") + " · " + t("duration", per_day=f"{per_day:,.0f}", days=days))
    else:
        st.warning(t("not_enough"))
    unit_costs = {c.value: float(v) for c, v in DEFAULT_CHANNEL_COSTS.items()}
    total = messages = coupons = 0.0
    for row in variants.dropna(subset=["name"]).to_dict("records"):
        unit = unit_costs.get(row.get("channel"), 0.0)
        estimate = experiment_cost(plan.n_variant, float(unit), float(row.get("coupon") or 0), min(baseline + mde, 1.0))
        total, messages, coupons = total + estimate.total, messages + estimate.messages, coupons + estimate.coupons
    st.metric(t("expected_cost"), money(total))
    st.caption(t("cost_breakdown", messages=money(messages), coupons=money(coupons), rate=pct(baseline + mde)))


def checks_panel(variants: pd.DataFrame) -> None:
    st.subheader(t("message_checks"))
    for row in variants.dropna(subset=["name"]).to_dict("records"):
        channel = row.get("channel") or "sms"
        result = check_message(str(row.get("template") or ""), channel)
        problems = [f for f in result.findings if f.severity != Severity.INFO]
        info = f" · {result.sms.characters} / {result.sms.parts}" if result.sms else ""
        if not problems:
            st.markdown(f"✅ **{row['name']}**: {t('checks_ok')}{info}")
        for f in problems:
            icon = "❌" if f.severity == Severity.ERROR else "⚠️"
            st.markdown(f"{icon} **{row['name']}** `{f.code}`: {f.message(lang())}")


def _say(kind: str, text: str) -> None:
    st.session_state["design_message"] = (kind, text)


def _act(permission: Permission, target: str, action) -> None:  # noqa: ANN001 - a callable
    """Run a button's action as the signed-in user; refusals and errors become a message, not a trace."""
    try:
        action(acting(permission, target))
    except Forbidden as exc:
        _say("error", t("forbidden") + f" ({exc})")
    except (ValueError, LookupError) as exc:
        _say("error", str(exc))
    experiment_rows.clear()


def _launch(name: str) -> None:
    def run(actor) -> None:  # noqa: ANN001
        summary = launch_now(engine(), name, actor=actor)
        _say("success", t("launched_msg", n=f"{summary.newly_assigned:,}"))
    st.session_state.pop("launch_confirm", None)
    _act(Permission.LAUNCH, name, run)


def _request(name: str) -> None:
    def run(actor) -> None:  # noqa: ANN001
        request = request_launch(engine(), name, actor=actor)
        _say("success", t("launch_requested", name=name, n=f"{request.audience:,}"))
    st.session_state.pop("launch_confirm", None)
    _act(Permission.LAUNCH, name, run)


def _approve(request_id: int, name: str) -> None:
    def run(actor) -> None:  # noqa: ANN001
        summary = approve_launch(engine(), request_id, actor=actor)
        _say("success", t("launched_msg", n=f"{summary.newly_assigned:,}"))
    _act(Permission.LAUNCH, name, run)


def _build(name: str) -> None:
    def run(actor) -> None:  # noqa: ANN001
        data, touches = build_send_lists(engine(), name, actor=actor)
        if touches:
            st.session_state["sendlist_zip"] = (name, data)
        _say("success" if touches else "info", t("sendlists_built", n=f"{touches:,}"))
    st.session_state.pop("sendlist_zip", None)
    _act(Permission.SEND, name, run)


def _downloaded(name: str, data: bytes) -> None:
    _act(Permission.DOWNLOAD, name, lambda actor: record_download(engine(), name, "send_lists", data, actor=actor))


def _ask_to_confirm(name: str) -> None:
    st.session_state["launch_confirm"] = name


def launch_confirmation(name: str) -> None:
    """Who the launch would assign (read now), and the buttons that confirm or cancel it."""
    audience = launch_audience(engine(), name)
    held = sum(audience.held_by_layer.values())
    st.warning(t("launch_confirm", name=name, n=f"{audience.to_assign:,}", eligible=f"{audience.eligible:,}",
                 held=f"{held:,}"))
    c = st.columns(2)
    c[0].button(t("request_launch") if approval_required() else t("confirm_launch"), key="launch_confirmed",
                type="primary", on_click=_request if approval_required() else _launch, args=(name,))
    c[1].button(t("cancel"), key="launch_cancel", on_click=lambda: st.session_state.pop("launch_confirm", None))


def drafts_panel() -> None:
    """Launch a draft (assignment locks the design), approve others' launches, build send lists."""
    st.subheader(t("drafts"))
    message = st.session_state.pop("design_message", None)
    if message:
        getattr(st, message[0])(message[1])
    rows = experiment_rows(current_url())
    drafts = [r.name for r in rows if r.status == "draft"]
    if drafts:
        chosen = st.selectbox(t("experiment"), drafts, key="launch_choice")
        st.button(t("launch"), key="launch", on_click=_ask_to_confirm, args=(chosen,))
        if st.session_state.get("launch_confirm") == chosen:
            launch_confirmation(chosen)
    if approval_required():
        st.caption(t("approval_required"))
        for request in pending_launches(engine()):
            st.markdown(t("pending_launch", name=request.experiment, who=request.requested_by,
                          n=f"{request.audience:,}"))
            st.button(t("approve_launch"), key=f"approve_{request.id}", on_click=_approve,
                      args=(request.id, request.experiment), disabled=request.requested_by == actor.name)
    launched = [r.name for r in rows if r.status == "running" and r.source == "designed"]
    if launched:
        chosen = st.selectbox(t("experiment") + " · " + t("locked"), launched, key="sendlist_choice")
        st.button(t("build_sendlists"), key="sendlist_build", on_click=_build, args=(chosen,))
        built = st.session_state.get("sendlist_zip")
        if built and built[0] == chosen:
            st.download_button(t("sendlists"), data=built[1], file_name=f"{chosen}-sendlists.zip",
                               mime="application/zip", key="sendlist_download", on_click=_downloaded,
                               args=(chosen, built[1]))


actor = page_actor(Permission.DESIGN)
st.title(t("design_title"))
st.caption(t("design_caption"))
left, right = st.columns([3, 2])
with left:
    with st.form("design"):
        form = dict(
            name=st.text_input(t("exp_name"), key="design_name"),
            hypothesis=st.text_input(t("hypothesis"), key="design_hypothesis"),
            cohort=st.selectbox(t("cohort"), list(COHORTS), key="design_cohort",
                                format_func=labels(COHORTS, cohort_label).get),
            attribution_days=st.number_input(t("attribution_days"), 1, 90, 14, key="design_days"),
            primary_metric=st.selectbox(t("primary_metric"), list(BUILTIN_METRICS), format_func=labels(BUILTIN_METRICS, metric_name).get,
                                        key="design_primary"),
            guardrails=st.multiselect(t("guardrail_metrics"), GUARDRAILS, default=GUARDRAILS,
                                      format_func=labels(GUARDRAILS, metric_name).get,
                                      key="design_guardrails"),
            holdout=st.slider(t("holdout_share"), 0.05, 0.5, 0.10, 0.05, key="design_holdout"),
            start=st.date_input(t("start_date"), date.today() + timedelta(days=1), key="design_start"),
        )
        st.markdown(f"**{t('variants_table')}**")
        st.caption(t("variants_help"))
        variants = st.data_editor(
            st.session_state.get("design_variants", DEFAULT_VARIANTS), num_rows="dynamic", key="design_editor",
            column_config={
                "channel": st.column_config.SelectboxColumn(options=[c.value for c in Channel]),
                "send_hour": st.column_config.NumberColumn(min_value=0, max_value=23, step=1),
                "coupon": st.column_config.NumberColumn(min_value=0.0, step=1.0, format="¥%.0f"),
                "weight": st.column_config.NumberColumn(min_value=0.0, step=0.5),
                "template": st.column_config.TextColumn(width="large"),
            }, hide_index=True, width="stretch")
        submitted = st.form_submit_button(t("save_draft"), type="primary")
    if submitted:
        try:
            spec = parse_spec(spec_data(form, variants), source=form["name"] or "design")
            save_draft(engine(), spec, actor=acting(Permission.DESIGN, spec.name))
            experiment_rows.clear()
            st.success(t("saved", name=spec.name))
        except SpecError as exc:
            st.error(t("invalid_design") + "\n\n" + "\n".join(f"- `{f or '·'}`: {m}" for f, m in exc.problems))
        except (DesignLocked, Forbidden) as exc:
            st.error(str(exc))
with right:
    planning_panel(form, variants)
    checks_panel(variants)
    drafts_panel()

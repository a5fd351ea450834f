"""Design (growth teams): a draft in the browser, live as the user types: sample size, eligible
audience after the layer rule, the baseline's source, message checks, a preview of each message for a
real customer (phone masked) and the cost. Nothing is written while the page draws: saving the draft,
launching (after a confirmation naming the audience, or a second person's approval) and building send
lists happen on a click. A past design can be loaded into the form, and a running campaign's funnel
(sent → delivered → clicked → redeemed → returned) is shown per variant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

import pandas as pd
import streamlit as st
from sqlalchemy import select

from analysis.charts import funnel_chart
from analysis.factorial import factorial_sample_size
from analysis.funnel import STAGES, funnel
from analysis.render import metric_label
from analysis.power import enrolment_days, experiment_cost, sample_size_proportions
from experiments.access import Forbidden, Permission
from experiments.approvals import approval_required, approve_launch, pending_launches, request_launch
from experiments.catalog import BUILTIN_METRICS, DEFAULT_CHANNEL_COSTS, Channel
from experiments.cohorts import COHORTS, cohort_filter
from experiments.db import session_scope
from experiments.lifecycle import launch_check, spec_audience
from experiments.message_checks import Severity, check_message
from experiments.messages import MessageContext, TemplateError, render
from experiments.models import Customer
from experiments.spec import ExperimentSpec, SpecError, parse_spec
from experiments.store import DesignLocked, get_experiment, stored_spec, utcnow
from views.actions import build_send_lists, launch_now, record_download, save_draft
from views.auth import acting, page_actor
from views.common import (
    cohort_label,
    current_url,
    data_version_for,
    engine,
    engine_for,
    experiment_rows,
    keep_widget_values,
    mask_phone,
    metric_name,
    money,
    natural_rate_source,
    option_format,
    pct,
)
from views.i18n import LANGUAGES, lang, t

DEFAULT_VARIANTS = pd.DataFrame([
    dict(name="c5_sms_10h", channel="sms", coupon=5.0, send_hour=10, weight=1.0,
         template="【好物商城】好久不见！为您预留{coupon}元礼金，3天内有效，戳 m.haowu.cn/r 回TD退订"),
    dict(name="c10_sms_20h", channel="sms", coupon=10.0, send_hour=20, weight=1.0,
         template="【好物商城】亲～{coupon}元红包已到账，今晚下单立减，戳 m.haowu.cn/r 回TD退订"),
])
DEFAULT_WORDINGS = pd.DataFrame([
    dict(level="lively", template="【好物商城】亲～{coupon}元红包已到账，3天内下单立减，戳 m.haowu.cn/r 回TD退订"),
    dict(level="professional", template="【好物商城】尊敬的会员，为您预留{coupon}元礼金，3天内有效 回TD退订"),
])
GUARDRAILS = ["unsubscribed", "complained"]
COHORT_SPAN_DAYS = {"new_inactive": 5, "dormant_30d": 15, "lapsed_1_3m": 45}  # length of each lifecycle window
UNTITLED = "untitled-draft"  # the name live checks use until the user types one


def form_defaults() -> dict:
    """The form's first values. Widgets take them from the session (not a ``value=``), so re-seating
    them (see keep_widget_values) never conflicts with a default."""
    return dict(design_name="", design_hypothesis="", design_cohort=next(iter(COHORTS)), design_layer="recall",
                design_days=14, design_primary=next(iter(BUILTIN_METRICS)), design_guardrails=list(GUARDRAILS),
                design_holdout=0.10, design_start=date.today() + timedelta(days=1), design_mode="variants",
                design_mde=1.0, factor_coupon="5, 10", factor_send_hour="10, 20", factor_channel="")


# --------------------------------------------------------------------------- the form → a spec


def _number_list(text: str) -> list[int | float]:
    """"5, 10" → [5, 10]; a factor's levels as typed (blank: the factor is not used)."""
    values = []
    for part in str(text or "").replace("，", ",").split(","):
        part = part.strip()
        if part:
            number = float(part)
            values.append(int(number) if number.is_integer() else number)
    return values


def variant_rows(variants: pd.DataFrame, holdout: float) -> list[dict]:
    """The contacted variants the table describes, sharing 1 − holdout by weight."""
    rows = variants.dropna(subset=["name"]).to_dict("records")
    total = sum(float(r.get("weight") or 0) for r in rows) or 1.0
    return [dict(name=str(r["name"]).strip(), share=(1 - holdout) * float(r.get("weight") or 0) / total,
                 channel=r.get("channel"), coupon=float(r.get("coupon") or 0), template=str(r.get("template") or ""),
                 send_hour=int(r["send_hour"]) if pd.notna(r.get("send_hour")) else None)
            for r in rows]


def factor_data(coupon: str, send_hour: str, channel: str, wordings: pd.DataFrame) -> dict:
    """``[factors]`` from the factor editor: numbers typed as lists, wording levels with their templates."""
    factors: dict = {}
    for factor, text in (("coupon", coupon), ("send_hour", send_hour)):
        if levels := _number_list(text):
            factors[factor] = levels
    if channels := [c.strip() for c in str(channel or "").replace("，", ",").split(",") if c.strip()]:
        factors["channel"] = channels
    wording = {str(r["level"]).strip(): str(r.get("template") or "")
               for r in wordings.dropna(subset=["level"]).to_dict("records") if str(r["level"]).strip()}
    if wording:
        factors["wording"] = wording
    return factors


def spec_data(form: dict, variants: pd.DataFrame | None = None, factors: dict | None = None) -> dict:
    """The spec mapping the form describes: the holdout, then the contacted variants by weight (or the
    cells the factors generate)."""
    data = dict(name=form["name"], hypothesis=form["hypothesis"], cohort=form["cohort"], layer=form.get("layer") or "recall",
                attribution_days=form["attribution_days"], primary_metric=form["primary_metric"],
                start=form["start"], guardrails=form["guardrails"])
    if factors is not None:
        return data | dict(factors=factors, factorial=dict(holdout=form["holdout"]))
    return data | dict(variants=[dict(name="holdout", share=form["holdout"], control=True),
                                 *variant_rows(variants, form["holdout"])])


@dataclass(frozen=True)
class Draft:
    """What the form describes now: the spec (None while it has problems) and the problems by field."""

    spec: ExperimentSpec | None
    problems: list[tuple[str, str]]

    @property
    def contacted(self) -> list:
        return [v for v in self.spec.variants if not v.control] if self.spec else []


def live_draft(data: dict) -> Draft:
    """Validate the form as it is (an empty name stands in as ``untitled-draft`` until one is typed)."""
    try:
        return Draft(parse_spec(data | {"name": data["name"] or UNTITLED}, source="design"), [])
    except SpecError as exc:
        return Draft(None, exc.problems)


# --------------------------------------------------------------------------- reads (cached, no writes)


@st.cache_data(ttl=60, show_spinner=False)
def draft_audience(url: str, spec_json: str, version: str):  # noqa: ANN201 - an Audience
    """The audience of the unsaved design under the layer rule (read only, as a launch would count it)."""
    return spec_audience(engine_for(url), ExperimentSpec.model_validate_json(spec_json))


@st.cache_data(ttl=300, show_spinner=False)
def sample_customer(url: str, cohort: str) -> str | None:
    """A real customer of the cohort for the message preview (the first by id)."""
    with session_scope(engine_for(url)) as session:
        return session.scalar(select(Customer.customer_id).where(cohort_filter(cohort, utcnow()))
                              .order_by(Customer.customer_id).limit(1))


@st.cache_data(ttl=60, show_spinner=False)
def funnel_rows(url: str, name: str, version: str) -> list:
    with session_scope(engine_for(url)) as session:
        return funnel(session.connection(), get_experiment(session, name))


def spec_of(url: str, name: str) -> ExperimentSpec | None:
    with session_scope(engine_for(url)) as session:
        return stored_spec(get_experiment(session, name))


# --------------------------------------------------------------------------- clone into the form


def load_into_form(name: str) -> None:
    """Put a past design into the widgets (a click: nothing is stored until the draft is saved)."""
    spec = spec_of(current_url(), name)
    if spec is None:
        return
    state = st.session_state
    state.update(design_name=f"{name}-copy"[:64], design_hypothesis=spec.hypothesis, design_cohort=spec.cohort,
                 design_layer=spec.layer, design_days=spec.attribution_days, design_primary=spec.primary_metric,
                 design_guardrails=[g for g in spec.guardrails if g in GUARDRAILS], design_start=spec.start
                 or date.today() + timedelta(days=1))
    control = next((v for v in spec.variants if v.control), None)
    state["design_holdout"] = round(control.share, 2) if control else 0.1
    for key in ("design_editor", "wording_editor"):
        state.pop(key, None)
    if spec.factors:
        state["design_mode"] = "factors"
        factors = spec.factors
        state["factor_coupon"] = ", ".join(map(str, factors.get("coupon", [])))
        state["factor_send_hour"] = ", ".join(map(str, factors.get("send_hour", [])))
        state["factor_channel"] = ", ".join(map(str, factors.get("channel", [])))
        wording = factors.get("wording") or factors.get("template") or {}
        state["design_wordings"] = pd.DataFrame([dict(level=k, template=v) for k, v in wording.items()],
                                                columns=["level", "template"])
    else:
        state["design_mode"] = "variants"
        contacted = [v for v in spec.variants if not v.control]
        state["design_variants"] = pd.DataFrame([
            dict(name=v.name, channel=v.channel.value if v.channel else None, coupon=float(v.coupon),
                 send_hour=v.send_hour, weight=v.share, template=v.template) for v in contacted])
    state["design_message"] = ("success", t("clone_loaded", name=name))


def clone_panel() -> None:
    past = [r.name for r in experiment_rows(current_url()) if r.source == "designed"]
    if not past:
        return
    with st.expander(t("clone_title")):
        chosen = st.selectbox(t("clone_from"), past, key="clone_choice")
        st.button(t("clone_load"), key="clone_load", on_click=load_into_form, args=(chosen,))


# --------------------------------------------------------------------------- live panels


def unit_cost(channel: str | None) -> float:
    return {c.value: float(v) for c, v in DEFAULT_CHANNEL_COSTS.items()}.get(channel or "", 0.0)


def per_day(eligible: int, cohort: str) -> int:
    """Customers entering the cohort a day: about (customers in it) / (its length in days)."""
    return round(eligible / COHORT_SPAN_DAYS.get(cohort, 30))


def baseline_panel(cohort: str) -> float:
    source = natural_rate_source(current_url(), cohort)
    st.metric(t("cohort_natural"), pct(source.rate))
    if source.is_default:
        st.warning(t("baseline_default", rate=pct(source.rate)))
    else:
        st.caption(t("baseline_history", n=f"{source.customers:,}", experiments=", ".join(source.experiments)))
    return source.rate


def audience_panel(draft: Draft) -> tuple[int, int]:
    """Eligible now under the layer rule: in the cohort, minus customers held by running experiments of
    the same layer (which ones) and the global holdout. Returns (eligible, the customers a launch would
    assign)."""
    if draft.spec is None:
        return 0, 0
    found = draft_audience(current_url(), draft.spec.model_dump_json(), data_version_for(current_url()))
    c = st.columns(2)
    c[0].metric(t("eligible"), f"{found.eligible:,}")
    c[1].metric(t("assignable"), f"{found.to_assign:,}")
    if found.held_by_layer:
        held = ", ".join(f"{name} ({n:,})" for name, n in found.held_by_layer.items())
        (st.warning if found.to_assign == 0 else st.info)(t("held_by_layer", layer=draft.spec.layer, held=held))
    if found.in_global_holdout:
        st.caption(t("in_global_holdout", n=f"{found.in_global_holdout:,}"))
    return found.eligible, found.to_assign


def planning_panel(form: dict, draft: Draft, baseline: float, eligible: int, available: int) -> None:
    """Sample size for the chosen minimum detectable uplift, duration (as ``recall power`` says), cost.

    The ``available`` customers join at launch; newcomers to the cohort (free of any experiment) arrive
    at about ``eligible`` / the cohort's length in days."""
    mde = st.slider(t("mde"), 0.2, 5.0, step=0.1, key="design_mde") / 100
    k = max(len(draft.contacted), 1)
    try:
        plan = sample_size_proportions(baseline, mde_abs=mde, control_share=form["holdout"], variants=k)
    except ValueError as exc:
        st.warning(str(exc))
        return
    st.metric(t("needed"), f"{plan.n_total:,}")
    st.caption(t("per_arm", c=f"{plan.n_control:,}", v=f"{plan.n_variant:,}"))
    daily = per_day(eligible, form["cohort"])
    if available >= plan.n_total:
        st.success(t("enough") + " · " + t("duration_window", days=form["attribution_days"]))
    elif daily > 0:
        days = enrolment_days(plan.n_total, daily, available) + form["attribution_days"]
        st.warning(t("not_enough") + " · " + t("duration", per_day=f"{daily:,}", days=days))
    else:
        st.warning(t("not_enough"))
    st.caption(t("power_command"))
    st.code(f"recall power --baseline {baseline:.6g} --mde-abs {mde:.6g} --holdout {form['holdout']:.6g} "
            f"--variants {k} --eligible-per-day {max(daily, 1)} --eligible-now {available} "
            f"--attribution-days {form['attribution_days']}", language="bash")
    total = messages = coupons = 0.0
    for v in draft.contacted:
        estimate = experiment_cost(plan.n_variant, unit_cost(v.channel.value if v.channel else None),
                                   float(v.coupon), min(baseline + mde, 1.0))
        total, messages, coupons = total + estimate.total, messages + estimate.messages, coupons + estimate.coupons
    st.metric(t("expected_cost"), money(total))
    st.caption(t("cost_breakdown", messages=money(messages), coupons=money(coupons), rate=pct(baseline + mde)))


def factorial_panel(form: dict, draft: Draft, baseline: float) -> None:
    """The generated cells, the customers needed for a main effect and a two-way interaction, the cost."""
    spec = draft.spec
    if spec is None or not spec.factors:
        return
    st.subheader(t("factorial_cells"))
    factors = {f: (list(v) if isinstance(v, dict) else v) for f, v in spec.factors.items()}
    cells = pd.DataFrame([dict(name=v.name, **v.levels, share=round(v.share, 4)) for v in draft.contacted])
    st.dataframe(cells, hide_index=True, width="stretch")
    levels = [len(v) for v in factors.values()]
    mde = st.session_state.get("design_mde", 1.0) / 100
    rows = []
    for effect in ("main", "interaction") if len(levels) >= 2 else ("main",):
        plan = factorial_sample_size(baseline, mde, levels, effect=effect, holdout=form["holdout"])
        cost = sum(experiment_cost(plan.per_cell, unit_cost(v.channel.value if v.channel else None), float(v.coupon),
                                   min(baseline + mde, 1.0)).total for v in draft.contacted)
        rows.append({t("design_factorial_effect"): t(f"factorial_{effect}"), t("factorial_per_cell"): f"{plan.per_cell:,}",
                     t("needed"): f"{plan.total:,}", t("expected_cost"): money(cost)})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(t("factorial_plan_note", cells=len(draft.contacted), mde=pct(mde)))


def checks_panel(draft: Draft, raw: list[dict]) -> None:
    """Problems of the design (quiet hours, shares, names) and each message's checks, as typed."""
    st.subheader(t("message_checks"))
    shown = [(f, m) for f, m in draft.problems if not (f == "name" and not st.session_state.get("design_name"))]
    if shown:
        st.error(t("invalid_design") + "\n\n" + "\n".join(f"- `{f or '·'}`: {m}" for f, m in shown))
    messages = ([dict(name=v.name, channel=v.channel.value if v.channel else "sms", template=v.template)
                 for v in draft.contacted] if draft.spec else raw)
    for row in messages:
        result = check_message(str(row.get("template") or ""), row.get("channel") or "sms")
        problems = [f for f in result.findings if f.severity != Severity.INFO]
        info = f" · {result.sms.characters} / {result.sms.parts}" if result.sms else ""
        if not problems:
            st.markdown(f"✅ **{row['name']}**: {t('checks_ok')}{info}")
        for f in problems:
            icon = "❌" if f.severity == Severity.ERROR else "⚠️"
            st.markdown(f"{icon} **{row['name']}** `{f.code}`: {f.message(lang())}")


def preview_panel(draft: Draft, cohort: str, start: date) -> None:
    """Each message as a real customer of the cohort would read it (any phone number masked)."""
    if not draft.contacted:
        return
    customer = sample_customer(current_url(), cohort)
    st.subheader(t("preview_title"))
    if customer is None:
        st.caption(t("preview_nobody"))
        return
    st.caption(t("preview_for", customer=mask_phone(customer)))
    for v in draft.contacted:
        at = datetime.combine(start, datetime.min.time()).replace(hour=v.send_hour or 0)
        try:
            text = render(v.template, MessageContext(Decimal(v.coupon), customer, at))
        except TemplateError as exc:
            text = exc.message_zh if lang() == "zh" else exc.message_en
        st.markdown(f"**{v.name}** · {v.send_hour if v.send_hour is not None else '–'}:00")
        st.text(mask_phone(text))


def funnel_panel() -> None:
    """A running campaign's funnel per variant: counted in the database, a few rows back."""
    url = current_url()
    running = [r.name for r in experiment_rows(url) if r.status in ("running", "stopped") and r.source == "designed"]
    if not running:
        return
    st.subheader(t("funnel_title"))
    chosen = st.selectbox(t("experiment"), running, key="funnel_choice")
    rows = funnel_rows(url, chosen, data_version_for(url))
    if not rows:
        st.info(t("funnel_empty"))
        return
    stage_labels = {s: t(f"funnel_{s}") for s in STAGES}
    st.altair_chart(funnel_chart(rows, stage_labels, label=t("variant"), share_label=t("funnel_share")), width="stretch")
    st.dataframe(pd.DataFrame([{t("variant"): r.variant, **{stage_labels[s]: n for s, n in r.stages().items()}}
                               for r in rows]), hide_index=True, width="stretch")
    st.caption(t("funnel_caption"))


# --------------------------------------------------------------------------- actions (clicks only)


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


def _save(data: dict) -> None:
    if not data["name"]:
        _say("error", t("name_needed"))
        return
    try:
        spec = parse_spec(data, source=data["name"])
    except SpecError as exc:
        _say("error", t("invalid_design") + "\n\n" + "\n".join(f"- `{f or '·'}`: {m}" for f, m in exc.problems))
        return

    def run(actor) -> None:  # noqa: ANN001
        try:
            save_draft(engine(), spec, actor=actor)
        except DesignLocked as exc:
            raise ValueError(str(exc)) from None
        _say("success", t("saved", name=spec.name))
    _act(Permission.DESIGN, spec.name, run)


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
    """Who the launch would assign (read now), and the buttons that confirm or cancel it; a launch the
    layer rule blocks names the experiments holding the customers and offers no confirmation."""
    audience, refused = launch_check(engine(), name)
    if refused:
        if audience.held_by_layer and audience.to_assign == 0:
            held = ", ".join(f"{other} ({n:,})" for other, n in audience.held_by_layer.items())
            st.warning(t("launch_blocked_layer", name=name, held=held))
        else:
            st.error(refused)
        st.button(t("cancel"), key="launch_cancel", on_click=lambda: st.session_state.pop("launch_confirm", None))
        return
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


# --------------------------------------------------------------------------- the page


def show_message() -> None:
    message = st.session_state.pop("design_message", None)
    if message:
        getattr(st, message[0])(message[1])


def start_form() -> None:
    """First values, then every widget's value re-seated; guardrails the browser still sends as labels
    of the other language (after a switch) become their names again."""
    defaults = form_defaults()
    for key, value in defaults.items():
        st.session_state.setdefault(key, value)
    keep_widget_values(*defaults)
    names = {label: g for g in GUARDRAILS for label in (g, *(metric_label(g, language) for language in LANGUAGES))}
    st.session_state["design_guardrails"] = [names[v] for v in st.session_state["design_guardrails"] if v in names]


actor = page_actor(Permission.DESIGN)
start_form()
st.title(t("design_title"))
st.caption(t("design_caption"))
show_message()
clone_panel()
left, right = st.columns([3, 2])
with left:
    form = dict(
        name=st.text_input(t("exp_name"), key="design_name").strip(),
        hypothesis=st.text_input(t("hypothesis"), key="design_hypothesis"),
        cohort=st.selectbox(t("cohort"), list(COHORTS), key="design_cohort",
                            format_func=option_format(COHORTS, cohort_label)),
        layer=st.text_input(t("layer"), key="design_layer", help=t("layer_help")),
        attribution_days=st.number_input(t("attribution_days"), 1, 90, key="design_days"),
        primary_metric=st.selectbox(t("primary_metric"), list(BUILTIN_METRICS), key="design_primary",
                                    format_func=option_format(BUILTIN_METRICS, metric_name)),
        guardrails=st.multiselect(t("guardrail_metrics"), GUARDRAILS, key="design_guardrails",
                                  format_func=option_format(GUARDRAILS, metric_name)),
        holdout=st.slider(t("holdout_share"), 0.05, 0.5, step=0.05, key="design_holdout"),
        start=st.date_input(t("start_date"), key="design_start"),
    )
    modes = {"variants": t("mode_variants"), "factors": t("mode_factors")}
    mode = st.radio(t("design_mode"), list(modes), key="design_mode", horizontal=True,
                    format_func=lambda m: modes.get(m, str(m)))
    raw: list[dict] = []
    if mode == "factors":
        st.caption(t("factors_help"))
        c = st.columns(3)
        coupon = c[0].text_input(t("factor_coupon"), key="factor_coupon")
        send_hour = c[1].text_input(t("factor_send_hour"), key="factor_send_hour")
        channel = c[2].text_input(t("factor_channel"), key="factor_channel")
        wordings = st.data_editor(st.session_state.get("design_wordings", DEFAULT_WORDINGS), num_rows="dynamic",
                                  key="wording_editor", hide_index=True, width="stretch",
                                  column_config={"template": st.column_config.TextColumn(width="large")})
        try:
            data = spec_data(form, factors=factor_data(coupon, send_hour, channel, wordings))
        except ValueError:
            st.error(t("factor_numbers"))
            data = None
    else:
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
        raw = variant_rows(variants, form["holdout"])
        data = spec_data(form, variants)
    draft = live_draft(data) if data else Draft(None, [])
    # Not a callback: a click saves the form as drawn in this run (a name typed just before the click
    # reaches the script with the click, after callbacks would have run).
    if st.button(t("save_draft"), key="save_draft", type="primary", disabled=data is None):
        _save(data)
        show_message()
    preview_panel(draft, form["cohort"], form["start"])
with right:
    st.subheader(t("planning"))
    baseline = baseline_panel(form["cohort"])
    eligible, available = audience_panel(draft)
    planning_panel(form, draft, baseline, eligible, available)
    checks_panel(draft, raw)
    factorial_panel(form, draft, baseline)
    drafts_panel()
funnel_panel()

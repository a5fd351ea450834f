"""Settings (admins): language; currency, time zone, channel costs and the database are shown, not
edited; the acquisition cost the Overview compares against; users and roles; the audit log."""

from __future__ import annotations

import json
from datetime import UTC

import pandas as pd
import streamlit as st

from experiments.access import Forbidden, Permission, Role
from experiments.audit import Action, entries
from experiments.catalog import DEFAULT_CHANNEL_COSTS
from experiments.config import settings
from experiments.db import session_scope
from experiments.users import UserError, add_user, list_users, reset_password, set_disabled, set_role
from views.auth import acting, page_actor
from views.common import DEFAULT_ACQUISITION_COST, current_url, engine, labels, masked_url, money
from views.i18n import LANGUAGES, lang, t


def _set_language() -> None:
    st.session_state["lang"] = st.session_state["settings_lang"]


def _manage(name: str, change) -> None:  # noqa: ANN001 - a callable taking the actor
    """Run a user change as the signed-in admin; the outcome is shown on the next run."""
    try:
        change(acting(Permission.MANAGE_USERS, name))
        st.session_state["users_message"] = ("success", t("user_changed", name=name))
    except (Forbidden, UserError, ValueError) as exc:
        st.session_state["users_message"] = ("error", str(exc))


def _add() -> None:
    name, role = st.session_state["new_user_name"], Role(st.session_state["new_user_role"])
    password = st.session_state["new_user_password"]
    st.session_state["new_user_password"] = ""
    _manage(name, lambda actor: add_user(engine(), name, password, role, actor=actor))


def _change(action: str) -> None:
    name = st.session_state["user_choice"]
    changes = {
        "disable": lambda actor: set_disabled(engine(), name, True, actor=actor),
        "enable": lambda actor: set_disabled(engine(), name, False, actor=actor),
        "role": lambda actor: set_role(engine(), name, Role(st.session_state["user_new_role"]), actor=actor),
        "password": lambda actor: reset_password(engine(), name, st.session_state["user_new_password"], actor=actor),
    }
    st.session_state["user_new_password"] = ""
    _manage(name, changes[action])


def users_panel() -> None:
    st.subheader(t("users_title"))
    if message := st.session_state.pop("users_message", None):
        getattr(st, message[0])(message[1])
    users = list_users(engine(), actor=actor)
    roles = [r.value for r in Role]
    role_labels = labels(roles, lambda r: t(f"role_{r}"))
    st.dataframe(pd.DataFrame([
        {t("user_name"): u.name, t("role"): t(f"role_{u.role.value}"),
         t("user_state"): t("user_disabled") if u.disabled else t("user_active"),
         t("locked_until"): f"{u.locked_until:%Y-%m-%d %H:%M} UTC" if u.locked_until else ""}
        for u in users]), hide_index=True, width="stretch")
    with st.form("add_user", clear_on_submit=False):
        c = st.columns(3)
        c[0].text_input(t("user_name"), key="new_user_name")
        c[1].selectbox(t("role"), roles, format_func=role_labels.get, key="new_user_role")
        c[2].text_input(t("password"), type="password", key="new_user_password")
        st.form_submit_button(t("add_user"), on_click=_add)
    if users:
        c = st.columns(4)
        c[0].selectbox(t("user_name"), [u.name for u in users], key="user_choice")
        c[1].selectbox(t("role"), roles, format_func=role_labels.get, key="user_new_role")
        c[2].text_input(t("new_password"), type="password", key="user_new_password")
        b = st.columns(4)
        b[0].button(t("set_role"), on_click=_change, args=("role",), key="user_set_role")
        b[1].button(t("reset_password"), on_click=_change, args=("password",), key="user_reset_password")
        b[2].button(t("disable_user"), on_click=_change, args=("disable",), key="user_disable")
        b[3].button(t("enable_user"), on_click=_change, args=("enable",), key="user_enable")


def audit_panel() -> None:
    """The newest entries first, filtered by who, what and on which target (reads only)."""
    st.subheader(t("audit_title"))
    c = st.columns(4)
    who = c[0].text_input(t("audit_actor"), key="audit_actor")
    actions = c[1].multiselect(t("audit_action"), [a.value for a in Action], key="audit_actions")
    target = c[2].text_input(t("audit_target"), key="audit_target")
    limit = c[3].number_input(t("audit_limit"), 10, 10_000, 200, 50, key="audit_limit")
    with session_scope(engine()) as session:
        rows = entries(session, limit=int(limit), actions=[Action(a) for a in actions], actor=who.strip() or None,
                       target=target.strip() or None)
    tz = settings().timezone
    st.dataframe(pd.DataFrame([
        {t("audit_at"): e.at.replace(tzinfo=UTC).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"),
         t("audit_actor"): e.actor, t("role"): e.role, t("audit_via"): e.via, t("audit_action"): e.action,
         t("audit_target"): e.target, t("audit_details"): json.dumps(e.details, ensure_ascii=False)}
        for e in rows], columns=[t("audit_at"), t("audit_actor"), t("role"), t("audit_via"), t("audit_action"),
                                 t("audit_target"), t("audit_details")]), hide_index=True, width="stretch")


actor = page_actor(Permission.SETTINGS)
st.title(t("settings_title"))
config = settings()

st.radio(t("language"), list(LANGUAGES), format_func=LANGUAGES.get, index=list(LANGUAGES).index(lang()),
         key="settings_lang", on_change=_set_language, horizontal=True)
cols = st.columns(2)
cols[0].text_input(t("currency"), config.currency, disabled=True, help="RECALL_CURRENCY")
cols[1].text_input(t("timezone"), str(config.timezone), disabled=True, help="RECALL_TIMEZONE")

st.subheader(t("channel_costs"))
st.caption(t("costs_help"))
st.dataframe(
    pd.DataFrame({t("channel"): [c.value for c in DEFAULT_CHANNEL_COSTS],
                  t("unit_cost"): [money(float(v)) for v in DEFAULT_CHANNEL_COSTS.values()]}),
    hide_index=True,
)

# Widget state is dropped on pages that do not draw the widget: keep the value under its own key.
st.session_state["acquisition_cost"] = st.number_input(
    t("cac"), min_value=0.0, step=5.0, value=float(st.session_state.get("acquisition_cost", DEFAULT_ACQUISITION_COST)),
    help=t("cac_help"))

st.subheader(t("database"))
st.code(masked_url(current_url()), language=None)

users_panel()
audit_panel()

"""Who is using the app: the sign-in form, the session that follows, and the check every action makes.

A session is a small record in the server's memory: who, with which role, when it started and when
it was last used. The browser holds only a random token in a cookie, so a reload or a second tab
finds the session again (a server restart ends every session). On every run the session is checked
again against the users table (:func:`experiments.users.session_expired`), so a disabled account, a
new password, a changed role or a long pause takes effect at the next click.

Single sign-on: when ``.streamlit/secrets.toml`` has an ``[auth]`` section, Streamlit's OIDC sign-in
(``st.login``) is offered and the identity's e-mail gets a role from :func:`experiments.users.sso_role`.
"""

from __future__ import annotations

import secrets
from datetime import datetime

import streamlit as st
import streamlit.components.v1 as components

from experiments.access import Actor, Forbidden, Permission, Role, require
from experiments.audit import Action, record_now
from experiments.store import utcnow
from experiments.users import (
    SignInPolicy,
    SignInRefused,
    authenticate,
    count_users,
    get_user,
    record_sign_out,
    session_expired,
    session_timed_out,
    sso_role,
)
from views.common import engine
from views.i18n import t

SESSION = "signed_in"
COOKIE = "recall_session"


def session_record(actor: Actor, *, via: str = "password", now: datetime | None = None) -> dict:
    """What the session keeps after a sign-in (tests seed a session with it, the way the form does)."""
    now = now or utcnow()
    return dict(name=actor.name, role=actor.role.value, via=via, signed_in_at=now, last_seen=now)


@st.cache_resource(show_spinner=False)
def _open_sessions() -> dict[str, dict]:
    """Token → session record, shared by every browser session of this server process."""
    return {}


def _start(record: dict) -> dict:
    """Open a session: kept in this browser session and, under a new random token, for the cookie."""
    token = secrets.token_urlsafe(32)
    record["token"] = token
    sessions = _open_sessions()
    for old in [k for k, r in sessions.items() if session_timed_out(r["signed_in_at"], r["last_seen"])]:
        sessions.pop(old, None)  # abandoned tabs: forgotten at the next sign-in
    sessions[token] = record
    st.session_state[SESSION] = record
    st.session_state["cookie"] = token
    return record


def _end() -> dict | None:
    record = st.session_state.pop(SESSION, None)
    if record is not None:
        _open_sessions().pop(record.get("token", ""), None)
        st.session_state["cookie"] = ""
    return record


def _resumed() -> dict | None:
    """The session a reloaded page or another tab left, found by the cookie's token."""
    record = _open_sessions().get(st.context.cookies.get(COOKIE) or "")
    if record is not None:
        st.session_state[SESSION] = record
    return record


def set_cookie() -> None:
    """Give the browser the session's token, or take it away, after a sign-in or a sign-out (a script in
    a zero-height component frame, which shares the app's origin: Streamlit has no cookie setter)."""
    token = st.session_state.pop("cookie", None)
    if token is None:
        return
    age = int(SignInPolicy.from_env().lifetime.total_seconds()) if token else 0
    components.html(f"<script>parent.document.cookie = '{COOKIE}={token}; path=/; max-age={age}; "
                    "SameSite=Strict';</script>", height=0)


def sso_configured() -> bool:
    try:
        return bool(st.secrets.load_if_toml_exists() and "auth" in st.secrets)
    except Exception:  # noqa: BLE001 - a broken secrets file must not open the app; st.login reports it
        return False


def _sso_identity() -> str | None:
    try:
        return st.user.get("email") if st.user.get("is_logged_in") else None
    except Exception:  # noqa: BLE001 - no auth configured
        return None


def _sso_session() -> dict | None:
    """A session for the identity Streamlit's OIDC sign-in just returned, if it maps to a role."""
    email = _sso_identity() if sso_configured() else None
    if email is None:
        return None
    role = sso_role(engine(), email)
    if role is None:
        st.session_state["sign_in_message"] = t("sso_no_role", email=email)
        return None
    actor = Actor(email, role, "app")
    record_now(engine(), actor, Action.SIGN_IN, email, via="sso")  # the sign-in the user has just made
    return _start(session_record(actor, via="sso"))


def _end_reason(state: dict, now: datetime) -> tuple[str | None, Role | None]:
    """Why the session must end now (or None), and the account's current role."""
    if state["via"] == "sso":
        role = sso_role(engine(), state["name"])
        if role is None:
            return "no role", None
        return session_timed_out(state["signed_in_at"], state["last_seen"], now=now), role
    user = get_user(engine(), state["name"])
    return session_expired(state["signed_in_at"], state["last_seen"], user, now=now), user.role if user else None


def current_actor() -> Actor | None:
    """The signed-in user, checked against the users table now; None when nobody is (or no longer)."""
    state = st.session_state.get(SESSION) or _resumed() or _sso_session()
    if state is None:
        return None
    now = utcnow()
    reason, role = _end_reason(state, now)
    if reason is not None:
        _end()
        st.session_state["sign_in_message"] = t("session_ended")
        return None
    state["last_seen"], state["role"] = now, role.value
    return Actor(state["name"], role, "app")


def acting(permission: Permission, target: str = "") -> Actor:
    """The actor of a button's callback, allowed ``permission``; a refusal is recorded and raised."""
    actor = current_actor()
    if actor is None:
        raise Forbidden("not signed in")
    try:
        require(actor, permission)
    except Forbidden:
        record_now(engine(), actor, Action.FORBIDDEN, target, permission=permission.value)
        raise
    return actor


def sign_out() -> None:
    state = _end()
    if state is not None:
        record_sign_out(engine(), Actor(state["name"], Role(state["role"]), "app"))
        if state["via"] == "sso":
            st.logout()


def _sign_in() -> None:
    name, password = st.session_state.get("sign_in_name", ""), st.session_state.get("sign_in_password", "")
    st.session_state["sign_in_password"] = ""
    try:
        actor = authenticate(engine(), name, password)
    except SignInRefused:
        st.session_state["sign_in_message"] = t("sign_in_refused")
        return
    st.session_state.pop("sign_in_message", None)
    _start(session_record(actor))


def sign_in_page() -> None:
    """The only page an anonymous visitor sees: the form, single sign-on if configured, and on a fresh
    install the one command that creates the first admin."""
    st.title(t("sign_in_title"))
    message = st.session_state.pop("sign_in_message", None)
    if message:
        st.warning(message)
    if count_users(engine()) == 0 and not sso_configured():
        st.info(t("first_admin"))
        st.code("recall user add NAME --role admin", language="bash")
    with st.form("sign_in"):
        st.text_input(t("user_name"), key="sign_in_name")
        st.text_input(t("password"), type="password", key="sign_in_password")
        st.form_submit_button(t("sign_in"), type="primary", on_click=_sign_in)
    if sso_configured():
        st.button(t("sign_in_sso"), on_click=st.login, key="sign_in_sso")


def page_actor(permission: Permission) -> Actor:
    """The page's user, who must hold ``permission`` (the navigation already leaves the page out otherwise)."""
    actor = current_actor()
    if actor is None or not actor.can(permission):
        st.error(t("forbidden"))
        st.stop()
    return actor

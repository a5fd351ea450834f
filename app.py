"""Recall Lab, the Streamlit app: overview for leadership, design for growth teams, results for analysts.

Run with ``make app`` (or ``recall app``, which also builds the demo on an empty database and asks
for the first admin). Nobody sees anything but the sign-in form until they sign in; each role then
sees only the pages it may use, and every action checks the role again where it runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import streamlit as st

from experiments.access import Permission
from views.auth import current_actor, set_cookie, sign_in_page, sign_out
from views.i18n import LANGUAGES, lang, t

VIEWS = Path(__file__).resolve().parent / "views"
# page file, title, icon, URL path, the permission that shows it
PAGES = [
    ("overview.py", "nav_overview", ":material/monitoring:", "overview", Permission.VIEW),
    ("experiments.py", "nav_experiments", ":material/science:", "experiments", Permission.VIEW),
    ("design.py", "nav_design", ":material/edit_note:", "design", Permission.DESIGN),
    ("results.py", "nav_results", ":material/query_stats:", "results", Permission.VIEW),
    ("targeting.py", "nav_targeting", ":material/target:", "targeting", Permission.DOWNLOAD),
    ("settings.py", "nav_settings", ":material/settings:", "settings", Permission.SETTINGS),
]

st.set_page_config(page_title="Recall Lab 召回实验室", page_icon=":material/campaign:", layout="wide")
if "lang" not in st.session_state:  # a new session (a reload, a link): the URL's language, else the default
    wanted = st.query_params.get("lang")
    st.session_state["lang"] = wanted if wanted in LANGUAGES else os.environ.get("RECALL_LANG", "zh")
st.query_params["lang"] = st.session_state["lang"]  # kept in the URL on every page, so a reload keeps it

with st.sidebar:
    st.selectbox(t("language"), list(LANGUAGES), format_func=LANGUAGES.get, key="lang")



@st.fragment(run_every=2)
def demo_progress() -> None:
    """While ``recall app`` builds the demo in the background: a progress bar, and a fresh draw of the
    page (cached queries forgotten) each time another campaign is committed."""
    state = read_progress()
    if state is None:
        return
    seen = st.session_state.get("demo_progress_seen")
    st.session_state["demo_progress_seen"] = state.get("done")
    if state.get("error"):
        st.error(t("demo_failed", error=state["error"]))
        return
    if seen is not None and seen != state.get("done"):
        st.cache_data.clear()
        st.rerun(scope="app")
    if state.get("done", 0) < state.get("total", 1):
        st.progress(state["done"] / max(state["total"], 1), text=t("demo_building"))


def read_progress() -> dict | None:
    path = os.environ.get("RECALL_DEMO_PROGRESS")
    try:
        return json.loads(Path(path).read_text(encoding="utf-8")) if path else None
    except (OSError, ValueError):
        return None


if read_progress() is not None:
    demo_progress()
actor = current_actor()
set_cookie()
if actor is None:
    # Every URL shows the sign-in form, so a link to /design opens the Design page after signing in.
    st.navigation([st.Page(sign_in_page, title=t("sign_in"), url_path=url, default=url == "overview")
                   for _, _, _, url, _ in PAGES], position="hidden").run()
    st.stop()

with st.sidebar:
    st.caption(t("signed_in_as", name=actor.name, role=t(f"role_{actor.role.value}")))
    st.button(t("sign_out"), on_click=sign_out, key="sign_out")
pages = [st.Page(VIEWS / file, title=t(title), icon=icon, url_path=url, default=url == "overview")
         for file, title, icon, url, permission in PAGES if actor.can(permission)]
st.navigation(pages).run()
st.sidebar.caption(f"Recall Lab · {lang()}")

"""Recall Lab, the Streamlit app: overview for leadership, design for growth teams, results for analysts.

Run with ``make app`` (or ``recall app``). On an empty database the demo campaign is built first,
unless ``RECALL_NO_DEMO=1``.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from experiments.demo import build_demo
from views.common import current_url, engine, experiment_rows
from views.i18n import LANGUAGES, lang, t

VIEWS = Path(__file__).resolve().parent / "views"

st.set_page_config(page_title="Recall Lab 召回实验室", page_icon=":material/campaign:", layout="wide")
st.session_state.setdefault("lang", os.environ.get("RECALL_LANG", "zh"))

with st.sidebar:
    st.selectbox(t("language"), list(LANGUAGES), format_func=LANGUAGES.get, key="lang")

if not experiment_rows(current_url()) and os.environ.get("RECALL_NO_DEMO") != "1":
    with st.spinner(t("building_demo")):
        build_demo(engine())
    experiment_rows.clear()

pages = [
    st.Page(VIEWS / "overview.py", title=t("nav_overview"), icon=":material/monitoring:", url_path="overview", default=True),
    st.Page(VIEWS / "experiments.py", title=t("nav_experiments"), icon=":material/science:", url_path="experiments"),
    st.Page(VIEWS / "design.py", title=t("nav_design"), icon=":material/edit_note:", url_path="design"),
    st.Page(VIEWS / "results.py", title=t("nav_results"), icon=":material/query_stats:", url_path="results"),
    st.Page(VIEWS / "targeting.py", title=t("nav_targeting"), icon=":material/target:", url_path="targeting"),
    st.Page(VIEWS / "settings.py", title=t("nav_settings"), icon=":material/settings:", url_path="settings"),
]
st.navigation(pages).run()
st.sidebar.caption(f"Recall Lab · {lang()}")

"""Settings: language; currency, time zone, channel costs and the database are shown, not edited;
the acquisition cost the Overview compares against."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from experiments.catalog import DEFAULT_CHANNEL_COSTS
from experiments.config import settings
from views.common import DEFAULT_ACQUISITION_COST, current_url, masked_url, money
from views.i18n import LANGUAGES, lang, t


def _set_language() -> None:
    st.session_state["lang"] = st.session_state["settings_lang"]


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

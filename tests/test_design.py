"""The Design page, live: checks, audience after the layer rule, baseline source, preview, clone,
factors, funnel, the same duration as ``recall power``, a language switch, a launch blocked by a layer.

One demo database for the module (building it is the slow part); tests that write use their own
experiment names and leave the demo's campaigns as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pandas as pd
import pytest
import streamlit as st
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from cli import app as cli_app
from experiments.audit import entries
from experiments.db import make_engine, session_scope
from experiments.demo import MAIN, build_demo
from experiments.models import Assignment, Experiment
from tests.conftest import fresh_database
from tests.helpers import add_customers
from tests.test_app import FULL_PHONE, TODAY, add_role_users, open_page, texts

LANGS = ["zh", "en"]
LATE_NO_UNSUBSCRIBE = pd.DataFrame([dict(name="late_sms", channel="sms", coupon=5.0, send_hour=23, weight=1.0,
                                         template="【好物商城】{coupon}元礼金已到账，戳 m.haowu.cn/r")])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    url = fresh_database(tmp_path_factory.mktemp("design"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECALL_DATABASE_URL", url)
        engine = make_engine(url)
        build_demo(engine, customers=4_000, today=TODAY)
        add_role_users(engine)
        yield engine
        engine.dispose()


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def experiments(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(Experiment))


def shown(at) -> str:  # noqa: ANN001 - an AppTest
    return texts(at) + "\n" + "\n".join(str(x.value) for x in at.text) + "\n" + "\n".join(c.value for c in at.code)


@pytest.mark.parametrize("lang", LANGS)
def test_a_late_send_without_an_unsubscribe_line_fails_live_without_saving(demo: Engine, lang: str) -> None:
    before = experiments(demo)
    at = open_page("design", lang, design_variants=LATE_NO_UNSUBSCRIBE)
    errors = "\n".join(e.value for e in at.error)
    assert "variants[1].send_hour" in errors and ("quiet hours" in errors or "23" in errors), errors
    assert any("❌" in m.value and "late_sms" in m.value for m in at.markdown)  # no unsubscribe instruction
    assert not any("✅" in m.value for m in at.markdown)
    assert experiments(demo) == before  # drawing the page stored nothing


@pytest.mark.parametrize("lang", LANGS)
def test_the_baseline_names_its_source_or_says_it_is_a_default(demo: Engine, lang: str) -> None:
    at = open_page("design", lang)
    assert MAIN in "\n".join(c.value for c in at.caption)  # cohort "all": the campaigns' own controls
    assert not at.warning or not any("8.00%" in w.value for w in at.warning)
    at.selectbox(key="design_cohort").set_value("silent_3m").run()  # no experiment ever ran there
    assert any("8.00%" in w.value for w in at.warning)
    assert next(m.value for m in at.metric if m.label == at.metric[0].label) == "8.00%"


@pytest.mark.parametrize("lang", LANGS)
def test_the_eligible_audience_follows_the_layer_rule(demo: Engine, lang: str) -> None:
    at = open_page("design", lang)
    metrics = {m.label: m.value for m in at.metric}
    assignable = next(v for k, v in metrics.items() if "layer" in k or "同层" in k)
    assert assignable == "0"  # every demo customer is held by the running campaign of layer "recall"
    assert any(MAIN in e.value and "4,000" in e.value for e in at.warning)
    at.text_input(key="design_layer").set_value("push-tests").run()
    metrics = {m.label: m.value for m in at.metric}
    assignable = int(next(v for k, v in metrics.items() if "layer" in k or "同层" in k).replace(",", ""))
    assert 3_000 < assignable <= 4_000  # free in another layer (less the global holdout)
    assert not any(MAIN in e.value for e in at.warning)


@pytest.mark.parametrize("lang", LANGS)
def test_the_preview_renders_each_message_for_a_real_customer_with_the_phone_masked(demo: Engine, lang: str) -> None:
    at = open_page("design", lang)
    previews = [x.value for x in at.text]
    assert len(previews) == 2 and "5元礼金" in previews[0] and "10元红包" in previews[1]
    with_id = pd.DataFrame([dict(name="by_id", channel="sms", coupon=5.0, send_hour=10, weight=1.0,
                                 template="【好物商城】{customer_id} 您好，{coupon}元礼金 回TD退订")])
    at = open_page("design", lang, design_variants=with_id, design_cohort="silent_3m")
    page = shown(at)
    customer = re.search(r"(D\d{7}|\d{3}\*{4}\d{4})", page)
    assert customer and customer.group(1) in at.text[0].value  # the real customer the caption names
    assert not FULL_PHONE.search(page)


@pytest.mark.parametrize("lang", LANGS)
def test_a_past_design_loads_into_the_form_with_its_factors_cells_and_sample_sizes(demo: Engine, lang: str) -> None:
    before = experiments(demo)
    at = open_page("design", lang)
    at.selectbox(key="clone_choice").set_value(MAIN).run()
    at.button(key="clone_load").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["design_mode"] == "factors" and at.session_state["design_name"] == f"{MAIN}-copy"
    assert at.text_input(key="factor_coupon").value == "5, 10"
    cells = at.dataframe[1].value  # [0] the wording editor's data is not a dataframe element; [1]: the cells
    assert len(cells) == 8 and {"coupon", "wording", "send_hour"} <= set(cells.columns)
    plans = at.dataframe[2].value
    assert len(plans) == 2  # a main effect and a two-way interaction
    needed = [int(v.replace(",", "")) for v in plans.iloc[:, 2]]
    assert needed[1] > 3 * needed[0]  # an interaction needs about four times the customers
    assert all(v.startswith("¥") for v in plans.iloc[:, 3])
    assert experiments(demo) == before  # loading stored nothing

    at.text_input(key="factor_coupon").set_value("5, 10, 20").run()  # edit a factor: 12 cells, live
    assert len(at.dataframe[1].value) == 12


@pytest.mark.parametrize("lang", LANGS)
def test_the_funnel_of_the_running_campaign_per_variant(demo: Engine, lang: str) -> None:
    at = open_page("design", lang)
    at.selectbox(key="funnel_choice").set_value(MAIN).run()
    funnel = at.dataframe[-1].value.set_index(at.dataframe[-1].value.columns[0])
    assert len(funnel) == 8  # the eight contacted cells; the holdout is never sent anything
    stages = funnel.to_numpy()
    assert (stages[:, 0] > 0).all() and (stages[:, 1:] <= stages[:, :1]).all()  # every stage within "sent"
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")


def test_recall_power_and_the_page_show_the_same_duration(demo: Engine) -> None:
    at = open_page("design", "en")
    at.text_input(key="design_layer").set_value("power-check").run()
    at.slider(key="design_mde").set_value(0.5).run()
    command = at.code[0].value
    page_days = int(re.search(r"about (\d+) days", "\n".join(w.value for w in [*at.warning, *at.success])).group(1))
    result = CliRunner().invoke(cli_app, command.split()[1:])
    assert result.exit_code == 0, result.output
    cli_days = int(re.search(r"duration\s*│?\s*(\d+) days", result.output).group(1))
    assert cli_days == page_days


@pytest.mark.parametrize("start", LANGS)
def test_widgets_survive_a_language_switch(demo: Engine, start: str) -> None:
    other = "en" if start == "zh" else "zh"
    at = open_page("design", start)
    at.multiselect(key="design_guardrails").set_value(["unsubscribed"]).run()
    at.selectbox(key="lang").set_value(other).run()
    at.slider(key="design_holdout").set_value(0.2).run()  # touching a widget after the switch
    assert not at.exception, [e.value for e in at.exception]
    assert at.multiselect(key="design_guardrails").value == ["unsubscribed"]
    assert at.slider(key="design_holdout").value == 0.2


@pytest.mark.parametrize("lang", LANGS)
def test_labels_the_browser_still_holds_from_the_other_language_are_understood(demo: Engine, lang: str) -> None:
    # After a switch the browser sends the old labels back: the page maps them to the guardrails' names.
    at = open_page("design", lang, design_guardrails=["Unsubscribe rate (unsubscribed)", "投诉率 (complained)"])
    assert not at.exception
    assert sorted(at.multiselect(key="design_guardrails").value) == ["complained", "unsubscribed"]


@pytest.mark.parametrize("lang", LANGS)
def test_a_launch_blocked_by_the_layer_names_the_experiment_and_refuses(demo: Engine, lang: str) -> None:
    name = f"blocked-{lang}"
    at = open_page("design", lang, role="operator")
    at.text_input(key="design_name").set_value(name).run()
    at.button(key="save_draft").click().run()
    assert any(name in s.value for s in at.success), [e.value for e in at.error]
    at.selectbox(key="launch_choice").set_value(name).run()
    at.button(key="launch").click().run()
    blocked = [e.value for e in at.warning if name in e.value]
    assert blocked and MAIN in blocked[0] and "4,000" in blocked[0]
    assert not [b for b in at.button if b.key == "launch_confirmed"]
    with session_scope(demo) as session:
        assert session.scalar(select(func.count()).select_from(Assignment).join(Experiment)
                              .where(Experiment.name == name)) == 0
        assert session.scalar(select(Experiment.status).where(Experiment.name == name)).value == "draft"
        assert ("operator", "experiment_create", name) in [(e.actor, e.action, e.target) for e in entries(session, limit=5)]


def test_a_phone_number_is_masked_in_the_preview(demo: Engine) -> None:
    # Last in the module: the new customer is free of every experiment, which other tests count on.
    add_customers(demo, ["13812345678"])
    with_id = pd.DataFrame([dict(name="by_id", channel="sms", coupon=5.0, send_hour=10, weight=1.0,
                                 template="【好物商城】{customer_id} 您好，{coupon}元礼金 回TD退订")])
    at = open_page("design", "zh", design_variants=with_id)
    assert "138****5678" in at.text[0].value
    assert not FULL_PHONE.search(shown(at))

"""The Streamlit app, page by page, with streamlit.testing (a real database, no mocks)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from sqlalchemy import Engine, func, select
from statsmodels.stats.proportion import proportion_confint
from streamlit.testing.v1 import AppTest

from analysis import charts
from analysis.render import DECISIONS
from analysis.report import build_report
from experiments.access import Actor, Role, cli_actor
from experiments.audit import entries
from experiments.db import session_scope
from experiments.demo import MAIN, build_demo
from experiments.importer import import_results
from experiments.models import Assignment, Experiment, Send
from experiments.sendlist import local_day
from experiments.store import utcnow
from experiments.users import add_user
from tests.helpers import add_customers
from views.auth import SESSION, session_record
from views.common import mask_phone, masked_url

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TODAY = datetime(2026, 11, 23, 4, 0)
PAGES = ["overview", "experiments", "design", "results", "settings"]
FULL_PHONE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


PASSWORD = "correct horse battery"


def add_role_users(engine: Engine) -> None:
    """One account per role, named after it."""
    for role in Role:
        add_user(engine, role.value, PASSWORD, role, actor=cli_actor())


@pytest.fixture
def demo(engine: Engine) -> Iterator[Engine]:
    build_demo(engine, customers=4_000, today=TODAY)
    add_role_users(engine)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield engine
    st.cache_data.clear()
    st.cache_resource.clear()


def open_page(page: str, lang: str = "zh", role: str | None = "admin", **state: object) -> AppTest:
    """The page as the user named ``role`` (signed in as the form does it), or anonymous (``role=None``)."""
    at = AppTest.from_file(APP, default_timeout=90)
    at.session_state["lang"] = lang
    if role is not None:
        at.session_state[SESSION] = session_record(Actor(role, Role(role), "app"))
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    if page != "overview":
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def count(engine: Engine, model: type, *where: object) -> int:
    query = select(func.count()).select_from(model)
    if where:
        query = query.join(Experiment, Experiment.id == model.experiment_id).where(*where)
    with engine.connect() as connection:
        return connection.scalar(query)


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "title", "subheader", "success", "error", "warning", "info")
             for e in at.get(kind)]
    parts += [str(m.value) + str(m.label) for m in at.metric]
    for frame in at.dataframe:
        parts.append(frame.value.to_csv())
    return "\n".join(map(str, parts))


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_in_both_languages(demo: Engine, page: str, lang: str) -> None:
    at = open_page(page, lang)
    title = at.title[0].value
    assert bool(re.search(r"[\u4e00-\u9fff]", title)) == (lang == "zh"), title
    assert not FULL_PHONE.search(texts(at)), "a full phone number is on the page"


def test_overview_compares_recall_with_the_natural_rate(demo: Engine) -> None:
    at = open_page("overview", "en")
    content = texts(at)
    for name in (MAIN, "demo-dormant-push-vs-sms", "demo-welcome-coupon"):
        assert name in content
    decisions = tuple(DECISIONS["en"][d].split("{")[0].strip() for d in DECISIONS["en"])
    for name in (MAIN, "demo-dormant-push-vs-sms", "demo-welcome-coupon"):  # each card leads with its verdict
        card = next(line for line in content.splitlines() if line.startswith(f"**{name}**"))
        assert any(d in card for d in decisions), card
    spec = json.loads(at.get("vega_lite_chart")[0].proto.spec)
    bars = spec["layer"][0]
    assert bars["mark"]["type"] == "bar" and bars["encoding"]["yOffset"]["field"] == "series"
    assert bars["encoding"]["color"]["scale"]["domain"] == ["Recall rate (contacted)", "Natural return rate"]


def test_sidebar_switches_the_language(demo: Engine) -> None:
    at = open_page("experiments", "zh")
    assert at.title[0].value == "实验列表"
    at.sidebar.selectbox(key="lang").set_value("en").run()
    assert not at.exception and at.title[0].value == "Experiments"
    assert "Status" in at.dataframe[0].value.columns


def test_every_string_has_both_languages_and_every_key_exists() -> None:
    from views.i18n import STRINGS

    assert all(set(v) == {"zh", "en"} and all(v.values()) for v in STRINGS.values())
    root = Path(APP).parent
    used = {k for f in [root / "app.py", *(root / "views").glob("*.py")]
            for k in re.findall(r"\bt\(\s*[\"']([a-z0-9_]+)[\"']", f.read_text(encoding="utf-8"))}
    assert used and not used - set(STRINGS), used - set(STRINGS)


def test_experiments_filter_by_status_and_search(demo: Engine) -> None:
    at = open_page("experiments", "en")
    assert len(at.dataframe[0].value) == 4  # the demo's four campaigns
    at.multiselect(key="status_filter").set_value(["running"]).run()
    assert list(at.dataframe[0].value["Name"]) == [MAIN]
    at.multiselect(key="status_filter").set_value(["running", "stopped", "decided", "draft"]).run()
    at.text_input(key="search").set_value("welcome").run()
    assert list(at.dataframe[0].value["Name"]) == ["demo-welcome-coupon"]


def test_results_show_significance_charts_and_downloads(demo: Engine) -> None:
    at = open_page("results", "en", experiment=MAIN)
    table = at.dataframe[0].value
    assert len(table) == 8 and {"Variant", "Adj. p-value", "Abs. uplift [95% CI]"} <= set(table.columns)
    specs = [str(c.proto.spec) for c in at.get("vega_lite_chart")]
    assert any("strokeDash" in spec for spec in specs)  # the natural-rate rule
    rates = json.loads(at.get("vega_lite_chart")[0].proto.spec)
    ci, point, natural = rates["layer"]
    assert ci["mark"]["type"] == "rule" and ci["encoding"]["x2"]["field"] == "hi"  # 95% intervals
    assert point["encoding"]["x"]["field"] == "mean" and natural["encoding"]["x"]["field"] == "natural"
    forest = json.loads(at.get("vega_lite_chart")[1].proto.spec)
    assert forest["layer"][2]["encoding"]["x"]["field"] == "zero"  # the no-effect line
    content = texts(at)
    assert "retained_7d" not in content and "7-day retention" in content  # recall quality, translated
    assert [b.proto.label for b in at.get("download_button")] == [
        "Download report (Markdown)", "Download table (CSV)", "Download report (JSON)"]
    assert any("Sequential monitoring" in s.value for s in at.subheader)  # the test is running
    assert any('"day"' in spec and "area" in spec for spec in specs)  # its daily always-valid intervals


def test_results_warn_on_sample_ratio_mismatch(demo: Engine, tmp_path: Path) -> None:
    path = tmp_path / "lopsided.csv"
    path.write_text("arm,returned\n" + "A,1\n" * 900 + "B,0\n" * 100, encoding="utf-8")
    import_results(demo, path, experiment="lopsided", variant_column="arm", control="A", metrics=["returned"],
                   shares={"A": 0.5, "B": 0.5}, actor=cli_actor())
    at = open_page("results", "en", experiment="lopsided")
    assert at.error and "Sample ratio mismatch" in at.error[0].value
    listed = open_page("experiments", "zh").dataframe[0].value.set_index("名称")
    assert listed.loc["lopsided", "目标人群"] == "外部导入" and listed.loc[MAIN, "状态"] == "进行中"


def test_design_shows_sample_size_duration_cost_and_checks(demo: Engine) -> None:
    at = open_page("design", "en")
    assert any(m.label == "Customers needed (total)" for m in at.metric)
    assert any(m.label == "Expected cost" and m.value.startswith("¥") for m in at.metric)
    assert any("days" in e.value for e in [*at.success, *at.warning])
    assert any("passes" in m.value for m in at.markdown)  # the default templates pass the message checks


def test_design_saves_a_draft_and_rejects_a_bad_one(demo: Engine) -> None:
    at = open_page("design", "en")
    at.text_input(key="design_name").set_value("browserless-draft")
    at.button(key="save_draft").click().run()
    assert not at.exception
    assert any("browserless-draft" in s.value for s in at.success), [e.value for e in at.error]
    assert "browserless-draft" in open_page("experiments", "en").dataframe[0].value["Name"].tolist()

    bad = pd.DataFrame([dict(name="late_sms", channel="sms", coupon=5.0, send_hour=22, weight=1.0,
                             template="【好物商城】{coupon}元礼金 回TD退订")])
    at = open_page("design", "en", design_variants=bad)
    at.text_input(key="design_name").set_value("bad-draft")
    at.button(key="save_draft").click().run()
    assert at.error and "quiet hours" in at.error[0].value and "variants[1].send_hour" in at.error[0].value


def a_zone_at_midday() -> str:
    """A time zone in which it is now 12:xx. Customers assigned after a variant's send hour get their first
    touch the next day; the default design's touches are at 10:00 and 20:00, so from 20:00 Asia/Shanghai on
    (12:00 UTC) nobody launched now would be due today."""
    offset = (12 - datetime.now(UTC).hour + 12) % 24 - 12  # UTC+offset, from -12 to +11
    return f"Etc/GMT{-offset:+d}" if offset else "UTC"  # the Etc zones' signs are POSIX's: Etc/GMT+1 is UTC-1


def test_design_launch_asks_for_confirmation_then_send_lists_are_built_on_a_click(
        demo: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECALL_TIMEZONE", a_zone_at_midday())  # the 20:00 touches are due today, whenever this runs
    add_customers(demo, [f"N{i:04d}" for i in range(300)])  # the demo's customers are all held by its campaign
    at = open_page("design", "en", role="operator")
    at.text_input(key="design_name").set_value("launch-me")
    at.date_input(key="design_start").set_value(local_day(utcnow()))  # its first touches are due today
    at.button(key="save_draft").click().run()
    at.button(key="launch").click().run()
    confirm = next(w.value for w in at.warning if "Launch “launch-me”" in w.value)
    assert "assigns 300 customers (4,300 eligible, 4,000 of them held by other experiments" in confirm
    assert count(demo, Assignment, Experiment.name == "launch-me") == 0  # nothing until confirmed
    at.button(key="launch_confirmed").click().run()
    assert any("Launched" in s.value for s in at.success), [e.value for e in at.error]
    assert count(demo, Assignment, Experiment.name == "launch-me") == 300

    at = open_page("design", "en", role="operator")
    assert not at.get("download_button")  # drawing the page builds nothing
    sends = count(demo, Send)
    at.selectbox(key="sendlist_choice").set_value("launch-me").run()
    at.button(key="sendlist_build").click().run()
    assert count(demo, Send) > sends
    assert [b.proto.label for b in at.get("download_button")] == ["Download send lists (ZIP)"]
    with session_scope(demo) as session:
        actions = [(e.actor, e.action, e.target) for e in entries(session, limit=5)]
    assert ("operator", "send_list", "launch-me") in actions and ("operator", "launch", "launch-me") in actions
    assert ("operator", "experiment_create", "launch-me") in actions


def test_settings_show_the_database_masked(demo: Engine, database_url: str) -> None:
    at = open_page("settings", "en")
    assert at.code and at.code[0].value == masked_url(database_url)
    costs = at.dataframe[0].value.set_index("Channel")["Unit cost"]
    assert costs["sms"] == "¥0.05" and costs["phone"] == "¥2.00"  # shown, not editable
    assert masked_url("postgresql+psycopg://recall:s3cret@db:5432/prod") == "postgresql+psycopg://recall:***@db:5432/prod"
    at.radio(key="settings_lang").set_value("zh").run()
    assert at.title[0].value == "设置"


def test_empty_database_explains_what_to_do(engine: Engine) -> None:
    add_role_users(engine)
    st.cache_data.clear()
    st.cache_resource.clear()
    at = open_page("overview", "en")
    assert at.info and "No experiments yet" in at.info[0].value
    assert any("recall demo" in m.value for m in at.markdown)


def test_phone_numbers_are_masked() -> None:
    assert mask_phone("客户 13812345678 已回流") == "客户 138****5678 已回流"
    assert mask_phone("订单 202612010000123") == "订单 202612010000123"


def test_chart_builders(demo: Engine) -> None:
    report = build_report(demo, MAIN)
    frame = charts.variant_rate_frame(report, "returned")
    assert frame["is_control"].tolist() == [True] + [False] * 8
    assert (frame["lo"] <= frame["mean"]).all() and (frame["mean"] <= frame["hi"]).all()
    first = next(c for c in report.comparisons if c.metric == "returned")
    lo, hi = proportion_confint(round(first.variant_mean * first.n), first.n, method="wilson")
    assert frame.iloc[1][["lo", "hi"]].tolist() == pytest.approx([lo, hi])
    spec = charts.variant_rates(report, "returned").to_dict()
    assert len(spec["layer"]) == 3 and spec["layer"][2]["mark"]["strokeDash"] == [6, 4]
    forest = charts.uplift_frame(report, "returned")
    assert forest["uplift"].tolist() == pytest.approx([c.abs_uplift for c in report.comparisons
                                                       if c.metric == "returned"])
    assert len(charts.uplift_frame(report, "returned", segment="cohort=")) > 0

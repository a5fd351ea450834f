"""The Overview and Results pages for their audiences (issue 12, item 4), the language kept across
pages and reloads, and empty experiments everywhere, with one demo database for the module."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import datetime

import pandas as pd
import pyarrow as pa
import pytest
import streamlit as st
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from analysis import charts
from analysis.render import decision_text
from analysis.report import build_report
from cli import app as cli
from experiments import lifecycle
from experiments.access import Actor, Role, cli_actor
from experiments.audit import entries
from experiments.db import make_engine, session_scope
from experiments.demo import MAIN, TARGETING, build_demo
from experiments.importer import import_results
from experiments.notes import notes
from experiments.store import get_experiment
from tests.conftest import fresh_database
from tests.helpers import AS_OF, add_customers, example_spec, store_spec
from tests.test_app import APP, PAGES, add_role_users, open_page, texts
from views.auth import SESSION, session_record

TODAY = datetime(2026, 11, 23, 4, 0)
DEMO = [MAIN, "demo-welcome-coupon", "demo-dormant-push-vs-sms", TARGETING]
EMPTY = ["no-outcomes-yet", "tiny-import"]  # assigned but nothing happened yet; an import of 4 rows
GRAY = 2  # streamlit's Metric.MetricColor.GRAY: delta_color="off"
NAN = re.compile(r"\b(nan|NaN|inf)\b|∞")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The demo, one account per role, and two empty experiments; also the CLI's and the app's database."""
    folder = tmp_path_factory.mktemp("pages")
    url = fresh_database(folder)
    engine = make_engine(url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECALL_DATABASE_URL", url)
        patch.setenv("RECALL_NO_DEMO", "1")
        build_demo(engine, customers=4_000, today=TODAY)
        add_role_users(engine)
        add_customers(engine, [f"E{i:03d}" for i in range(60)])
        store_spec(engine, example_spec(name=EMPTY[0]))
        lifecycle.launch(engine, EMPTY[0], actor=cli_actor(), as_of=AS_OF)
        tiny = folder / "tiny.csv"
        tiny.write_text("arm,returned\nA,0\nA,1\nB,0\nB,0\n", encoding="utf-8")
        import_results(engine, tiny, experiment=EMPTY[1], variant_column="arm", control="A", metrics=["returned"],
                       shares={"A": 0.5, "B": 0.5}, actor=cli_actor())
        st.cache_data.clear()
        st.cache_resource.clear()
        yield engine
        st.cache_data.clear()
        st.cache_resource.clear()
    engine.dispose()


def verdict_box(at: AppTest) -> str:
    """The first coloured box of the Results page: the verdict."""
    boxes = [e.value for kind in ("success", "info", "warning", "error") for e in at.get(kind)
             if e.value.startswith(("结论", "Verdict"))]
    assert boxes, "no verdict box"
    return boxes[0]


# --------------------------------------------------------------------------- Results


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_results_start_with_the_verdict_its_reasons_and_the_proven_best_variant(demo: Engine, lang: str) -> None:
    report = build_report(demo, MAIN)
    at = open_page("results", lang, role="analyst", experiment=MAIN)
    assert verdict_box(at).endswith(decision_text(report.verdict, lang))
    content = texts(at)
    words = {"zh": ("分组比例与设计一致", "校正后 p"), "en": ("The split matches the design", "adjusted p")}[lang]
    assert all(w in content for w in words)
    best = next(m for m in at.metric if m.label in ("最佳分组", "Best variant"))
    assert best.value == report.verdict.variant  # shipped: adjusted-significant, so named
    assert ("个百分点" if lang == "zh" else " pt") in content and "%" not in at.dataframe[0].value.iloc[0, 4]
    assert [t.proto.label for t in at.tabs][:2] == (["效果", "每日走势"] if lang == "zh" else ["Effects", "Day by day"])
    assert len(at.tabs) == 8  # laid out in tabs, not one long scroll


def test_best_variant_is_unproven_without_adjusted_significance(demo: Engine) -> None:
    report = build_report(demo, "demo-dormant-push-vs-sms")
    assert not any(c.significant for c in report.comparisons if c.metric == "returned")
    at = open_page("results", "en", role="analyst", experiment="demo-dormant-push-vs-sms")
    best = next(m for m in at.metric if m.label == "Best variant")
    assert best.value == "No proven best variant" and not best.proto.delta
    assert any("(unproven)" in c.value for c in at.caption)


def test_results_options_are_the_clis(demo: Engine) -> None:
    at = open_page("results", "en", role="analyst", experiment=MAIN)
    at.selectbox(key="results_correction").set_value("bonferroni").run()
    at.toggle(key="results_bayesian").set_value(True).run()
    at.toggle(key="results_cuped").set_value(True).run()
    assert not at.exception
    assert any(c.value.endswith("· bonferroni") for c in at.caption)
    cli_report = build_report(demo, MAIN, correction="bonferroni", bayesian=True, cuped=True, sequential=True)
    chances = next(f.value for f in at.dataframe if "Chance to beat control" in f.value.columns)
    assert len(chances) == len(cli_report.bayesian)
    assert verdict_box(at).endswith(decision_text(cli_report.verdict, "en"))


def test_the_url_carries_the_experiment_and_the_language(demo: Engine) -> None:
    at = AppTest.from_file(APP, default_timeout=90)
    at.session_state[SESSION] = session_record(Actor("analyst", Role.ANALYST, "app"))
    at.query_params["lang"] = "en"
    at.run()
    at.query_params["experiment"] = "demo-welcome-coupon"
    at.switch_page("views/results.py").run()
    assert not at.exception and at.title[0].value == "Results"
    assert at.selectbox(key="results_exp").value == "demo-welcome-coupon"
    assert at.query_params["experiment"] == "demo-welcome-coupon" and at.query_params["lang"] == "en"
    at.selectbox(key="results_exp").set_value(MAIN).run()
    assert at.query_params["experiment"] == MAIN


@pytest.mark.parametrize("page", PAGES)
def test_the_language_stays_across_pages_and_reloads(demo: Engine, page: str) -> None:
    at = open_page(page, "zh")
    at.sidebar.selectbox(key="lang").set_value("en").run()
    assert at.query_params["lang"] == "en"
    english = at.title[0].value
    assert not re.search(r"[\u4e00-\u9fff]", english)
    # A reload is a new session: only the URL remembers the language.
    again = AppTest.from_file(APP, default_timeout=90)
    again.session_state[SESSION] = session_record(Actor("admin", Role.ADMIN, "app"))
    again.query_params["lang"] = "en"
    again.run()
    if page != "overview":
        again.switch_page(f"views/{page}.py").run()
    assert not again.exception and again.title[0].value == english


def test_segment_labels_dimensions_and_channels_in_chinese(demo: Engine) -> None:
    at = open_page("results", "zh", role="analyst", experiment=MAIN)
    assert at.selectbox(key="results_dim").options == ["目标人群", "RFM 分层", "价值分层"]
    segments = next(f.value for f in at.dataframe if "分群" in f.value.columns)
    assert "全部客户" not in set(segments["分群"]) and not any("=" in s for s in segments["分群"])
    assert not any(re.fullmatch(r"[a-z_0-9]+", s) for s in segments["分群"])
    overview = open_page("overview", "zh", role="analyst")
    channels = next(f.value for f in overview.dataframe if "渠道" in f.value.columns)
    assert {"短信", "App 推送"} <= set(channels["渠道"]) and not {"sms", "push", "None"} & set(channels["渠道"])


def test_notes_are_added_on_a_click_audited_and_shown_newest_first(demo: Engine) -> None:
    at = open_page("results", "en", role="analyst", experiment="demo-welcome-coupon")
    for text in ("first look: too early, called 13812345678", "second look: still waiting"):
        at.text_area(key="note_text").set_value(text)
        at.button(key="note_add").click().run()
        assert not at.exception and at.success[0].value == "Note added."
    at.text_area(key="note_text").set_value("   ")
    at.button(key="note_add").click().run()
    assert at.error[0].value == "A note cannot be empty."
    assert [n.text for n in notes(demo, "demo-welcome-coupon")] == [
        "second look: still waiting", "first look: too early, called 13812345678"]
    shown = [m.value for m in at.markdown if "look:" in m.value]
    assert "second look" in shown[0] and "first look" in shown[1]
    assert "138****5678" in shown[1] and "13812345678" not in shown[1]  # a phone number is never shown in full
    with session_scope(demo) as session:
        assert [(e.actor, e.target) for e in entries(session, limit=10) if e.action == "note_add"][:2] == [
            ("analyst", "demo-welcome-coupon")] * 2
    viewer = open_page("results", "en", role="viewer", experiment="demo-welcome-coupon")
    assert not viewer.text_area and any("second look" in m.value for m in viewer.markdown)


# --------------------------------------------------------------------------- Overview


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_overview_totals_count_only_proven_effects_and_cards_match_headlines(demo: Engine, lang: str) -> None:
    at = open_page("overview", lang, role="analyst")
    reports = {n: build_report(demo, n) for n in DEMO}
    proven = [(n, c) for n, r in reports.items() for c in r.comparisons if c.metric == "returned" and c.significant
              and c.abs_uplift > 0]
    assert proven and all(c.variant == reports[n].verdict.variant for n, c in proven)
    expected = sum(c.abs_uplift * c.n for _, c in proven)
    main_returns = sum(c.abs_uplift * c.n for n, c in proven if n == MAIN)
    label = "增量回流人数" if lang == "zh" else "Incremental returns"
    total = next(m for m in at.metric if m.label == label)
    value = float(total.value.replace(",", ""))
    # its 95% interval in the caption below it: the first on the page without a currency
    interval = next(c.value for c in at.caption if re.fullmatch(r"95%: \[-?[\d,]+, -?[\d,]+\]", c.value))
    lo, hi = (float(x.replace(",", "")) for x in re.findall(r"-?[\d,]+", interval.removeprefix("95%: ")))
    assert value == pytest.approx(round(expected)) and lo < value < hi
    caption = next(c.value for c in at.caption if ("合计只计入" in c.value or "Totals count only" in c.value))
    counted, variants = map(int, re.search(r"(\d+) (?:/|of) (\d+)", caption).groups())
    assert 1 <= counted < variants
    # The main campaign's card: the headline's numbers are the card's, and its ROI interval includes 0.
    card = next(m.value for m in at.markdown if m.value.startswith(f"**{MAIN}**"))
    assert decision_text(reports[MAIN].verdict, lang) in card and f"{main_returns:,.0f} [" in card
    roi = reports[MAIN].roi
    shipped = next(r for r in roi if r.variant == reports[MAIN].verdict.variant)
    assert shipped.roi_ci[0] < 0 < shipped.roi_ci[1]
    assert ("ROI 未经证实" if lang == "zh" else "ROI unproven") in card
    # No green arrow where nothing is proven: those deltas are marked unproven and drawn grey.
    deltas = [m.proto for m in at.metric if m.proto.delta and m.label in ("触达组回流率", "Recall rate (contacted)")]
    assert len(deltas) >= 3
    for m in deltas:
        unproven = "未经证实" in m.delta or "unproven" in m.delta
        assert (m.color == GRAY) == unproven, (m.delta, m.color)


def test_overview_trend_rollups_period_and_exports(demo: Engine) -> None:
    at = open_page("overview", "en", role="analyst")
    chart = next(c for c in at.get("vega_lite_chart")
                 if json.loads(c.proto.spec).get("encoding", {}).get("x", {}).get("field") == "month")
    rows = pd.concat([pa.ipc.open_stream(d.data.data).read_pandas() for d in chart.proto.datasets])
    months = sorted(set(rows["month"]))
    assert months == ["2026-09", "2026-10", "2026-11"]
    assert {f.value.columns[0] for f in at.dataframe} >= {"Channel", "Cohort"}
    assert [b.proto.label for b in at.get("download_button")] == ["Export table (CSV)", "Export chart (PNG)"]
    at.selectbox(key="period_en").set_value("30").run()
    assert not at.exception
    cards = [m.value for m in at.markdown if m.value.startswith("**")]
    assert any(MAIN in c for c in cards) and not any("demo-dormant-push-vs-sms" in c for c in cards)
    viewer = open_page("overview", "en", role="viewer")
    assert not viewer.get("download_button")  # exports are for analysts and above (audited)


def test_the_png_export_draws_the_chart() -> None:
    chart = charts.recall_vs_natural([dict(campaign="a", recall_rate=0.1, natural_rate=0.05)],
                                     recall_label="recall", natural_label="natural")
    assert charts.to_png(chart).startswith(b"\x89PNG")


# --------------------------------------------------------------------------- empty experiments, one verdict


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("page", ["overview", "results", "experiments"])
def test_empty_experiments_show_no_nan_or_inf(demo: Engine, page: str, lang: str) -> None:
    for name in EMPTY if page == "results" else [None]:
        at = open_page(page, lang, role="analyst", **({"experiment": name} if name else {}))
        content = texts(at) + "\n".join(str(c.proto.delta) for c in at.metric)
        found = NAN.search(content)
        assert not found, content[max(0, found.start() - 200):found.end() + 50]
        if name == EMPTY[0]:  # no outcome yet: nothing to check the split against
            assert "matches the design" not in content and "分组比例与设计一致" not in content
        if name:
            assert verdict_box(at)


@pytest.mark.parametrize("name", DEMO + EMPTY)
def test_cli_json_and_results_page_give_one_verdict(demo: Engine, name: str) -> None:
    """The page monitors a running test sequentially by default; the CLI does with --sequential."""
    with session_scope(demo) as session:
        running = get_experiment(session, name).status.value == "running"
    options = ["--sequential"] if running else []
    runner = CliRunner()
    as_json = runner.invoke(cli, ["report", name, "--format", "json", *options])
    markdown = runner.invoke(cli, ["report", name, "--lang", "en", *options])
    assert as_json.exit_code == 0 and markdown.exit_code == 0, as_json.output + markdown.output
    data = json.loads(as_json.stdout)
    at = open_page("results", "en", role="analyst", experiment=name)
    headline = verdict_box(at).removeprefix("Verdict: ")
    report = build_report(demo, name, sequential=running)
    assert data["verdict"]["decision"] == report.verdict.decision and data["verdict"]["variant"] == report.verdict.variant
    assert headline == decision_text(report.verdict, "en")
    assert f"## Verdict: {headline}" in markdown.stdout
    assert not NAN.search(json.dumps(data["verdict"]))


# --------------------------------------------------------------------------- charts


def test_charts_fit_their_rows_have_legends_and_draw_points_as_points(demo: Engine) -> None:
    report = build_report(demo, "demo-welcome-coupon")  # two contacted arms
    legend = {"control": "control", "significant": "sig", "not significant": "n.s."}
    rates = charts.variant_rates(report, "returned", legend=legend).to_dict()
    assert rates["height"] >= 160 and rates["layer"][0]["encoding"]["color"]["legend"] is not None
    forest = charts.uplift_forest(report, "returned", label="Return rate", points="pt").to_dict()
    x = forest["layer"][0]["encoding"]["x"]
    assert x["title"] == "Return rate (pt)" and x["axis"]["format"] == "+.1f"
    frame = charts.uplift_frame(report, "returned")
    lo, hi = x["scale"]["domain"]
    assert lo < min(frame["lo"].min() * 100, 0) and hi > max(frame["hi"].max() * 100, 0)  # room at both ends
    looks = [type("Look", (), dict(day=d, variant=v, abs_uplift=0.01, ci_lo=-0.02, ci_hi=0.04))
             for d in (1, 2) for v in ("a", "b", "c")]
    path = charts.monitoring_path(looks, label="rate").to_dict()
    assert path["facet"]["field"] == "variant" and path["columns"] == 4  # one panel (one band) per variant
    assert path["spec"]["layer"][0]["encoding"]["y"]["title"] == "rate (pt)"
    assert math.isclose(path["datasets"][next(iter(path["datasets"]))][0]["uplift"], 1.0)


# --------------------------------------------------------------------------- last: changes the database


def test_operators_stop_decide_and_roll_out_after_a_confirmation(demo: Engine) -> None:
    name = "lifecycle-in-the-app"
    add_customers(demo, [f"L{i:03d}" for i in range(40)])
    store_spec(demo, example_spec(name=name))
    lifecycle.launch(demo, name, actor=cli_actor(), as_of=AS_OF)
    st.cache_data.clear()
    analyst = open_page("results", "en", role="analyst", experiment=name)
    assert "stop" not in [b.key for b in analyst.button]  # deciding is for operators and admins
    at = open_page("results", "en", role="operator", experiment=name)
    at.text_input(key="stop_reason").set_value("budget moved")
    at.button(key="stop").click().run()
    assert any("Confirm stopping" in w.value for w in at.warning)
    assert lifecycle_status(demo, name) == "running"  # nothing until confirmed
    at.button(key="stop_confirmed").click().run()
    assert lifecycle_status(demo, name) == "stopped"
    variant = next(v.name for v in build_report(demo, name).variants if not v.is_control)
    at.radio(key="decide_choice").set_value(variant)
    at.button(key="decide").click().run()
    at.button(key="decide_confirmed").click().run()
    assert "needs a written reason" in at.error[0].value and lifecycle_status(demo, name) == "stopped"
    at.radio(key="decide_choice").set_value(variant)
    at.text_area(key="decide_reason").set_value("cheapest arm, same recall")
    at.button(key="decide").click().run()
    at.button(key="decide_confirmed").click().run()
    assert lifecycle_status(demo, name) == "decided"
    at.button(key="roll_out").click().run()
    at.button(key="roll_out_confirmed").click().run()
    assert lifecycle_status(demo, name) == "rolled_out"
    with session_scope(demo) as session:
        done = [(e.action, e.details.get("reason")) for e in entries(session, limit=20) if e.target == name
                and e.actor == "operator"]
    assert ("stop", "budget moved") in done and ("decide", "cheapest arm, same recall") in done
    assert ("roll_out", None) in done


def lifecycle_status(engine: Engine, name: str) -> str:
    with session_scope(engine) as session:
        return get_experiment(session, name).status.value


def test_results_opens_on_the_running_experiment_not_the_newest(demo: Engine) -> None:
    at = open_page("results", "en", role="analyst")
    box = at.selectbox(key="results_exp")
    assert box.options[0] != MAIN  # the newest experiment is listed first…
    assert box.value == MAIN  # …but the page opens on the running one, whose decision is still to be made
    assert at.query_params["experiment"] == [MAIN] or at.query_params["experiment"] == MAIN


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_overview_says_the_winning_arm_breaches_a_guardrail(demo: Engine, lang: str) -> None:
    """A stop-for-harm verdict on the arm that brings most customers back: the card says that arm wins on
    returns and breaches a guardrail, never "no variant beats the natural return". The verdict comes from
    a stored run (how the app reads recall report's runs) of the real report with that verdict."""
    from dataclasses import replace

    from analysis.runs import data_version, options_key
    from analysis.verdict import STOP_FOR_HARM, Verdict
    from experiments.models import AnalysisRun
    from experiments.store import utcnow

    report = build_report(demo, MAIN)
    winner = report.verdict.variant
    assert any(c.variant == winner and c.metric == "returned" and c.significant and c.abs_uplift > 0
               for c in report.comparisons)
    harmful = replace(report, verdict=Verdict(STOP_FOR_HARM, winner, list(report.verdict.reasons)))
    with session_scope(demo) as session:
        version = data_version(session.connection())
        run = AnalysisRun(experiment_id=get_experiment(session, MAIN).id, created_at=utcnow(), data_version=version,
                          options=options_key({}), report_json=harmful.to_json(indent=None))
        session.add(run)
        session.flush()
        run_id = run.id
    try:
        st.cache_data.clear()
        at = open_page("overview", lang, role="analyst")
        card = next(m.value for m in at.markdown if m.value.startswith(f"**{MAIN}**"))
        assert decision_text(harmful.verdict, lang) in card
        wins = ("显著提升了回流，但触犯了护栏指标" if lang == "zh"
                else "brings significantly more customers back but breaches a guardrail")
        assert f"{winner} {wins}" in card
        assert ("尚无分组显著优于自然回流" if lang == "zh" else "No variant beats the natural return yet") not in card
    finally:
        with session_scope(demo) as session:
            session.delete(session.get(AnalysisRun, run_id))
        st.cache_data.clear()

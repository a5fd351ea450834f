"""The demo campaign as a factorial: its report has main effects, interactions, ROI per level and the
recommendation, in JSON, in Markdown (zh and en), from the CLI, in charts and on the Results page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import Engine
from typer.testing import CliRunner

from analysis import charts
from analysis.render import recommendation_lines, render_markdown
from analysis.report import Report, build_report
from cli import app
from experiments.db import make_engine
from experiments.demo import MAIN, build_demo
from tests.conftest import fresh_database
from tests.test_app import add_role_users, open_page

TODAY = datetime(2026, 11, 23, 4, 0)
APP = str(Path(__file__).resolve().parents[1] / "app.py")
FACTORS = {"coupon": ["5", "10"], "wording": ["lively", "professional"], "send_hour": ["10", "20"]}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One demo database for the module (the tests only read it); also the CLI's and the app's."""
    url = fresh_database(tmp_path_factory.mktemp("factorial"))
    engine = make_engine(url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECALL_DATABASE_URL", url)
        patch.setenv("RECALL_NO_DEMO", "1")
        build_demo(engine, customers=4_000, today=TODAY)
        add_role_users(engine)
        st.cache_data.clear()
        st.cache_resource.clear()
        yield engine
        st.cache_data.clear()
        st.cache_resource.clear()
    engine.dispose()


def test_the_demo_report_has_main_effects_interactions_and_a_recommendation(demo: Engine) -> None:
    report = build_report(demo, MAIN)
    assert report.factorial is not None and report.factorial.factors == FACTORS
    metrics = list(dict.fromkeys(c.metric for c in report.comparisons if c.kind != "ratio"))
    assert [(e.factor, e.level, e.reference) for e in report.factors if e.metric == "returned"] == [
        ("coupon", "10", "5"), ("wording", "professional", "lively"), ("send_hour", "20", "10")]
    assert len(report.factors) == 3 * len(metrics) and len(report.interactions) == 3 * len(metrics)
    # The factors' family is its own: Holm over the effects, not over the cells.
    from analysis.corrections import adjust_p_values
    family = [*report.factors, *report.interactions]
    assert [e.p_value_adjusted for e in family] == pytest.approx(adjust_p_values([e.p_value for e in family]),
                                                                  nan_ok=True)
    # A main effect is the mean of the level's four cells minus the reference's, from the cells' own means.
    means = {c.variant: c.variant_mean for c in report.comparisons if c.metric == "returned"}
    coupon = next(e for e in report.factors if e.metric == "returned" and e.factor == "coupon")
    level = sum(m for v, m in means.items() if v.startswith("c10_")) / 4
    reference = sum(m for v, m in means.items() if v.startswith("c5_")) / 4
    assert coupon.abs_effect == pytest.approx(level - reference)
    assert {(r.factor, r.level) for r in report.factor_roi} == {(f, lv) for f, levels in FACTORS.items() for lv in levels}
    assert all(r.cost_per_customer > 0 for r in report.factor_roi)
    subjects = {(p.subject, p.basis) for p in report.recommendation}
    assert {("cell", "rate"), ("cell", "roi"), ("coupon", "rate"), ("coupon", "roi")} <= subjects
    for p in report.recommendation:
        assert p.verdict in ("clear", "leading", "depends")
        assert p.verdict != "clear" or p.lead_ci[0] > 0  # never a winner whose adjusted interval includes 0


def test_the_json_report_carries_factors_and_interactions_and_reads_back(demo: Engine) -> None:
    report = build_report(demo, MAIN)
    data = json.loads(report.to_json())
    assert set(data["factors"][0]) >= {"factor", "level", "reference", "metric", "abs_effect", "abs_ci", "p_value",
                                       "p_value_adjusted"}
    assert set(data["interactions"][0]) >= {"factors", "levels", "metric", "abs_effect", "abs_ci", "p_value",
                                            "p_value_adjusted"}
    assert data["interactions"][0]["factors"] == ["coupon", "wording"]
    assert data["factorial"]["cells"]["c10_lively_20h"] == {"coupon": "10", "wording": "lively", "send_hour": "20"}
    again = Report.from_dict(data)
    assert again.factors == report.factors and again.interactions == report.interactions
    assert again.recommendation == report.recommendation and again.factorial == report.factorial
    # Reports stored before factorial designs read back without them.
    old = {k: v for k, v in data.items() if k not in ("factorial", "factors", "interactions", "factor_roi",
                                                      "recommendation")}
    assert Report.from_dict(old).factorial is None and Report.from_dict(old).factors == []


def test_recall_report_shows_the_main_effects_in_both_languages(demo: Engine) -> None:
    runner = CliRunner()
    english = runner.invoke(app, ["report", MAIN, "--lang", "en"])
    assert english.exit_code == 0, english.output
    assert "## Factorial analysis: main effects and interactions" in english.output
    assert "| Return rate (returned) | coupon | 10 | 5 |" in english.output
    assert "coupon × send_hour" in english.output and "### Recommendation" in english.output
    assert "per customer" in english.output  # the cost of ¥10 over ¥5
    chinese = runner.invoke(app, ["report", MAIN])
    assert "析因分析" in chinese.output and "主效应" in chinese.output and "建议" in chinese.output


def test_a_report_without_factors_has_no_factorial_section(demo: Engine) -> None:
    report = build_report(demo, "demo-welcome-coupon")
    assert report.factorial is None and report.factors == [] and report.recommendation == []
    assert "Factorial" not in render_markdown(report, "en")


def test_charts_of_main_effects_and_interactions(demo: Engine) -> None:
    report = build_report(demo, MAIN)
    frame = charts.main_effects_frame(report, "returned")
    assert list(frame.factor) == ["coupon", "coupon", "wording", "wording", "send_hour", "send_hour"]
    coupon = next(e for e in report.factors if e.metric == "returned" and e.factor == "coupon")
    assert frame.loc[1, "mean"] - frame.loc[0, "mean"] == pytest.approx(coupon.abs_effect)
    spec = charts.main_effects(report, "returned", label="回流率", natural_label="自然回流率").to_dict()
    assert spec["facet"]["column"]["field"] == "factor" and "回流率" in json.dumps(spec, ensure_ascii=False)
    lines = charts.interaction_frame(report, "returned", "coupon", "send_hour")
    means = {c.variant: c.variant_mean for c in report.comparisons if c.metric == "returned"}
    assert len(lines) == 4
    assert lines[(lines.across == "10") & (lines.line == "20")]["mean"].item() == pytest.approx(
        (means["c10_lively_20h"] + means["c10_professional_20h"]) / 2)
    spec = charts.interaction_lines(report, "returned", "coupon", "send_hour", label="Return rate").to_dict()
    assert spec["encoding"]["color"]["field"] == "line" and spec["encoding"]["x"]["title"] == "coupon"


@pytest.mark.parametrize("lang, title, recommendation", [("en", "Factorial analysis", "Recommendation"),
                                                         ("zh", "析因分析", "建议")])
def test_the_results_page_shows_the_factorial_section(demo: Engine, lang: str, title: str, recommendation: str) -> None:
    at = open_page("results", lang, role="analyst", experiment=MAIN)
    assert any(title in s.value for s in at.subheader)
    text = "\n".join(m.value for m in at.markdown)
    assert recommendation in text
    assert any(line in text for line in recommendation_lines(build_report(demo, MAIN), lang))
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    assert any(s.get("facet", {}).get("column", {}).get("field") == "factor" for s in specs)  # main effects
    assert any(s.get("encoding", {}).get("color", {}).get("field") == "line" for s in specs)  # interaction
    at.selectbox(key="factorial_pair").set_value("send_hour × wording").run()
    assert not at.exception
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    assert any(s.get("encoding", {}).get("x", {}).get("title") == "send_hour" for s in specs)

"""One verdict per experiment: its rules, on the demo's campaigns and an empty experiment, and the same
verdict in the Report, the JSON and the Markdown the CLI prints."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from datetime import datetime
from pathlib import Path

import pytest
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize
from typer.testing import CliRunner

from analysis.quality import QualityComparison
from analysis.quality import verdict as quality_verdict
from analysis.render import REASONS, decision_text, reason_text, render_markdown
from analysis.report import Report, build_report
from analysis.verdict import (
    DECISIONS,
    KEEP_RUNNING,
    NO_EFFECT,
    NOT_ANALYSABLE,
    PLANNED_MDE_ABS,
    SHIP,
    STOP_FOR_HARM,
    Horizon,
    Reason,
    Verdict,
    customers_needed,
    decide,
)
from cli import app
from experiments.db import make_engine, session_scope
from experiments.demo import MAIN, build_demo
from experiments.store import create_experiment
from tests.conftest import fresh_database
from tests.helpers import example_spec
from tests.test_factorial_import import factorial_rows, import_factorial, write_factorial

TODAY = datetime(2026, 11, 23, 4, 0)
EMPTY = "winback-coupon-2026-12"
IMPORTED_FACTORIAL = "imported-factorial"
NOT_A_NUMBER = re.compile(r"\b(nan|inf|infinity)\b", re.IGNORECASE)
runner = CliRunner()


@dataclasses.dataclass(frozen=True)
class Rendered:
    report: Report
    json: dict
    markdown: dict[str, str]  # lang → the CLI's Markdown


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    """The demo's campaigns and an empty draft, each reported once by the library and by the CLI
    (all database work happens here, so the tests below read plain data)."""
    url = fresh_database(tmp_path_factory.mktemp("verdict"))
    engine = make_engine(url)
    summary = build_demo(engine, customers=4_000, today=TODAY)
    with session_scope(engine) as session:
        create_experiment(session, example_spec())
    rows = factorial_rows()  # factorial results run elsewhere, imported with --factors
    import_factorial(engine, write_factorial(tmp_path_factory.mktemp("imported") / "factorial.csv", rows), rows,
                     name=IMPORTED_FACTORIAL)
    out = {}
    for name in [*summary.experiments, EMPTY, IMPORTED_FACTORIAL]:
        sequential = name == MAIN
        flags = ["--sequential"] if sequential else []

        def cli(*args: str) -> str:
            result = runner.invoke(app, ["report", name, "--db", url, *flags, *args])  # noqa: B023
            assert result.exit_code == 0, result.output
            return result.output

        out[name] = Rendered(build_report(engine, name, sequential=sequential), json.loads(cli("--format", "json")),
                             {lang: cli("--lang", lang) for lang in ("zh", "en")})
    engine.dispose()
    return out


def primary(report: Report, variant: str):  # noqa: ANN201 - a Comparison
    return report.comparison(variant, report.primary_metric)


def test_every_demo_verdict_follows_the_rules(demo: dict[str, Rendered]) -> None:
    for name, rendered in demo.items():
        report = rendered.report
        verdict = report.verdict
        assert verdict is not None and verdict.decision in DECISIONS, name
        assert verdict.reasons, name
        if verdict.decision == SHIP:
            c = primary(report, verdict.variant)
            assert c.significant and c.abs_uplift > 0 and c.abs_ci_adjusted[0] > 0
            assert not any(g.breached for g in report.guardrails if g.variant == verdict.variant)
    # The main campaign's ¥10 arms have large true effects: with 4,000 customers one is shipped, the best
    # of the significant ones, and the monitoring has crossed its boundary.
    main = demo[MAIN].report
    assert main.verdict.decision == SHIP
    winners = [c for c in main.comparisons if c.metric == main.primary_metric and c.significant and c.abs_uplift > 0
               and not any(g.breached for g in main.guardrails if g.variant == c.variant)]
    assert main.verdict.variant == max(winners, key=lambda c: c.abs_uplift).variant
    assert next(s for s in main.sequential if s.variant == main.verdict.variant).may_act


def test_finished_campaigns_without_significance_never_ship(demo: dict[str, Rendered]) -> None:
    for name in ("demo-dormant-push-vs-sms", "demo-welcome-coupon"):
        report = demo[name].report
        if not any(c.significant for c in report.comparisons if c.metric == report.primary_metric):
            assert report.verdict.decision in (KEEP_RUNNING, NO_EFFECT), name
            codes = [r.code for r in report.verdict.reasons]
            assert "not_significant" in codes
            if report.verdict.customers_needed:
                assert "underpowered" in codes


def test_an_empty_experiment_is_not_analysable_and_says_no_data(demo: dict[str, Rendered]) -> None:
    empty = demo[EMPTY]
    assert empty.report.verdict == Verdict(NOT_ANALYSABLE, None, [Reason("no_customers")])
    zh, en = empty.markdown["zh"], empty.markdown["en"]
    assert "暂无数据" in zh and "分组比例与设计一致" not in zh and "χ²" not in zh
    assert "No data yet" in en and "matches the design" not in en
    assert empty.json["srm"]["p_value"] is None and empty.json["srm"]["null_reason"] == "no customers assigned yet"
    for section in ("variants", "comparisons", "guardrails"):
        assert all(item.get("null_reason") for item in empty.json[section]), section


def test_no_nan_or_inf_in_any_markdown_or_json(demo: dict[str, Rendered]) -> None:
    for name, rendered in demo.items():
        for lang, text in rendered.markdown.items():
            assert not NOT_A_NUMBER.search(text), (name, lang, NOT_A_NUMBER.search(text))
        text = json.dumps(rendered.json)
        assert "NaN" not in text and "Infinity" not in text, name


def test_the_cli_markdown_and_json_give_the_report_s_verdict(demo: dict[str, Rendered]) -> None:
    for name, rendered in demo.items():
        verdict = rendered.report.verdict
        from_json = Report.from_dict(rendered.json).verdict
        assert (from_json.decision, from_json.variant, [r.code for r in from_json.reasons]) == \
            (verdict.decision, verdict.variant, [r.code for r in verdict.reasons]), name
        assert f"## 结论: {decision_text(verdict, 'zh')}" in rendered.markdown["zh"], name
        assert f"## Verdict: {decision_text(verdict, 'en')}" in rendered.markdown["en"], name
        for reason in verdict.reasons:
            assert reason_text(reason, "en") in rendered.markdown["en"], (name, reason.code)


def test_factorial_verdicts_name_the_best_cell_and_levels_in_every_format(demo: dict[str, Rendered]) -> None:
    """The designed demo campaign and the imported factorial alike: the verdict's reasons carry the
    recommendation, and the JSON and the Markdown (zh and en) say the same."""
    for name in (MAIN, IMPORTED_FACTORIAL):
        rendered = demo[name]
        reasons = [r for r in rendered.report.verdict.reasons if r.code.startswith("factorial_")]
        assert any(r.code.startswith("factorial_cell_rate_") for r in reasons), name
        from_json = [r for r in Report.from_dict(rendered.json).verdict.reasons if r.code.startswith("factorial_")]
        assert from_json == reasons, name
        for lang in ("zh", "en"):
            for reason in reasons:
                assert reason_text(reason, lang) in rendered.markdown[lang], (name, lang, reason.code)


def test_a_best_cell_that_breaches_a_guardrail_is_not_recommended_as_it_is(demo: dict[str, Rendered]) -> None:
    """The recommendation ranks cells by rate or ROI alone; a best cell that breaches a guardrail is
    flagged right after its pick (the main campaign's best cell by ROI made to breach one)."""
    report = demo[MAIN].report
    assert not any(r.code == "factorial_cell_guardrail" for r in report.verdict.reasons)  # none breaches
    best_roi = next(p.choice for p in report.recommendation if p.subject == "cell" and p.basis == "roi")
    breached = dataclasses.replace(report, verdict=None, guardrails=[
        dataclasses.replace(g, breached=True) if g.variant == best_roi else g for g in report.guardrails])
    reasons = decide(breached).reasons
    picks = [(i, r) for i, r in enumerate(reasons) if r.code.startswith(("factorial_cell_rate_", "factorial_cell_roi_"))]
    assert {r.variant for _, r in picks} >= {best_roi}
    for i, pick in picks:
        follows = reasons[i + 1]
        flagged = follows.code == "factorial_cell_guardrail" and follows.variant == pick.variant
        assert flagged == (pick.variant == best_roi), pick
    warned = next(r for r in reasons if r.code == "factorial_cell_guardrail")
    for lang, words in (("zh", "越过护栏"), ("en", "not to ship as it is")):
        text = reason_text(warned, lang)
        assert words in text and best_roi in text and "{" not in text


def test_json_puts_the_adjusted_interval_beside_the_adjusted_p(demo: dict[str, Rendered]) -> None:
    keys = list(demo[MAIN].json["comparisons"][0])
    assert keys[keys.index("p_value_adjusted") + 1] == "abs_ci_adjusted"
    assert "校正后区间" in demo[MAIN].markdown["zh"] and "Adj. interval" in demo[MAIN].markdown["en"]


def test_sequential_monitoring_never_may_act_on_an_arm_breaching_a_guardrail(demo: dict[str, Rendered]) -> None:
    report = demo[MAIN].report
    breached = {g.variant for g in report.guardrails if g.breached}
    assert breached, "the demo's lively wording should breach the unsubscribe guardrail"
    for s in report.sequential:
        assert s.guardrail_breached == (s.variant in breached)
        if s.variant in breached:
            assert not s.may_act
    assert "breaches a guardrail: do not act" in demo[MAIN].markdown["en"]


# The rules one by one, on the main campaign's report with one thing changed.


@pytest.fixture
def main(demo: dict[str, Rendered]) -> Report:
    return dataclasses.replace(demo[MAIN].report, verdict=None)


def with_primary(report: Report, variant: str, **changes: object) -> Report:
    return dataclasses.replace(report, comparisons=[
        dataclasses.replace(c, **changes) if (c.variant, c.metric) == (variant, report.primary_metric) else c
        for c in report.comparisons])


def test_a_sample_ratio_mismatch_blocks_every_decision(main: Report) -> None:
    broken = dataclasses.replace(main, srm=dataclasses.replace(main.srm, p_value=1e-6, mismatch=True))
    assert decide(broken).decision == NOT_ANALYSABLE and decide(broken).reasons[0].code == "srm_mismatch"


def test_no_ship_without_adjusted_significance(main: Report) -> None:
    unadjusted_only = dataclasses.replace(main, comparisons=[
        dataclasses.replace(c, significant=False, p_value_adjusted=max(c.p_value_adjusted, 0.2))
        for c in main.comparisons])
    verdict = decide(unadjusted_only, Horizon())
    assert verdict.decision != SHIP
    assert any(c.p_value < 0.05 for c in unadjusted_only.comparisons)  # the raw p-values alone would have


def test_a_guardrail_breach_moves_the_ship_to_another_variant_or_stops(main: Report) -> None:
    shipped = decide(main).variant
    harmful = dataclasses.replace(main, guardrails=[
        dataclasses.replace(g, breached=True) if g.variant == shipped else g for g in main.guardrails])
    verdict = decide(harmful)
    assert verdict.variant != shipped or verdict.decision == STOP_FOR_HARM
    assert any(r.code == "guardrail_breached" and r.variant == shipped for r in verdict.reasons)


def test_the_sequential_boundary_holds_a_ship_back(main: Report) -> None:
    waiting = dataclasses.replace(main, sequential=[dataclasses.replace(s, may_act=False) for s in main.sequential])
    verdict = decide(waiting, Horizon(days_left=3))
    assert (verdict.decision, verdict.days_needed) == (KEEP_RUNNING, 3)
    assert [r.code for r in verdict.reasons if not r.code.startswith("factorial_")][-1] == "sequential_not_crossed"


def test_a_variant_that_provably_loses_money_is_not_shipped(main: Report) -> None:
    shipped = decide(main).variant
    losing = dataclasses.replace(main, roi=[dataclasses.replace(r, roi=-0.5, roi_ci=(-0.8, -0.2))
                                            if r.variant == shipped else r for r in main.roi])
    verdict = decide(losing)
    assert verdict.variant != shipped
    assert any(r.code == "roi_negative" and r.variant == shipped for r in verdict.reasons)


def test_a_significantly_worse_variant_stops_the_test_for_harm(main: Report) -> None:
    nothing_better = dataclasses.replace(main, comparisons=[
        dataclasses.replace(c, significant=False) for c in main.comparisons])
    worse = with_primary(nothing_better, "c5_lively_10h", significant=True, abs_uplift=-0.03,
                         abs_ci_adjusted=(-0.05, -0.01))
    verdict = decide(dataclasses.replace(worse, guardrails=[dataclasses.replace(g, breached=False)
                                                           for g in worse.guardrails]))
    assert (verdict.decision, verdict.variant) == (STOP_FOR_HARM, "c5_lively_10h")


def test_customers_needed_follow_the_power_calculation(demo: dict[str, Rendered]) -> None:
    report = demo["demo-welcome-coupon"].report
    control = next(v for v in report.variants if v.is_control)
    contacted = [v for v in report.variants if not v.is_control]
    baseline = next(c for c in report.comparisons if c.metric == report.primary_metric).control_mean
    ratio = contacted[0].designed_share / control.designed_share
    effect = abs(proportion_effectsize(baseline + PLANNED_MDE_ABS, baseline))
    n_control = NormalIndPower().solve_power(effect, alpha=report.alpha / len(contacted), power=0.8, ratio=ratio)
    total = n_control / control.designed_share
    assigned = sum(v.n for v in report.variants)
    assert customers_needed(report) == max(0, math.ceil(total - assigned))
    assert customers_needed(report) > 0  # 4,000 demo customers are too few for one point


# Recall quality, and the words of every reason.


def quality(lo: float, hi: float, p: float = 0.2) -> list[QualityComparison]:
    return [QualityComparison("v", "retained_30d", "binary", 80, 90, 70, 85, 0.4, 0.4 + (lo + hi) / 2,
                              (lo + hi) / 2, (lo, hi), p)]


@pytest.mark.parametrize(("lo", "hi", "expected"), [
    (-0.138, 0.027, "unproven"),  # the issue's −5.5 pt [−13.8, +2.7] is not "kept a customer"
    (0.01, 0.09, "customer"),
    (-0.2, -0.03, "one_visit"),
    (math.nan, math.nan, "too_early"),
])
def test_quality_kept_a_customer_only_when_the_interval_excludes_zero(lo: float, hi: float, expected: str) -> None:
    assert quality_verdict(quality(lo, hi), "v") == expected


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_reason_has_words_and_missing_numbers_show_as_a_dash(lang: str) -> None:
    missing = {"p": None, "p_adjusted": math.nan, "metric": "returned", "kind": "binary", "uplift": None,
               "lo": math.nan, "hi": None, "difference": None, "upper": None, "margin": 0.01, "roi": None,
               "metrics": "unsubscribed, complained", "days": None, "customers": None, "mde": None}
    for code in REASONS[lang]:
        text = reason_text(Reason(code, "v", missing), lang)
        assert text and not NOT_A_NUMBER.search(text) and "{" not in text, (code, text)
    assert set(REASONS["zh"]) == set(REASONS["en"])
    for decision in DECISIONS:
        assert decision_text(Verdict(decision, "v", [], 10, 2), lang)


def test_hillstrom_has_a_verdict_and_no_nan_or_inf(hillstrom_report: Report) -> None:
    verdict = hillstrom_report.verdict
    significant = [c for c in hillstrom_report.comparisons
                   if c.metric == hillstrom_report.primary_metric and c.significant and c.abs_uplift > 0]
    assert significant and verdict.decision == SHIP
    assert verdict.variant == max(significant, key=lambda c: c.abs_uplift).variant
    for lang in ("zh", "en"):
        assert not NOT_A_NUMBER.search(render_markdown(hillstrom_report, lang=lang))
    text = hillstrom_report.to_json()
    assert "NaN" not in text and "Infinity" not in text


def test_the_verdict_survives_a_stored_report(demo: dict[str, Rendered], tmp_path: Path) -> None:
    report = demo[MAIN].report
    assert Report.from_dict(json.loads(report.to_json())).verdict.decision == report.verdict.decision
    older = {k: v for k, v in json.loads(report.to_json()).items() if k not in ("verdict", "previous_rollout")}
    assert Report.from_dict(older).verdict is None  # reports stored before the verdict still read


def test_better_arms_that_all_breach_a_guardrail_stop_the_test(main: Report) -> None:
    better = {c.variant for c in main.comparisons if c.metric == main.primary_metric and c.significant
              and c.abs_uplift > 0}
    harmful = dataclasses.replace(main, guardrails=[dataclasses.replace(g, breached=g.variant in better)
                                                    for g in main.guardrails])
    verdict = decide(harmful)
    assert verdict.decision == STOP_FOR_HARM and verdict.variant in better


def test_better_arms_that_all_lose_money_have_no_effect_worth_shipping(main: Report) -> None:
    calm = dataclasses.replace(main, guardrails=[dataclasses.replace(g, breached=False) for g in main.guardrails],
                               roi=[dataclasses.replace(r, roi=-0.5, roi_ci=(-0.8, -0.2)) for r in main.roi])
    verdict = decide(calm)
    assert verdict.decision == NO_EFFECT
    assert {r.code for r in verdict.reasons} >= {"significant", "roi_negative"}

"""Factorial results run elsewhere: `recall import results --factors`. The cells' levels are checked
(bad input names file, line and field, and leaves nothing behind), stored with the experiment, and
analysed exactly as statsmodels' OLS on the same per-customer rows; the verdict carries the
recommendation and reads the same in the report, its JSON, the CLI and the app."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from analysis.factorial import design_for
from analysis.render import reason_text, recommendation_lines
from analysis.report import Report, build_report
from cli import app
from experiments.access import cli_actor
from experiments.db import session_scope
from experiments.importer import ImportFailed, import_results
from experiments.models import Experiment
from tests.test_app import add_role_users, open_page, texts
from tests.test_factorial_analysis import ALPHA, _sum_coded
from tests.test_import import nothing_stored

LEVELS = {"coupon": ("5", "10"), "wording": ("lively", "professional"), "send_hour": ("10", "20")}
FACTORS = ",".join(LEVELS)
runner = CliRunner()


def factorial_rows(seed: int = 5, holdout: int = 1_500, per_cell: tuple[int, int] = (450, 750)) -> pd.DataFrame:
    """Per-customer rows of a 2×2×2 and its holdout: unequal cell sizes, a ¥10 coupon that adds 3 pt,
    20:00 that adds 1 pt, spend among the returned; rows shuffled (the file's order means nothing)."""
    rng = np.random.default_rng(seed)
    frames = [pd.DataFrame({"cell": "holdout", "coupon": "", "wording": "", "send_hour": "",
                            "returned": (rng.random(holdout) < 0.05).astype(int)})]
    for coupon, wording, hour in itertools.product(*LEVELS.values()):
        n = int(rng.integers(*per_cell))
        rate = 0.07 + 0.03 * (coupon == "10") + 0.01 * (hour == "20")
        frames.append(pd.DataFrame({"cell": f"c{coupon}_{wording}_{hour}h", "coupon": coupon, "wording": wording,
                                    "send_hour": hour, "returned": (rng.random(n) < rate).astype(int)}))
    rows = pd.concat(frames, ignore_index=True)
    rows["spend"] = np.round(rows["returned"] * rng.lognormal(np.log(60), 0.5, len(rows)), 2)
    rows.insert(0, "user", [f"u{i:05d}" for i in range(len(rows))])
    return rows.sample(frac=1, random_state=seed).reset_index(drop=True)


def write_factorial(path: Path, rows: pd.DataFrame) -> Path:
    rows.to_csv(path, index=False)
    return path


def shares_of(rows: pd.DataFrame) -> dict[str, float]:
    """The designed shares, as the file's own split (so the sample-ratio check passes)."""
    counts = rows["cell"].value_counts()
    return {label: n / len(rows) for label, n in counts.items()}


def import_factorial(engine: Engine, path: Path, rows: pd.DataFrame, name: str = "ext-factorial", **changes: object):  # noqa: ANN201
    arguments = dict(experiment=name, variant_column="cell", control="holdout", metrics=["returned", "spend"],
                     id_column="user", channel="sms", factors=list(LEVELS), shares=shares_of(rows))
    return import_results(engine, path, actor=cli_actor(), **(arguments | changes))


def stored_design(engine: Engine, name: str):  # noqa: ANN201 - a Design
    with session_scope(engine) as session:
        experiment = session.scalars(select(Experiment).where(Experiment.name == name)).one()
        return design_for(experiment), json.loads(experiment.spec_json)


def test_import_with_factors_stores_the_design_and_is_idempotent(engine: Engine, tmp_path: Path) -> None:
    rows = factorial_rows()
    path = write_factorial(tmp_path / "factorial.csv", rows)
    first = import_factorial(engine, path, rows)
    assert first.rows == len(rows) and not first.already_imported
    design, spec = stored_design(engine, "ext-factorial")
    assert design.factors == LEVELS  # numbers by value (5 before 10), words alphabetically: the references first
    assert design.cells["c10_lively_20h"] == {"coupon": "10", "wording": "lively", "send_hour": "20"}
    assert set(design.cells) == set(rows["cell"]) - {"holdout"} and design.fraction == "1"
    assert set(spec) == {"factorial"}
    again = import_factorial(engine, path, rows)
    assert again.already_imported
    # The factors are part of the import's key: the same file without them is another import.
    with pytest.raises(ImportFailed, match="already exists"):
        import_factorial(engine, path, rows, factors=[])


def test_the_exact_reader_stores_the_same_design(engine: Engine, tmp_path: Path) -> None:
    """A line of spaces sends the file to the row-by-row reader: the cells' levels come out the same."""
    rows = factorial_rows(per_cell=(40, 60), holdout=100)
    fast = write_factorial(tmp_path / "fast.csv", rows)
    exact = tmp_path / "exact.csv"
    lines = fast.read_text(encoding="utf-8").splitlines(keepends=True)
    exact.write_text("".join([*lines[:5], "   \n", *lines[5:]]), encoding="utf-8")
    import_factorial(engine, fast, rows, name="fast")
    import_factorial(engine, exact, rows, name="exact")
    assert stored_design(engine, "fast") == stored_design(engine, "exact")


def test_the_imported_estimates_equal_effect_coded_ols_on_the_same_rows(engine: Engine, tmp_path: Path) -> None:
    """The report's main effects and interactions of the imported experiment, for a rate and an amount,
    against statsmodels' OLS (Sum coding, HC2) on the contacted customers' rows of the file itself."""
    rows = factorial_rows()
    import_factorial(engine, write_factorial(tmp_path / "factorial.csv", rows), rows)
    report = build_report(engine, "ext-factorial")
    contacted = rows[rows["cell"] != "holdout"]
    for metric in ("returned", "spend"):
        fit = _sum_coded(contacted.assign(y=contacted[metric].astype(float)), dict(LEVELS))
        column = {f: next(c for c in fit.params.index if c.startswith(f"C({f},") and ":" not in c) for f in LEVELS}
        mains = [e for e in report.factors if e.metric == metric]
        pairs = [e for e in report.interactions if e.metric == metric]
        assert len(mains) == 3 and len(pairs) == 3
        for e in mains:
            lo, hi = fit.conf_int(alpha=ALPHA).loc[column[e.factor]]
            assert e.abs_effect == pytest.approx(-2 * fit.params[column[e.factor]], abs=1e-9)
            assert e.abs_ci == pytest.approx((-2 * hi, -2 * lo), abs=1e-9)
            assert e.p_value == pytest.approx(fit.pvalues[column[e.factor]], rel=1e-7, abs=1e-12)
        for e in pairs:
            c = f"{column[e.factors[0]]}:{column[e.factors[1]]}"
            lo, hi = fit.conf_int(alpha=ALPHA).loc[c]
            assert e.abs_effect == pytest.approx(4 * fit.params[c], abs=1e-9)
            assert e.abs_ci == pytest.approx((4 * lo, 4 * hi), abs=1e-9)
            assert e.p_value == pytest.approx(fit.pvalues[c], rel=1e-7, abs=1e-12)
    assert {(r.factor, r.level) for r in report.factor_roi} == {(f, lv) for f, v in LEVELS.items() for lv in v}


def test_a_half_fraction_is_recognised_with_its_aliases(engine: Engine, tmp_path: Path) -> None:
    rows = factorial_rows()
    half = {"c5_lively_20h", "c10_lively_10h", "c5_professional_10h", "c10_professional_20h"}  # send_hour = coupon × wording
    rows = rows[rows["cell"].isin(half | {"holdout"})]
    import_factorial(engine, write_factorial(tmp_path / "half.csv", rows), rows)
    design, _ = stored_design(engine, "ext-factorial")
    assert design.fraction == "1/2" and design.defining_relation == ("I = coupon×wording×send_hour",)
    assert design.aliases["coupon"] == ("wording×send_hour",)
    report = build_report(engine, "ext-factorial")
    assert report.interactions == [] and next(e for e in report.factors if e.factor == "coupon").aliases


HEADER = "user,cell,coupon,wording,send_hour,returned\n"
FULL = "".join(f"u{i},c{c}_{w}_{h}h,{c},{w},{h},{i % 2}\n"
               for i, (c, w, h) in enumerate(itertools.product(*LEVELS.values()), start=10))


@pytest.mark.parametrize(
    ("rows", "factors", "message"),
    [
        ("u1,holdout,,,,0\n" + FULL + "u2,c5_lively_10h,5,professional,10,1\n", FACTORS,
         "bad.csv, line 11, field wording: cell 'c5_lively_10h' has wording = 'professional' here but 'lively' on "
         "line 3: a cell has one level of each factor"),
        ("u1,holdout,,,,0\n" + FULL + "u2,c5_lively_10h,5,,10,1\n", FACTORS,
         "bad.csv, line 11, field wording: empty level: every contacted row names its cell's level of wording"),
        (FULL + "u1,holdout,,lively,,0\n", FACTORS,
         "bad.csv, line 10, field wording: the control 'holdout' has no level of wording; got 'lively'"),
        ("u1,holdout,,,,0\n" + FULL, "coupon,wording,channel",
         "bad.csv, line 1, field channel: missing column; the header has: user, cell, coupon"),
        ("u1,holdout,,,,0\n" + FULL.replace(",10,lively", ",5,lively").replace(",10,professional", ",5,professional")
         .replace("c10_", "c5x_"), FACTORS,
         "bad.csv, line 3, field coupon: factor coupon has only one level (5); a factor needs two levels or more"),
        ("u1,holdout,,,,0\n" + "".join(f"u{i + 10},c{i},{i},a,10,0\n" for i in range(65)), "coupon",
         "bad.csv, line 67, field cell: cell 'c64' is one more than 64 cells"),
        ("u1,holdout,,,,0\n" + "".join(line for line in FULL.splitlines(keepends=True) if "c10_lively_20h" not in line),
         FACTORS, "bad.csv, fields coupon, wording, send_hour: the cells are neither the full factorial (8 cells, 7 "
                  "found; missing coupon=10, wording=lively, send_hour=20) nor a regular fraction"),
        ("u1,holdout,,,,0\n" + FULL + "u2,c5_lively_10h,5,a b,10,1\n", FACTORS,
         "bad.csv, line 11, field wording: cell 'c5_lively_10h' has wording = 'a b' here"),
        ("u1,holdout,,,,0\n" + FULL, "coupon,coupon", "--factors: coupon named more than once"),
        ("u1,holdout,,,,0\n" + FULL, "coupon,returned", "--factors: returned is already the variant"),
    ],
    ids=["level_varies_in_a_cell", "empty_level", "control_with_a_level", "missing_column", "one_level",
         "more_than_64_cells", "missing_combination", "level_varies_late", "factor_twice", "factor_is_a_metric"],
)
def test_bad_factorial_results_name_file_line_and_field_and_leave_nothing(engine: Engine, tmp_path: Path, rows: str,
                                                                          factors: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + rows, encoding="utf-8")
    with pytest.raises(ImportFailed) as failure:
        import_results(engine, path, actor=cli_actor(), experiment="bad", variant_column="cell", control="holdout",
                       metrics=["returned"], id_column="user", factors=factors.split(","))
    assert str(failure.value).startswith(message), str(failure.value)
    assert nothing_stored(engine)


def test_a_bad_level_name_is_named_with_its_line(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + "u1,holdout,,,,0\n" + FULL.replace(",lively,", ",a b,"), encoding="utf-8")
    with pytest.raises(ImportFailed) as failure:
        import_results(engine, path, actor=cli_actor(), experiment="bad", variant_column="cell", control="holdout",
                       metrics=["returned"], id_column="user", factors=list(LEVELS))
    assert str(failure.value).startswith("bad.csv, line 3, field wording: level names are letters, digits, _ . - ; "
                                         "got 'a b'"), str(failure.value)
    assert nothing_stored(engine)


def test_the_cli_imports_factors_and_names_a_bad_line(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + FULL + "u1,holdout,,lively,,0\n", encoding="utf-8")
    arguments = ["import", "results", str(path), "--experiment", "cli-f", "--variant-column", "cell", "--control",
                 "holdout", "--metrics", "returned", "--id-column", "user", "--no-progress"]
    result = runner.invoke(app, [*arguments, "--factors", FACTORS])
    assert result.exit_code != 0 and "bad.csv, line 10, field wording: the control 'holdout'" in result.output
    path.write_text(HEADER + FULL + "u1,holdout,,,,0\n", encoding="utf-8")
    result = runner.invoke(app, [*arguments, "--factors", FACTORS])
    assert result.exit_code == 0, result.output
    english = runner.invoke(app, ["report", "cli-f", "--lang", "en"])
    assert "## Factorial analysis: main effects and interactions" in english.output


def test_the_verdict_carries_the_recommendation_in_the_report_json_cli_and_app(database_url: str, engine: Engine,
                                                                               tmp_path: Path) -> None:
    rows = factorial_rows()
    import_factorial(engine, write_factorial(tmp_path / "factorial.csv", rows), rows)
    add_role_users(engine)
    report = build_report(engine, "ext-factorial")
    verdict = report.verdict
    codes = [r.code for r in verdict.reasons]
    assert verdict.decision != "not_analysable", codes
    assert any(c.startswith("factorial_cell_rate_") for c in codes)
    assert any(c.startswith("factorial_cell_roi_") for c in codes)
    assert {r.values["factor"] for r in verdict.reasons if r.code.startswith("factorial_level_")
            or r.code == "factorial_depends"} == set(LEVELS)
    cell = next(r for r in verdict.reasons if r.code.startswith("factorial_cell_rate_"))
    assert cell.variant == max((c for c in report.comparisons if c.metric == "returned"),
                               key=lambda c: c.variant_mean).variant
    # A lead whose interval includes 0 is worded as unproven, in both languages.
    for r in verdict.reasons:
        if r.code.endswith("_leading"):
            assert r.values["lead_lo"] <= 0 and "unproven" in reason_text(r, "en") and "未经证实" in reason_text(r, "zh")
    # The CLI's JSON and Markdown give the same verdict, with the same words.
    data = json.loads(runner.invoke(app, ["report", "ext-factorial", "--format", "json"]).output)
    from_json = Report.from_dict(data).verdict
    assert (from_json.decision, from_json.variant, from_json.reasons) == (verdict.decision, verdict.variant,
                                                                          verdict.reasons)
    for lang in ("zh", "en"):
        markdown = runner.invoke(app, ["report", "ext-factorial", "--lang", lang]).output
        for reason in verdict.reasons:
            assert reason_text(reason, lang) in markdown, (lang, reason.code)
    # The app's Results page: the verdict's reasons and the factorial section's recommendation, rates in pt.
    st.cache_data.clear()
    st.cache_resource.clear()
    for lang, points, column in (("zh", "个百分点", "效应 [95% CI]"), ("en", " pt", "Effect [95% CI]")):
        at = open_page("results", lang, role="analyst", experiment="ext-factorial")
        shown = texts(at)
        for reason in verdict.reasons:
            assert reason_text(reason, lang) in shown, (lang, reason.code)
        assert all(line in shown for line in recommendation_lines(report, lang))
        effects = [f.value[column] for f in at.dataframe if column in f.value.columns]
        assert len(effects) == 2  # main effects and interactions of the return rate
        for values in effects:
            assert values.str.contains(points).all() and not values.str.contains("%").any()
    st.cache_data.clear()
    st.cache_resource.clear()

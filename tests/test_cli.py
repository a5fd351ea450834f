"""The ``recall`` command line as a user runs it: create → assign → send list → import → report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from tests.helpers import EXAMPLE_SPEC, add_customers

NAME = "winback-coupon-2026-12"
runner = CliRunner()


def recall(*args: str, ok: bool = True):  # noqa: ANN201 - click.testing.Result
    result = runner.invoke(app, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_full_loop(engine, tmp_path: Path) -> None:  # noqa: ANN001
    add_customers(engine, [f"C{i:04d}" for i in range(400)])
    recall("experiment", "create", EXAMPLE_SPEC)
    assert NAME in recall("experiment", "list").output

    assigned = recall("assign", NAME, "--as-of", "2026-12-01T00:00")
    assert "400 customers newly assigned" in assigned.output

    out_dir = tmp_path / "lists"
    recall("sendlist", NAME, "--out", out_dir, "--due", "2026-12-01")
    files = sorted(p.name for p in out_dir.glob("*.csv"))
    assert files == [f"{NAME}__coupon10_sms_10h.csv", f"{NAME}__coupon5_sms_10h.csv"]
    with (out_dir / f"{NAME}__coupon10_sms_10h.csv").open(encoding="utf-8") as fh:
        listed = list(csv.DictReader(fh))
    assert listed and all(row["send_at"].startswith("2026-12-01T10:00:00+08:00") for row in listed)
    assert all("10元礼金" in row["message"] for row in listed)

    events = tmp_path / "events.csv"
    returned = [row["customer_id"] for row in listed[:40]]
    events.write_text("customer_id,event_type,occurred_at,value\n"
                      + "".join(f"{c},order,2026-12-03 12:00,88.5\n" for c in returned), encoding="utf-8")
    assert "40 inserted" in recall("import", "events", events).output
    assert "already imported" in recall("import", "events", events).output

    data = json.loads(recall("report", NAME, "--format", "json").output)
    assert data["experiment"] == NAME and data["control"] == "holdout"
    comparison = next(c for c in data["comparisons"]
                      if c["variant"] == "coupon10_sms_10h" and c["metric"] == "returned")
    assert comparison["variant_mean"] == pytest.approx(40 / comparison["n"])
    assert comparison["control_mean"] == 0

    markdown = recall("report", NAME, "--lang", "en").output
    assert "# Significance report: winback-coupon-2026-12" in markdown
    assert "显著性报告" in recall("report", NAME).output


def test_bad_spec_names_the_field(engine, tmp_path: Path) -> None:  # noqa: ANN001
    bad = tmp_path / "bad.toml"
    bad.write_text(EXAMPLE_SPEC.read_text(encoding="utf-8").replace("send_hour = 10", "send_hour = 25", 1),
                   encoding="utf-8")
    result = recall("experiment", "create", bad, ok=False)
    assert result.exit_code == 1
    assert "bad.toml" in result.output and "send_hour" in result.output
    assert NAME not in recall("experiment", "list").output


def test_bad_events_file_names_row_and_field(engine, tmp_path: Path) -> None:  # noqa: ANN001
    events = tmp_path / "events.csv"
    events.write_text("customer_id,event_type,occurred_at,value\nC1,order,2026-12-03 12:00,10\n"
                      "C2,order,yesterday,10\n", encoding="utf-8")
    result = recall("import", "events", events, ok=False)
    assert result.exit_code == 1
    assert "events.csv, line 3, field occurred_at: not an ISO date-time" in result.output


def test_unknown_experiment_lists_known_ones(engine) -> None:  # noqa: ANN001
    recall("experiment", "create", EXAMPLE_SPEC)
    result = recall("report", "nope", ok=False)
    assert result.exit_code == 1 and NAME in result.output


def test_power_prints_the_plan_of_analysis_power() -> None:
    from analysis.power import experiment_cost, minimum_detectable_effect, sample_size_proportions

    result = runner.invoke(app, ["power", "--baseline", "0.08", "--mde-rel", "0.1", "--variants", "2",
                                 "--holdout", "0.1", "--coupon", "5", "--redemption-rate", "0.05",
                                 "--eligible-per-day", "20000"])
    assert result.exit_code == 0, result.output
    plan = sample_size_proportions(0.08, mde_rel=0.1, control_share=0.1, variants=2)
    cost = experiment_cost(2 * plan.n_variant, 0.05, 5, 0.05)
    for figure in (f"{plan.n_control:,}", f"{plan.n_variant:,}", f"{plan.n_total:,}", f"¥{cost.total:,.2f}"):
        assert figure in result.output
    result = runner.invoke(app, ["power", "--baseline", "0.08", "--customers", "100000"])
    assert result.exit_code == 0, result.output
    mde = minimum_detectable_effect(0.08, 10_000, 90_000)
    assert f"{mde.mde_rel:+.1%}" in result.output


def test_power_names_what_is_missing() -> None:
    result = runner.invoke(app, ["power", "--baseline", "0.08"])
    assert result.exit_code != 0 and "--mde-rel" in result.output
    result = runner.invoke(app, ["power", "--baseline", "6.5", "--metric", "mean", "--mde-rel", "0.1"])
    assert result.exit_code != 0 and "--sd" in result.output

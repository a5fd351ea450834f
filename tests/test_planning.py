"""Planning: plans ranked by ICE, audiences per cohort and value tier, a plan becomes a draft."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert
from typer.testing import CliRunner

from experiments.assignment import assign
from cli import app
from experiments.db import session_scope
from experiments.models import Assignment, Customer, ExperimentStatus
from experiments.planning import PlanBook, audience, draft_spec, load_plans, tier_bounds, tier_filter
from experiments.spec import SpecError
from experiments.store import get_experiment
from tests.helpers import AS_OF

PLANS = Path(__file__).resolve().parents[1] / "examples" / "plans.toml"


def test_plans_rank_by_ice_then_impact() -> None:
    book = load_plans(PLANS)
    assert [p.name for p in book.ranked()] == ["new_c10_lively", "dormant_push_free", "silent_high_c20_sms",
                                               "declining_phone_call"]
    assert book.get("new_c10_lively").ice == pytest.approx((7 + 7 + 8) / 3)
    tie = PlanBook.model_validate({"plans": [
        {**book.get("dormant_push_free").model_dump(), "name": "a", "impact": 5, "confidence": 7, "ease": 9},
        {**book.get("dormant_push_free").model_dump(), "name": "b", "impact": 7, "confidence": 5, "ease": 9},
    ]})
    assert [p.name for p in tie.ranked()] == ["b", "a"]


@pytest.mark.parametrize(("change", "field"), [({"impact": 11}, "plans[0].impact"), ({"ease": 0}, "plans[0].ease"),
                                               ({"value_tier": "vip"}, "plans[0].value_tier"),
                                               ({"cohort": "everyone"}, "plans[0].cohort")])
def test_bad_plans_name_the_field(tmp_path: Path, change: dict, field: str) -> None:
    text = PLANS.read_text(encoding="utf-8")
    key, value = next(iter(change.items()))
    original = {"impact": "impact = 8", "ease": "ease = 7", "value_tier": 'value_tier = "high"',
                "cohort": 'cohort = "silent_3m"'}[key]
    bad = tmp_path / "plans.toml"
    bad.write_text(text.replace(original, f"{key} = {value!r}".replace("'", '"'), 1), encoding="utf-8")
    with pytest.raises(SpecError) as failure:
        load_plans(bad)
    assert failure.value.problems[0][0] == field


@pytest.fixture
def silent(engine: Engine) -> Engine:
    """30 silent customers (spend 10, 20, …, 300) and 10 dormant ones."""
    with session_scope(engine) as session:
        session.execute(insert(Customer), [
            dict(customer_id=f"S{i:02d}", last_active_at=AS_OF - timedelta(days=120), orders_before=2,
                 spend_before=Decimal(10 * (i + 1))) for i in range(30)
        ] + [dict(customer_id=f"D{i:02d}", last_active_at=AS_OF - timedelta(days=35), orders_before=1,
                  spend_before=Decimal(5)) for i in range(10)])
    return engine


def test_value_tiers_become_filters_and_audiences(silent: Engine) -> None:
    book = load_plans(PLANS)
    with session_scope(silent) as session:
        conn = session.connection()
        bounds = tier_bounds(conn, AS_OF)
        plan = book.get("silent_high_c20_sms")
        # 40 customers by spend: terciles of 14/13/13; the top 13 are silent ones spending 180-300
        assert tier_filter(plan, bounds) == "spend_before >= 180.00"
        assert audience(conn, plan, AS_OF, bounds) == 13
        assert audience(conn, book.get("dormant_push_free"), AS_OF, bounds) == 10


def test_a_plan_becomes_a_draft_that_assigns_its_audience(silent: Engine, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["plan", "draft", str(PLANS), "silent_high_c20_sms", "--holdout", "0.2"])
    assert result.exit_code == 0, result.output
    with session_scope(silent) as session:
        experiment = get_experiment(session, "silent_high_c20_sms")
        assert experiment.status == ExperimentStatus.DRAFT
        assert [(v.name, v.share, v.is_control) for v in experiment.variants] == [
            ("holdout", 0.2, True), ("silent_high_c20_sms", 0.8, False)]
    assign(silent, "silent_high_c20_sms", as_of=AS_OF)
    with session_scope(silent) as session:
        assigned = set(session.scalars(Assignment.__table__.select().with_only_columns(Assignment.customer_id)))
    assert assigned == {f"S{i:02d}" for i in range(17, 30)}


def test_plan_list_command(silent: Engine) -> None:
    result = CliRunner().invoke(app, ["plan", "list", str(PLANS)])
    assert result.exit_code == 0, result.output
    assert result.output.index("new_c10_lively") < result.output.index("declining_phone")
    unknown = CliRunner().invoke(app, ["plan", "draft", str(PLANS), "nope"])
    assert unknown.exit_code == 1 and "no plan named 'nope'" in unknown.output


def test_draft_spec_runs_the_message_checks() -> None:
    plan = load_plans(PLANS).get("dormant_push_free")
    with pytest.raises(SpecError, match="quiet hours"):
        draft_spec(plan.model_copy(update={"send_hour": 22}))

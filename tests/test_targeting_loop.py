"""Closing the loop: a fitted targeting model is stored (audited), a spec targets by it, launch scores the
audience out of sample and randomizes a holdout inside the targeted audience beside a contact-everyone
group, and the report measures the gain from targeting itself."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from analysis.report import Report, build_report
from analysis.render import render_markdown
from analysis.targeting import InSampleScoring
from analysis.targeting_gain import ArmTotals, policy_value, targeting_gain
from cli import app
from experiments.access import cli_actor
from experiments.assignment import assign
from experiments.audit import Action, entries
from experiments.db import bulk_insert, session_scope
from experiments.demo import PROFESSIONAL, REPEAT_BUYER_ORDERS, TARGETING, build_demo
from experiments.models import Assignment, Customer, Event, EventType, Experiment, TargetScore, Variant
from experiments.spec import SpecError, parse_spec
from experiments.store import create_experiment, get_experiment
from experiments.targeting import Scorer, learn, list_models, save_model

runner = CliRunner()
FEATURES = ["orders_before", "spend_before", "city"]  # fixed in time: a training customer's score can be compared
LAUNCH = datetime(2026, 11, 24, 2, 0)
TRUE_UPLIFT = 0.30  # repeat buyers only: the heterogeneous effect the targeted policy should find


def targeted_spec(name: str = "loop-targeted", model: str = "repeat", **target: object):  # noqa: ANN201
    return parse_spec(dict(
        name=name, cohort="all", layer=name, attribution_days=14, target=model, **(target or {"target_share": 0.3}),
        costs=dict(channels={"sms": 2.0}),
        variants=[dict(name="holdout", share=0.5, control=True),
                  dict(name="sms", share=0.5, channel="sms", template=PROFESSIONAL, send_hour=20)],
    ))


@pytest.fixture(scope="module")
def learned_demo(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - (url, scores of TARGETING)
    from tests.conftest import fresh_database
    from experiments.db import make_engine

    url = fresh_database(tmp_path_factory.mktemp("loop"))
    engine = make_engine(url)
    build_demo(engine, customers=6_000, today=datetime(2026, 11, 23, 4, 0))
    with session_scope(engine) as session:
        experiment = get_experiment(session, TARGETING)
        trained = learn(session.connection(), experiment, features=FEATURES, replicates=20)
        save_model(session, cli_actor(), "repeat", experiment, trained)
    engine.dispose()
    return url, dict(zip(trained.customer_ids, trained.uplift, strict=True))


@pytest.fixture
def loop(learned_demo, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """The demo with model "repeat" stored; each test gets it fresh (the module builds it once per file)."""
    from experiments.db import make_engine

    url, scores = learned_demo
    monkeypatch.setenv("RECALL_DATABASE_URL", url)
    engine = make_engine(url)
    yield engine, scores
    with session_scope(engine) as session:  # leave the module's database as built
        for name in ("loop-targeted", "loop-cost", "loop-again"):
            if (e := session.scalar(select(Experiment).where(Experiment.name == name))) is not None:
                session.delete(e)
    engine.dispose()


def test_a_stored_model_is_listed_and_its_saving_audited(loop) -> None:  # noqa: ANN001
    engine, _ = loop
    with session_scope(engine) as session:
        models = list_models(session)
        log = entries(session, actions=[Action.MODEL_SAVE])
    assert [(m.name, m.experiment, m.metric) for m in models] == [("repeat", TARGETING, "returned")]
    assert set(models[0].features) <= set(FEATURES) and models[0].qini is not None
    assert [(e.action, e.target, e.details["experiment"]) for e in log] == [("model_save", "repeat", TARGETING)]
    listed = runner.invoke(app, ["target", "--list"])
    assert listed.exit_code == 0 and "repeat" in listed.output and TARGETING in listed.output
    again = runner.invoke(app, ["target", TARGETING, "--features", "orders_before", "--bootstrap", "20", "--save", "repeat"])
    assert again.exit_code == 1 and "already exists" in again.output


def test_a_spec_targeting_a_missing_model_is_refused(loop) -> None:  # noqa: ANN001
    engine, _ = loop
    with session_scope(engine) as session, pytest.raises(SpecError, match="no stored targeting model 'nope'"):
        create_experiment(session, targeted_spec(model="nope"))
    with pytest.raises(SpecError, match="exactly one of target_share"):
        targeted_spec(target_share=0.3, target_cutoff="cost-optimal")
    with pytest.raises(SpecError, match="need target"):
        parse_spec(dict(name="x", target_share=0.3, variants=[dict(name="h", share=0.5, control=True),
                                                               dict(name="s", share=0.5, channel="sms", send_hour=20, template=PROFESSIONAL)]))


def _launched(engine: Engine, spec) -> tuple[pd.DataFrame, int]:  # noqa: ANN001
    with session_scope(engine) as session:
        create_experiment(session, spec)
    summary = assign(engine, spec.name, as_of=LAUNCH)
    with session_scope(engine) as session:
        e = get_experiment(session, spec.name)
        scores = pd.DataFrame(session.execute(
            select(TargetScore.customer_id, TargetScore.uplift, TargetScore.targeting_policy, TargetScore.targeted,
                   Variant.name.label("variant"), Customer.orders_before)
            .join(Customer, Customer.customer_id == TargetScore.customer_id)
            .outerjoin(Assignment, (Assignment.experiment_id == e.id) & (Assignment.customer_id == TargetScore.customer_id))
            .outerjoin(Variant, Variant.id == Assignment.variant_id)
            .where(TargetScore.experiment_id == e.id)).mappings().all())
    return scores, summary.newly_assigned


def test_launch_scores_out_of_sample_and_randomizes_inside_the_targeted_audience(loop) -> None:  # noqa: ANN001
    engine, training_scores = loop
    scores, assigned = _launched(engine, targeted_spec())
    policy, everyone = scores[scores.targeting_policy], scores[~scores.targeting_policy]
    assert 0.45 < len(policy) / len(scores) < 0.55  # the hash split into the two policy groups
    # targeted group: the top 30% by uplift, only they are assigned, with a holdout and a contacted arm
    assert policy.targeted.mean() == pytest.approx(0.3, abs=0.01)
    assert policy[~policy.targeted].variant.isna().all()
    assert set(policy[policy.targeted].variant) == {"holdout", "sms"}
    assert policy[policy.targeted].uplift.min() >= policy[~policy.targeted].uplift.max() - 1e-12
    # contact-everyone group: everyone assigned, with its own holdout
    assert everyone.variant.notna().all() and set(everyone.variant) == {"holdout", "sms"}
    assert assigned == int(policy.targeted.sum()) + len(everyone)
    # the model found the repeat buyers
    repeat = scores.orders_before >= REPEAT_BUYER_ORDERS
    assert scores.uplift[repeat].mean() > scores.uplift[~repeat].mean()
    # training customers are scored by the fold model that did not learn from them: their cross-fitted score
    trained = scores[scores.customer_id.isin(training_scores)]
    assert len(trained) > 1000
    np.testing.assert_allclose(trained.uplift, [training_scores[c] for c in trained.customer_id], rtol=1e-9)
    # re-launch moves nobody and scores nobody again
    assert assign(engine, "loop-targeted", as_of=LAUNCH + timedelta(hours=1)).newly_assigned == 0
    again, _ = _launched(engine, targeted_spec("loop-again"))  # another experiment: its own policy split …
    assert len(again) == len(scores)
    merged = scores.merge(again, on="customer_id")
    np.testing.assert_allclose(merged.uplift_x, merged.uplift_y)  # … the same scores, deterministically


def test_a_customer_every_fold_model_learned_from_is_refused() -> None:
    scorer = Scorer("m", "returned", {"x": np.dtype(float)}, (object(), object()),
                    (np.array(["a", "b"]), np.array(["a", "c"])), 1.0, 10.0, 1.0)
    with pytest.raises(InSampleScoring, match="1 customers were learned from by every fold model"):
        scorer.score(np.array(["a"]), pd.DataFrame({"x": [1.0]}))


def _simulate_campaign(engine: Engine, name: str, seed: int = 7) -> None:
    """Only contacted repeat buyers respond (+30 points); everyone else returns at 5%; returners spend ¥100."""
    rng = np.random.default_rng(seed)
    with session_scope(engine) as session:
        e = get_experiment(session, name)
        rows = session.execute(select(Assignment.customer_id, Variant.is_control, Customer.orders_before)
                               .join(Variant, Variant.id == Assignment.variant_id)
                               .join(Customer, Customer.customer_id == Assignment.customer_id)
                               .where(Assignment.experiment_id == e.id)).all()
        events = []
        for customer, control, orders in rows:
            p = 0.05 + (0 if control or orders < REPEAT_BUYER_ORDERS else TRUE_UPLIFT)
            if rng.random() < p:
                at = LAUNCH + timedelta(days=1)
                events += [dict(customer_id=customer, event_type=EventType.VISIT, occurred_at=at, value=Decimal(0)),
                           dict(customer_id=customer, event_type=EventType.ORDER, occurred_at=at + timedelta(minutes=5),
                                value=Decimal(100))]
        bulk_insert(session, Event, events)


def test_the_report_shows_the_gain_from_targeting(loop) -> None:  # noqa: ANN001
    engine, _ = loop
    _launched(engine, targeted_spec())
    _simulate_campaign(engine, "loop-targeted")
    report = build_report(engine, "loop-targeted")
    gain = report.targeting_gain
    assert gain is not None and gain.model == "repeat" and gain.cutoff == "top 30%"
    t, e = gain.targeted, gain.everyone
    assert t.contacted_share == pytest.approx(0.3, abs=0.01) and e.contacted_share == 1
    assert t.cost == pytest.approx(0.3 * 2.0, abs=0.02) and e.cost == pytest.approx(2.0)
    assert t.roi_ci[0] > e.roi_ci[1]  # the targeted policy pays clearly better per ¥ spent
    lo, hi = gain.net_value_difference_ci
    assert lo < gain.net_value_difference < hi and 0 < gain.net_value_p_value < 1
    # contact-everyone's incremental returns per customer estimate the true share of repeat buyers × 30 points
    with session_scope(engine) as session:
        orders = np.array(session.scalars(select(Customer.orders_before)).all())
    truth = TRUE_UPLIFT * float(np.mean(orders >= REPEAT_BUYER_ORDERS))
    assert e.returns_ci[0] < truth < e.returns_ci[1]
    restored = Report.from_dict(report.to_dict())
    assert restored.targeting_gain == gain
    for lang, title in (("zh", "定向本身的增益"), ("en", "Gain from targeting")):
        text = render_markdown(report, lang)
        assert title in text and "top 30%" in text


def test_cost_optimal_cutoff_targets_where_value_exceeds_cost(loop) -> None:  # noqa: ANN001
    engine, _ = loop
    scores, _ = _launched(engine, targeted_spec("loop-cost", target_cutoff="cost-optimal"))
    with session_scope(engine) as session:
        from experiments.targeting import load_scorer
        scorer = load_scorer(session, "repeat")
    expected = scorer.value_per_return * scorer.margin * scores.uplift
    assert (scores.targeted == (expected > scorer.unit_cost)).all()


def test_policy_value_and_gain_match_a_hand_computation() -> None:
    # targeted group: 100 customers, 40 assigned: 20 contacted (10 returned), 20 holdout (4 returned)
    t = policy_value("targeted", 100, ArmTotals(20, 10, 1000, 50_000, 0), ArmTotals(20, 4, 400, 20_000, 0),
                     contact_cost=2.0, coupon=0.0, margin=1.0)
    e = policy_value("everyone", 100, ArmTotals(50, 15, 1500, 75_000, 0), ArmTotals(50, 10, 1000, 50_000, 0),
                     contact_cost=2.0, coupon=0.0, margin=1.0)
    v, var_returns, _ = t
    assert v.contacted_share == 0.4 and v.incremental_returns == pytest.approx(0.4 * (0.5 - 0.2))
    var = 0.4**2 * (0.5 * 0.5 * 20 / 19 / 20 + 0.2 * 0.8 * 20 / 19 / 20)
    assert var_returns == pytest.approx(var)
    assert v.cost == pytest.approx(0.8) and v.net_value == pytest.approx(0.4 * (50 - 20) - 0.8)
    gain = targeting_gain("m", "top 40%", t, e)
    assert gain.returns_difference == pytest.approx(0.12 - 0.1)
    se = (var + e[1]) ** 0.5
    assert gain.returns_difference_ci == pytest.approx((0.02 - 1.959964 * se, 0.02 + 1.959964 * se), rel=1e-5)

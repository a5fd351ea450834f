"""Uplift targeting: cross-fitting is real, the curves match a hand computation, the policy estimator is
unbiased, bad inputs are refused clearly, and the whole path runs on designed and imported experiments."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from analysis.targeting import (
    MIN_ARM_CUSTOMERS,
    Costs,
    InSampleScoring,
    TargetingError,
    auuc,
    cross_fit,
    evaluate,
    fit,
    policy_point,
    prepare,
    qini_coefficient,
    qini_curve,
    render_markdown,
    top_share,
    uplift_curve,
)
from cli import app
from experiments.access import cli_actor
from experiments.db import session_scope
from experiments.demo import REPEAT_BUYER_ORDERS, TARGETING, build_demo
from experiments.importer import import_results
from experiments.models import Customer
from experiments.store import get_experiment
from experiments.targeting import learn

runner = CliRunner()

# A small fixed example: 8 customers, scores descending with one tie (0.5, 0.5).
Y = np.array([1, 0, 1, 1, 0, 0, 1, 0], dtype=float)
T = np.array([1, 0, 1, 0, 1, 1, 0, 0], dtype=bool)
S = np.array([0.9, 0.8, 0.7, 0.5, 0.5, 0.3, 0.2, 0.1])


def simulated(n: int, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Customers of whom only the 'responsive' kind reacts (+12 points); the others not at all."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"kind": rng.choice(["responsive", "sure", "lost"], n), "orders": rng.poisson(3, n).astype(float),
                      "noise": rng.normal(size=n)})
    treated = rng.random(n) < 0.5
    base = np.where(X["kind"] == "sure", 0.4, 0.05)
    tau = np.where(X["kind"] == "responsive", 0.12, 0.0)
    y = (rng.random(n) < base + treated * tau).astype(float)
    return X, treated, y, tau


def test_qini_curve_equals_a_hand_computation() -> None:
    x, q = qini_curve(Y, S, T)
    # Taken by descending score (the tied pair enters together):
    # k=1: t{1:1}         → Y_t=1, N_t=1, Y_c=0, N_c=0 → 1
    # k=2: + c(y=0)       → 1 − 0·1/1 = 1
    # k=3: + t(y=1)       → 2 − 0·2/1 = 2
    # k=5: + c(1), t(0)   → Y_t=2, N_t=3, Y_c=1, N_c=2 → 2 − 1·3/2 = 0.5
    # k=6: + t(0)         → 2 − 1·4/2 = 0
    # k=7: + c(1)         → 2 − 2·4/3 = −2/3
    # k=8: + c(0)         → 2 − 2·4/4 = 0
    assert x.tolist() == [0, 1, 2, 3, 5, 6, 7, 8]
    assert q == pytest.approx([0, 1, 1, 2, 0.5, 0, -2 / 3, 0])
    _, u = uplift_curve(Y, S, T)
    # (Y_t/N_t − Y_c/N_c)·N: k=5: (2/3 − 1/2)·5 = 5/6; k=7: (2/4 − 2/3)·7 = −7/6
    assert u == pytest.approx([0, 1, 2, 3, 5 / 6, 0, -7 / 6, 0])


def test_normalised_areas_equal_a_hand_computation() -> None:
    x, q = qini_curve(Y, S, T)
    area = np.sum((q[1:] + q[:-1]) / 2 * np.diff(x))  # trapezoids
    perfect = Y * T - Y * ~T  # the oracle ranks contacted responders first, holdout responders last
    xp, qp = qini_curve(Y, perfect, T)
    best = np.sum((qp[1:] + qp[:-1]) / 2 * np.diff(xp))
    random = q[-1] * x[-1] / 2
    assert qini_coefficient(Y, S, T) == pytest.approx((area - random) / (best - random))
    assert qini_coefficient(Y, perfect, T) == pytest.approx(1.0)
    assert -1 <= auuc(Y, S, T) <= 1


def test_every_score_is_out_of_fold_and_in_sample_scoring_is_refused() -> None:
    X, treated, y, _ = simulated(4_000)
    prepared = prepare(X, treated, y)
    fitted = cross_fit("t-learner", prepared.X, treated, y, binary=True, folds=4)
    for k, model in enumerate(fitted.models):
        held_out = np.flatnonzero(fitted.folds == k)
        assert np.intersect1d(held_out, model.train_rows).size == 0  # never learned from what it scored
        assert model.train_rows.size == len(y) - held_out.size
        with pytest.raises(InSampleScoring, match="cross-fitted"):
            model.uplift(prepared.X.iloc[model.train_rows[:10]], model.train_rows[:10])
    whole = fit("x-learner", prepared.X, treated, y, np.arange(len(y)), binary=True)
    with pytest.raises(InSampleScoring):
        whole.uplift(prepared.X, np.arange(len(y)))


def test_the_model_finds_the_customers_who_respond() -> None:
    X, treated, y, tau = simulated(12_000)
    result = evaluate(X, treated, y, metric="returned", variant="sms", returned=y, revenue=None, redeemed=None,
                      costs=Costs(contact=0.05), replicates=30)
    e = result.evaluation
    assert e.qini_ci[0] > 0  # better than random targeting, clearly
    assert e.qini > e.response.qini  # and better than ranking by the chance to return ("sure things" first)
    top = top_share(result.scores, 1 / 3)
    assert tau[top].mean() > 0.07  # most of the top third respond (a third of all customers do: 0.04)
    assert e.importance[0].feature == "kind"
    assert [p.share for p in e.policy][:2] == [0.05, 0.1] and e.policy[-1].share == 1.0
    assert set(e.learners) == {"t-learner", "x-learner"} and e.estimator in e.learners
    assert "Qini" in render_markdown(e, lang="en") and "精准召回" in render_markdown(e, lang="zh")
    json.dumps(e.to_dict())  # JSON-ready (no NaN)


def test_policy_estimate_is_unbiased_for_a_fixed_selection() -> None:
    """Over simulated replicates the incremental-returns estimate centres on the truth (n_S × mean τ in S)."""
    rng = np.random.default_rng(7)
    n = 4_000
    x = rng.random(n)
    tau = np.where(x > 0.6, 0.15, 0.0)
    selected = x > 0.5
    truth = tau[selected].sum()
    estimates, covered = [], 0
    for _ in range(200):
        treated = rng.random(n) < 0.5
        y = (rng.random(n) < 0.1 + treated * tau).astype(float)
        p = policy_point(0.5, selected, treated, y, None, None, Costs(0.1))
        estimates.append(p.incremental_returns)
        covered += p.ci[0] <= truth <= p.ci[1]
    assert np.mean(estimates) == pytest.approx(truth, abs=3 * np.std(estimates) / np.sqrt(200))
    assert 0.90 <= covered / 200 <= 0.99


@pytest.mark.slow
def test_policy_intervals_cover_the_true_value_of_a_learned_policy() -> None:
    """Coverage of the 95% intervals over replicates, the selection learned (cross-fitted) each time."""
    covered = 0
    replicates = 20
    for r in range(replicates):
        X, treated, y, tau = simulated(6_000, seed=100 + r)
        result = evaluate(X, treated, y, metric="returned", variant="v", returned=y, revenue=None, redeemed=None,
                          costs=Costs(0.05), replicates=20, seed=r, learners=("t-learner",), folds=3)
        p = result.evaluation.policy[5]  # top 30%
        truth = tau[top_share(result.scores, p.share)].sum()
        covered += p.ci[0] <= truth <= p.ci[1]
    assert covered / replicates >= 0.8  # 95% intervals: 16 or more of 20 with probability > 0.98


def test_bad_inputs_are_refused_or_handled_as_documented() -> None:
    X, treated, y, _ = simulated(3_000)
    small = treated | (np.arange(len(y)) >= MIN_ARM_CUSTOMERS - 1)  # fewer than the minimum in the holdout
    with pytest.raises(TargetingError, match=f"at least {MIN_ARM_CUSTOMERS}"):
        prepare(X, small, y)
    with pytest.raises(TargetingError, match="nothing to learn"):
        prepare(X, treated, np.zeros(len(y)))
    with pytest.raises(TargetingError, match="no feature varies"):
        prepare(pd.DataFrame({"city": ["上海"] * len(y)}), treated, y)
    gappy = X.assign(constant=1.0, orders=X["orders"].where(np.arange(len(y)) % 7 != 0))
    prepared = prepare(gappy, treated, y)
    assert prepared.dropped == ("constant",) and "constant" not in prepared.X
    assert any("orders" in note and "missing" in note for note in prepared.notes)
    result = evaluate(gappy, treated, y, metric="returned", variant="v", returned=y, revenue=None, redeemed=None,
                      costs=Costs(0.0), replicates=20, folds=3)
    assert np.isfinite(result.scores).all() and result.evaluation.notes == prepared.notes


def test_cost_optimal_cutoff_contacts_only_where_value_exceeds_cost() -> None:
    X, treated, y, tau = simulated(6_000)
    revenue = y * 100.0
    cheap = evaluate(X, treated, y, metric="returned", variant="v", returned=y, revenue=revenue, redeemed=None,
                     costs=Costs(contact=0.1), replicates=20, folds=3).evaluation
    dear = evaluate(X, treated, y, metric="returned", variant="v", returned=y, revenue=revenue, redeemed=None,
                    costs=Costs(contact=8.0), replicates=20, folds=3).evaluation
    # Returners bring ¥100: at ¥0.10 a contact most customers are worth it, at ¥8 (an 8-point uplift) few.
    assert dear.cost_optimal.share < cheap.cost_optimal.share
    assert dear.cost_optimal.share < 0.5
    assert dear.policy[-1].cost == pytest.approx(8.0 * len(y))
    assert dear.value_per_return == pytest.approx(100.0)


@pytest.fixture
def demo(engine: Engine) -> Engine:
    build_demo(engine, customers=8_000, today=datetime(2026, 11, 23, 4, 0))
    return engine


def test_designed_experiment_from_one_query_finds_the_repeat_buyers(demo: Engine, tmp_path: Path) -> None:
    with session_scope(demo) as session:
        experiment = get_experiment(session, TARGETING)
        learned = learn(session.connection(), experiment, replicates=20)
        customers = len(experiment.variants) and session.connection().exec_driver_sql(
            f"SELECT count(*) FROM assignments WHERE experiment_id = {experiment.id}").scalar()
        orders = dict(session.execute(select(Customer.customer_id, Customer.orders_before)).all())
    e = learned.result.evaluation
    assert len(learned.customer_ids) == customers and np.isfinite(learned.uplift).all()
    repeat = np.array([orders[c] >= REPEAT_BUYER_ORDERS for c in learned.customer_ids])
    assert learned.uplift[repeat].mean() > learned.uplift[~repeat].mean()  # the demo's true moderator
    assert e.policy[-1].cost > 0 and e.unit_cost > 0.05  # SMS + the coupons redeemed
    out = tmp_path / "scores.csv"
    result = runner.invoke(app, ["target", TARGETING, "--format", "json", "--bootstrap", "20", "--features",
                                 "orders_before,lifecycle_stage", "--scores-out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {"estimator", "qini", "auuc", "auuc_ci", "policy"} <= set(report)
    assert {"share", "incremental_returns", "ci", "cost", "roi"} <= set(report["policy"][0])
    scores = pd.read_csv(out)
    assert list(scores.columns) == ["customer_id", "uplift"] and len(scores) == customers
    assert scores["customer_id"].is_unique


def test_imported_results_learn_from_covariates_and_segments(engine: Engine, tmp_path: Path) -> None:
    X, treated, y, _ = simulated(3_000, seed=3)
    path = tmp_path / "results.csv"
    pd.DataFrame({"customer_id": [f"C{i:05d}" for i in range(len(y))], "arm": np.where(treated, "email", "none"),
                  "visit": y.astype(int), "orders": X["orders"], "kind": X["kind"]}).to_csv(path, index=False)
    import_results(engine, path, experiment="imported-test", variant_column="arm", control="none",
                   metrics=["visit"], covariates=["orders"], segments=["kind"], actor=cli_actor())
    with session_scope(engine) as session:
        learned = learn(session.connection(), get_experiment(session, "imported-test"), replicates=20)
    e = learned.result.evaluation
    assert e.metric == "visit" and set(e.features) == {"orders", "kind"}
    assert e.importance[0].feature == "kind" and e.qini_ci[0] > 0
    result = runner.invoke(app, ["target", "imported-test", "--features", "nope"])
    assert result.exit_code == 1 and "--features: unknown nope" in result.output
    result = runner.invoke(app, ["target", "imported-test", "--variant", "sms"])
    assert result.exit_code == 1 and "choose all or one of email" in result.output


def test_targeting_page_fits_only_on_a_click_and_shows_the_cutoff(engine: Engine, monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    import streamlit as st
    from sqlalchemy import func

    from experiments.models import AuditEntry
    from tests.test_app import add_role_users, open_page

    monkeypatch.setenv("RECALL_NO_DEMO", "1")
    build_demo(engine, customers=6_000, today=datetime(2026, 11, 23, 4, 0))
    st.cache_data.clear()
    st.cache_resource.clear()

    def audit_rows() -> int:
        with session_scope(engine) as session:
            return session.scalar(select(func.count()).select_from(AuditEntry))

    add_role_users(engine)
    before = audit_rows()
    at = open_page("targeting", "en", role="analyst")
    at.default_timeout = 240  # the click learns two cross-fitted models
    assert not at.exception, [e.value for e in at.exception]
    assert any("Not learned yet" in i.value for i in at.info) and audit_rows() == before
    at.selectbox(key="targeting_exp").set_value(TARGETING).run()
    at.button(key="targeting_fit").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [m.label for m in at.metric][:2] == ["Model", "Qini coefficient (0 = random)"]
    assert any("Cost-optimal" in s.value or "Contact only customers" in s.value for s in at.success)
    assert len(at.dataframe[0].value) == 20  # 5%, 10%, …, 100%
    assert audit_rows() == before  # learning reads; only the (audited) download writes

    viewer = open_page("overview", "en", role="viewer")
    with pytest.raises(ValueError, match="Could not find a navigation page"):  # not in a viewer's navigation
        viewer.switch_page("views/targeting.py")
    st.cache_data.clear()
    st.cache_resource.clear()

"""An experiment's lifecycle: launch (audience explained, nobody refused), stop, decide, roll out, clone.

Each transition is checked against the actor's role and the experiment's status, and recorded in the
audit log in its own transaction; refusals leave the experiment as it was.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, insert, select
from typer.testing import CliRunner

from analysis.render import render_markdown
from analysis.report import build_report
from cli import app
from experiments.access import Actor, Forbidden, Role
from experiments.assignment import assign, in_global_holdout
from experiments.audit import Action, entries
from experiments.db import session_scope
from experiments.lifecycle import LaunchRefused, WrongState, clone, decide, launch, launch_audience, roll_out, stop
from experiments.models import Assignment, Decision, Event, EventType, ExperimentStatus, Send
from experiments.policy import ContactPolicy
from experiments.store import get_experiment, last_rollout
from tests.helpers import AS_OF, add_customers, example_spec, store_spec

NAME = "winback-coupon-2026-12"
IDS = [f"C{i:03d}" for i in range(60)]
OPERATOR = Actor("ops", Role.OPERATOR, "app")
ANALYST = Actor("ana", Role.ANALYST, "app")
VIEWER = Actor("boss", Role.VIEWER, "app")
runner = CliRunner()


@pytest.fixture
def draft(engine: Engine) -> Engine:
    add_customers(engine, IDS)
    store_spec(engine, example_spec())
    return engine


def status_of(engine: Engine, name: str = NAME) -> ExperimentStatus:
    with session_scope(engine) as session:
        return get_experiment(session, name).status


def assigned(engine: Engine, name: str = NAME) -> int:
    with session_scope(engine) as session:
        experiment = get_experiment(session, name)
        return session.scalar(select(func.count()).select_from(Assignment)
                              .where(Assignment.experiment_id == experiment.id))


def actions(engine: Engine, name: str = NAME) -> list[str]:
    with session_scope(engine) as session:
        return [e.action for e in reversed(entries(session, target=name))]


def test_draft_to_rolled_out_with_every_step_audited(draft: Engine) -> None:
    summary = launch(draft, NAME, actor=OPERATOR, as_of=AS_OF)
    assert summary.newly_assigned == len(IDS) and status_of(draft) == ExperimentStatus.RUNNING
    stop(draft, NAME, actor=OPERATOR, reason="two weeks are up")
    assert status_of(draft) == ExperimentStatus.STOPPED
    decide(draft, NAME, actor=OPERATOR, variant="coupon10_sms_10h", reason="  more returns, ROI above 1  ")
    roll_out(draft, NAME, actor=OPERATOR)
    with session_scope(draft) as session:
        e = get_experiment(session, NAME)
        assert e.status == ExperimentStatus.ROLLED_OUT
        assert (e.decision, e.decided_variant, e.decision_reason, e.decided_by) == (
            Decision.SHIP, "coupon10_sms_10h", "more returns, ROI above 1", "ops")
        assert e.stopped_at and e.decided_at and e.rolled_out_at and e.launched_at == AS_OF
        log = {entry.action: entry for entry in entries(session, target=NAME)}
    assert actions(draft) == [Action.LAUNCH.value, Action.STOP.value, Action.DECIDE.value, Action.ROLL_OUT.value]
    assert log["launch"].details["newly_assigned"] == len(IDS) and log["launch"].details["eligible"] == len(IDS)
    assert log["decide"].details == {"decision": "ship", "variant": "coupon10_sms_10h",
                                     "reason": "more returns, ROI above 1"}
    assert {log[a].actor for a in log} == {"ops"} and log["stop"].details["reason"] == "two weeks are up"


@pytest.mark.parametrize(("actor", "action"), [
    (VIEWER, lambda e, a: launch(e, NAME, actor=a, as_of=AS_OF)),
    (ANALYST, lambda e, a: launch(e, NAME, actor=a, as_of=AS_OF)),
    (ANALYST, lambda e, a: clone(e, NAME, "copy", actor=a)),
])
def test_a_role_without_the_permission_is_refused_and_the_refusal_recorded(draft: Engine, actor, action) -> None:  # noqa: ANN001
    with pytest.raises(Forbidden, match=actor.name):
        action(draft, actor)
    assert status_of(draft) == ExperimentStatus.DRAFT and assigned(draft) == 0
    with session_scope(draft) as session:
        refused = entries(session, actions=[Action.FORBIDDEN])
    assert refused and refused[0].actor == actor.name


def test_stop_and_decide_need_the_decide_permission(draft: Engine) -> None:
    launch(draft, NAME, actor=OPERATOR, as_of=AS_OF)
    with pytest.raises(Forbidden):
        stop(draft, NAME, actor=ANALYST)
    stop(draft, NAME, actor=OPERATOR)
    with pytest.raises(Forbidden):
        decide(draft, NAME, actor=VIEWER, variant=None, reason="no")
    assert status_of(draft) == ExperimentStatus.STOPPED


def test_transitions_out_of_order_are_refused_with_what_to_do(draft: Engine) -> None:
    with pytest.raises(WrongState, match="draft, not running"):
        stop(draft, NAME, actor=OPERATOR)
    launch(draft, NAME, actor=OPERATOR, as_of=AS_OF)
    with pytest.raises(WrongState, match="stop it first"):
        decide(draft, NAME, actor=OPERATOR, variant=None, reason="too early")
    with pytest.raises(WrongState, match="decide it first"):
        roll_out(draft, NAME, actor=OPERATOR)
    stop(draft, NAME, actor=OPERATOR)
    with pytest.raises(WrongState, match="clone it"):
        launch(draft, NAME, actor=OPERATOR, as_of=AS_OF)
    with pytest.raises(ValueError, match="written reason"):
        decide(draft, NAME, actor=OPERATOR, variant=None, reason="  ")
    with pytest.raises(ValueError, match="not one of its contacted variants"):
        decide(draft, NAME, actor=OPERATOR, variant="holdout", reason="the control")
    decide(draft, NAME, actor=OPERATOR, variant=None, reason="no variant paid for itself")
    with pytest.raises(WrongState, match="no-go"):
        roll_out(draft, NAME, actor=OPERATOR)
    assert status_of(draft) == ExperimentStatus.DECIDED
    assert actions(draft) == ["launch", "stop", "decide"]


def test_a_launch_of_nobody_is_refused_and_leaves_a_draft(engine: Engine) -> None:
    add_customers(engine, IDS, inactive_days=5)  # active customers: none in the lapsed_1_3m cohort
    store_spec(engine, example_spec())
    with pytest.raises(LaunchRefused, match="no customer is in cohort 'lapsed_1_3m'") as refused:
        launch(engine, NAME, actor=OPERATOR, as_of=AS_OF)
    assert refused.value.audience.eligible == 0
    assert status_of(engine) == ExperimentStatus.DRAFT and assigned(engine) == 0
    assert actions(engine) == []


def test_a_launch_blocked_by_the_layer_names_the_experiment_holding_the_customers(draft: Engine) -> None:
    store_spec(draft, example_spec(name="first-campaign"))
    launch(draft, "first-campaign", actor=OPERATOR, as_of=AS_OF)
    explained = []
    with pytest.raises(LaunchRefused, match=r"layer 'recall': first-campaign \(60\)"):
        launch(draft, NAME, actor=OPERATOR, as_of=AS_OF, explain=explained.append)
    assert explained[0].held_by_layer == {"first-campaign": len(IDS)} and explained[0].to_assign == 0
    assert status_of(draft) == ExperimentStatus.DRAFT and assigned(draft) == 0
    stop(draft, "first-campaign", actor=OPERATOR)  # a stopped experiment frees its customers
    assert launch(draft, NAME, actor=OPERATOR, as_of=AS_OF).newly_assigned == len(IDS)


def test_the_audience_counts_holdout_unsubscribed_and_capped_customers(draft: Engine) -> None:
    policy = ContactPolicy(global_holdout_share=0.3)
    held_out = {c for c in IDS if in_global_holdout(policy, c)}
    free = [c for c in IDS if c not in held_out]
    unsubscribed, capped = free[:2], free[2:5]
    store_spec(draft, example_spec(name="elsewhere", layer="other"))
    assign(draft, "elsewhere", as_of=AS_OF - timedelta(days=3), policy=ContactPolicy())
    with session_scope(draft) as session:
        other = get_experiment(session, "elsewhere")
        variant_of = dict(session.execute(select(Assignment.customer_id, Assignment.variant_id)
                                          .where(Assignment.experiment_id == other.id)).all())
        session.execute(insert(Event), [dict(customer_id=c, event_type=EventType.UNSUBSCRIBE,
                                             occurred_at=AS_OF - timedelta(days=1), value=0) for c in unsubscribed])
        # The dormant cap is 2 touches in 7 days: two touches this week reach it.
        session.execute(insert(Send), [dict(experiment_id=other.id, customer_id=c, step=step,
                                            variant_id=variant_of[c], channel="sms",
                                            scheduled_at=AS_OF - timedelta(days=1 + step))
                                       for c in capped for step in (0, 1)])
    found = launch_audience(draft, NAME, AS_OF, policy)
    assert (found.eligible, found.in_global_holdout, found.to_assign) == (len(IDS), len(held_out), len(free))
    assert (found.unsubscribed, found.capped, found.reachable) == (2, 3, len(free) - 5)
    assert found.held_by_layer == {}  # "elsewhere" runs in another layer
    summary = launch(draft, NAME, actor=OPERATOR, as_of=AS_OF, policy=policy)
    assert summary.newly_assigned == len(free) and summary.in_global_holdout == len(held_out)


def test_the_launch_and_its_audit_entry_are_one_transaction(draft: Engine) -> None:
    def explain_then_fail(audience) -> None:  # noqa: ANN001
        raise RuntimeError("the terminal went away")

    with pytest.raises(RuntimeError):
        launch(draft, NAME, actor=OPERATOR, as_of=AS_OF, explain=explain_then_fail)
    assert status_of(draft) == ExperimentStatus.DRAFT and assigned(draft) == 0 and actions(draft) == []


def test_clone_copies_the_design_with_a_fresh_salt(draft: Engine) -> None:
    launch(draft, NAME, actor=OPERATOR, as_of=AS_OF)
    clone(draft, NAME, "winback-again", actor=OPERATOR)
    with session_scope(draft) as session:
        original, copy = get_experiment(session, NAME), get_experiment(session, "winback-again")
        assert copy.status == ExperimentStatus.DRAFT and copy.salt != original.salt
        assert [(v.name, v.share, v.coupon, v.template) for v in copy.variants] == \
            [(v.name, v.share, v.coupon, v.template) for v in original.variants]
        assert (copy.cohort, copy.layer, copy.primary_metric) == (original.cohort, original.layer,
                                                                  original.primary_metric)
        created = entries(session, target="winback-again")
    assert created[0].action == "experiment_create" and created[0].details == {"cloned_from": NAME}
    with pytest.raises(ValueError, match="exists"):
        clone(draft, NAME, "winback-again", actor=OPERATOR)
    with pytest.raises(ValueError, match="path separator"):
        clone(draft, NAME, "a/b", actor=OPERATOR)


def test_a_rollout_is_remembered_by_the_next_campaign_of_the_cohort(draft: Engine) -> None:
    launch(draft, NAME, actor=OPERATOR, as_of=AS_OF)
    stop(draft, NAME, actor=OPERATOR)
    decide(draft, NAME, actor=OPERATOR, variant="coupon10_sms_10h", reason="best ROI")
    roll_out(draft, NAME, actor=OPERATOR)
    clone(draft, NAME, "winback-2027", actor=OPERATOR)
    store_spec(draft, example_spec(name="other-cohort", cohort="silent_3m"))
    with session_scope(draft) as session:
        remembered = last_rollout(session, "lapsed_1_3m", "recall", excluding="winback-2027")
        assert last_rollout(session, "silent_3m", "recall") is None
    assert (remembered.experiment, remembered.variant, remembered.reason) == (NAME, "coupon10_sms_10h", "best ROI")
    report = build_report(draft, "winback-2027")
    assert report.previous_rollout == remembered
    assert build_report(draft, "other-cohort").previous_rollout is None
    assert "coupon10_sms_10h" in render_markdown(report, lang="en") and NAME in render_markdown(report, lang="zh")
    shown = runner.invoke(app, ["experiment", "show", "winback-2027"])
    assert shown.exit_code == 0 and "coupon10_sms_10h" in shown.output and NAME in shown.output


def test_cli_explains_refuses_and_moves_through_the_lifecycle(draft: Engine) -> None:  # noqa: ARG001
    def recall(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    store_spec(draft, example_spec(name="first-campaign"))
    recall("assign", "first-campaign", "--as-of", "2026-12-01T00:00", "--no-progress")
    dry = recall("assign", NAME, "--as-of", "2026-12-01T00:00", "--dry-run")
    assert "held by running experiment first-campaign (same layer): 60" in dry and "to assign: 0" in dry
    refused = recall("assign", NAME, "--as-of", "2026-12-01T00:00", "--no-progress", code=1)
    assert "refusing to launch" in refused and "first-campaign (60)" in refused
    assert "draft" in recall("experiment", "show", NAME)
    recall("experiment", "decide", "first-campaign", "--no-go", "--reason", "x", code=1)  # still running
    recall("experiment", "stop", "first-campaign", "--reason", "make room")
    recall("experiment", "decide", "first-campaign", "--ship", "coupon5_sms_10h", "--no-go", "--reason", "x", code=1)
    recall("experiment", "decide", "first-campaign", "--ship", "coupon5_sms_10h", "--reason", "cheaper")
    recall("experiment", "rollout", "first-campaign")
    shown = recall("experiment", "show", "first-campaign")
    assert "rolled_out" in shown and "ship coupon5_sms_10h" in shown and "cheaper" in shown
    assert "60 customers newly assigned" in recall("assign", NAME, "--as-of", "2026-12-01T00:00", "--no-progress")
    recall("experiment", "clone", NAME, "again")
    assert "again" in recall("experiment", "list")

"""The contact policy across experiments: mutual exclusion, global holdout, frequency and holiday caps.

Every held-back customer stays assigned (intention-to-treat) and is recorded in ``contact_holds``.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from experiments.access import cli_actor
from experiments.assignment import BUCKETS, assign, bucket
from experiments.db import session_scope
from experiments.models import Assignment, ContactHold, Event, EventType, Experiment, ExperimentStatus, Send, Variant
from experiments.policy import ContactPolicy, FrequencyCap, HoldReason
from experiments.sendlist import write_send_lists
from tests.helpers import AS_OF, add_customers, example_spec, store_spec

IDS = [f"C{i:04d}" for i in range(600)]


def launch(engine: Engine, name: str, tmp_path: Path, *, start: str, layer: str, cohort: str = "lapsed_1_3m",
           policy: ContactPolicy | None = None) -> dict[str, int]:
    """Create, assign and build the send lists of one experiment (due on its start day); held-back
    counts per variant."""
    store_spec(engine, example_spec(name=name, start=start, layer=layer, cohort=cohort))
    assign(engine, name, as_of=AS_OF, policy=policy)
    files = write_send_lists(engine, name, tmp_path / name, actor=cli_actor(), due=date.fromisoformat(start),
                             now=AS_OF, policy=policy)
    return {f.variant: f.held_by_caps for f in files}


def contacted_ids(engine: Engine, name: str) -> set[str]:
    with session_scope(engine) as session:
        return set(session.scalars(
            select(Send.customer_id).join(Experiment, Experiment.id == Send.experiment_id).where(Experiment.name == name)
        ))


def assigned_contacted_variant(engine: Engine, name: str) -> set[str]:
    with session_scope(engine) as session:
        return set(session.scalars(
            select(Assignment.customer_id)
            .join(Experiment, Experiment.id == Assignment.experiment_id)
            .join(Variant, Variant.id == Assignment.variant_id)
            .where(Experiment.name == name, Variant.is_control.is_(False))
        ))


def holds(engine: Engine, name: str) -> dict[str, str]:
    with session_scope(engine) as session:
        return dict(session.execute(
            select(ContactHold.customer_id, ContactHold.reason)
            .join(Experiment, Experiment.id == ContactHold.experiment_id).where(Experiment.name == name)
        ).all())


def test_dormant_cap_holds_back_a_customer_messaged_twice_this_week(engine: Engine, tmp_path: Path) -> None:
    add_customers(engine, IDS, inactive_days=60)  # dormant: at most 2 touches in any 7 days
    launch(engine, "a", tmp_path, start="2026-12-01", layer="a")
    launch(engine, "b", tmp_path, start="2026-12-03", layer="b")
    held = launch(engine, "c", tmp_path, start="2026-12-05", layer="c")

    twice = contacted_ids(engine, "a") & contacted_ids(engine, "b")
    expected = twice & assigned_contacted_variant(engine, "c")
    assert len(expected) > 50
    assert holds(engine, "c") == {c: HoldReason.DORMANT_CAP for c in expected}
    assert sum(held.values()) == len(expected)
    assert contacted_ids(engine, "c") == assigned_contacted_variant(engine, "c") - expected
    # Held back, yet still assigned: the analysis stays intention-to-treat.
    assert expected <= assigned_contacted_variant(engine, "c")
    # A week later the window has passed: nobody in "d" is held back.
    assert sum(launch(engine, "d", tmp_path, start="2026-12-15", layer="d").values()) == 0


def test_active_cap_counts_sends_of_other_experiments(engine: Engine, tmp_path: Path) -> None:
    add_customers(engine, IDS, inactive_days=5)  # active customers
    policy = ContactPolicy(active_cap=FrequencyCap(1, 30))
    launch(engine, "a", tmp_path, start="2026-12-01", layer="a", cohort="all", policy=policy)
    launch(engine, "b", tmp_path, start="2026-12-20", layer="b", cohort="all", policy=policy)
    expected = contacted_ids(engine, "a") & assigned_contacted_variant(engine, "b")
    assert holds(engine, "b") == {c: HoldReason.ACTIVE_CAP for c in expected}
    assert not contacted_ids(engine, "a") & contacted_ids(engine, "b")


def test_holiday_cap(engine: Engine, tmp_path: Path) -> None:
    add_customers(engine, IDS, inactive_days=60)
    policy = ContactPolicy(dormant_cap=FrequencyCap(10, 7), holiday_daily_cap=1, holidays=frozenset({date(2026, 12, 5)}))
    launch(engine, "a", tmp_path, start="2026-12-05", layer="a", policy=policy)
    launch(engine, "b", tmp_path, start="2026-12-05", layer="b", policy=policy)
    expected = contacted_ids(engine, "a") & assigned_contacted_variant(engine, "b")
    assert holds(engine, "b") == {c: HoldReason.HOLIDAY_CAP for c in expected}
    # The same two sends on an ordinary day are within the caps.
    launch(engine, "c", tmp_path, start="2026-12-08", layer="c", policy=policy)
    launch(engine, "d", tmp_path, start="2026-12-08", layer="d", policy=policy)
    assert holds(engine, "d") == {}


def test_unsubscribed_are_recorded_as_held_back(engine: Engine, tmp_path: Path) -> None:
    add_customers(engine, IDS)
    store_spec(engine, example_spec())
    assign(engine, "winback-coupon-2026-12", as_of=AS_OF)
    gone = sorted(assigned_contacted_variant(engine, "winback-coupon-2026-12"))[:5]
    with session_scope(engine) as session:
        session.add_all(Event(customer_id=c, event_type=EventType.UNSUBSCRIBE, occurred_at=AS_OF - timedelta(days=1))
                        for c in gone)
    write_send_lists(engine, "winback-coupon-2026-12", tmp_path / "first", actor=cli_actor(), now=AS_OF)
    again = write_send_lists(engine, "winback-coupon-2026-12", tmp_path / "again", actor=cli_actor(), now=AS_OF)
    assert [f.rows for f in again] == [0, 0]  # rebuilding lists and records nothing twice
    assert holds(engine, "winback-coupon-2026-12") == {c: HoldReason.UNSUBSCRIBED for c in gone}


def test_mutual_exclusion_within_a_layer(engine: Engine, tmp_path: Path) -> None:
    add_customers(engine, IDS)
    store_spec(engine, example_spec(name="first"))
    assign(engine, "first", as_of=AS_OF)
    store_spec(engine, example_spec(name="second"))
    summary = assign(engine, "second", as_of=AS_OF)
    assert summary.newly_assigned == 0 and summary.in_other_experiment == len(IDS)

    store_spec(engine, example_spec(name="other-layer", layer="push"))
    assert assign(engine, "other-layer", as_of=AS_OF).newly_assigned == len(IDS)

    with session_scope(engine) as session:
        session.execute(Experiment.__table__.update().where(Experiment.name == "first").values(
            status=ExperimentStatus.STOPPED))
    assert assign(engine, "second", as_of=AS_OF).newly_assigned == len(IDS)  # a stopped test frees its customers


def test_global_holdout_is_stable_across_experiments(engine: Engine) -> None:
    add_customers(engine, IDS)
    policy = ContactPolicy(global_holdout_share=0.2)
    for name, layer in (("first", "a"), ("second", "b")):
        store_spec(engine, example_spec(name=name, layer=layer))
        summary = assign(engine, name, as_of=AS_OF, policy=policy)
        assert summary.in_global_holdout + summary.newly_assigned == len(IDS)
    expected = {c for c in IDS if bucket(policy.global_holdout_salt, c) < 0.2 * BUCKETS}
    with session_scope(engine) as session:
        assigned = set(session.scalars(select(Assignment.customer_id)))
    assert assigned == set(IDS) - expected
    assert 0.15 < len(expected) / len(IDS) < 0.25


@pytest.mark.parametrize("text", ["2", "2/0", "x/7", "-1/7"])
def test_bad_cap_setting_names_the_variable(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECALL_CAP_DORMANT", text)
    with pytest.raises(ValueError, match="RECALL_CAP_DORMANT"):
        ContactPolicy.from_env()


def test_default_policy() -> None:
    policy = ContactPolicy()
    assert (policy.dormant_cap, policy.active_cap, policy.holiday_daily_cap) == (FrequencyCap(2, 7),
                                                                                 FrequencyCap(4, 30), 2)
    assert date(2026, 10, 1) in policy.holidays and date(2026, 12, 1) not in policy.holidays


def test_channel_cap_counts_only_that_channel(engine: Engine, tmp_path: Path) -> None:
    add_customers(engine, IDS, inactive_days=60)
    policy = ContactPolicy(dormant_cap=FrequencyCap(10, 7), channel_caps={"sms": FrequencyCap(1, 30)})
    launch(engine, "a", tmp_path, start="2026-12-01", layer="a", policy=policy)
    launch(engine, "b", tmp_path, start="2026-12-10", layer="b", policy=policy)
    expected = contacted_ids(engine, "a") & assigned_contacted_variant(engine, "b")
    assert holds(engine, "b") == {c: HoldReason.CHANNEL_CAP for c in expected}
    # A push campaign is not held by the SMS cap.
    spec = example_spec(name="c", layer="c", start="2026-12-12")
    variants = [v.model_dump() for v in spec.variants]
    for v in variants[1:]:
        v["channel"] = "push"
    store_spec(engine, example_spec(name="c", layer="c", start="2026-12-12", variants=variants))
    assign(engine, "c", as_of=AS_OF, policy=policy)
    write_send_lists(engine, "c", tmp_path / "c", actor=cli_actor(), due=date(2026, 12, 12), now=AS_OF, policy=policy)
    assert holds(engine, "c") == {}


def test_channel_caps_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECALL_CAP_CHANNELS", "phone=1/30, mms=2/7")
    assert ContactPolicy.from_env().channel_caps == {"phone": FrequencyCap(1, 30), "mms": FrequencyCap(2, 7)}
    monkeypatch.setenv("RECALL_CAP_CHANNELS", "phone=often")
    with pytest.raises(ValueError, match=r"RECALL_CAP_CHANNELS \(phone\)"):
        ContactPolicy.from_env()

"""Send lists: contacted variants only, never the control, never the unsubscribed."""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from experiments.assignment import assign
from experiments.db import session_scope
from experiments.models import Assignment, Event, EventType, Send, Variant
from tests.helpers import AS_OF, add_customers, example_spec, store_spec

NAME = "winback-coupon-2026-12"


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_send_lists_exclude_control_and_unsubscribed(engine, tmp_path: Path) -> None:  # noqa: ANN001
    from experiments.sendlist import write_send_lists

    ids = [f"C{i:04d}" for i in range(600)]
    add_customers(engine, ids)
    store_spec(engine, example_spec())
    assign(engine, NAME, as_of=AS_OF)
    with session_scope(engine) as session:
        by_variant = dict(session.execute(
            select(Assignment.customer_id, Variant.name).join(Variant, Variant.id == Assignment.variant_id)
        ).all())
        contacted = sorted(c for c, v in by_variant.items() if v != "holdout")
        gone = contacted[:7]
        for c in gone:
            session.add(Event(customer_id=c, event_type=EventType.UNSUBSCRIBE, occurred_at=AS_OF - timedelta(days=3)))
        # An unsubscribe after the list is built does not (yet) remove anyone.
        session.add(Event(customer_id=contacted[8], event_type=EventType.UNSUBSCRIBE,
                          occurred_at=AS_OF + timedelta(days=30)))

    files = write_send_lists(engine, NAME, tmp_path / "out", now=AS_OF + timedelta(hours=1))
    assert sorted(f.variant for f in files) == ["coupon10_sms_10h", "coupon5_sms_10h"]
    listed: dict[str, str] = {}
    for f in files:
        rows = read(f.path)
        assert len(rows) == f.rows
        assert list(rows[0]) == ["customer_id", "step", "channel", "message", "send_at"]
        for row in rows:
            listed[row["customer_id"]] = f.variant
            assert row["channel"] == "sms"
            assert row["send_at"] == "2026-12-01T10:00:00+08:00"
            assert "{" not in row["message"] and "回TD退订" in row["message"]
        coupon = "10" if f.variant.startswith("coupon10") else "5"
        assert f"为您预留{coupon}元礼金" in rows[0]["message"]

    assert not any(by_variant[c] == "holdout" for c in listed)
    assert not set(gone) & set(listed)
    assert set(listed) == set(contacted) - set(gone)
    assert sum(f.suppressed_unsubscribed for f in files) == 7
    assert all(listed[c] == by_variant[c] for c in listed)

    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Send)) == len(listed)
    write_send_lists(engine, NAME, tmp_path / "again", now=AS_OF + timedelta(hours=2))
    with session_scope(engine) as session:  # rebuilding a list records no send twice
        assert session.scalar(select(func.count()).select_from(Send)) == len(listed)


REMINDER = "【好物商城】您的{coupon}元礼金{send_date}后过期 回TD退订"


def test_a_sequence_lists_every_step_and_caps_count_every_step(engine, tmp_path: Path) -> None:  # noqa: ANN001
    from experiments.policy import HoldReason
    from experiments.models import ContactHold
    from experiments.sendlist import write_send_lists

    add_customers(engine, [f"C{i:04d}" for i in range(200)], inactive_days=60)  # dormant: 2 touches per 7 days
    spec = example_spec()
    variants = [v.model_dump() for v in spec.variants]
    variants[2]["touches"] = [dict(day=3, channel="sms", template=REMINDER, send_hour=20),
                              dict(day=5, channel="push", template="好物商城：礼金今天到期", send_hour=10)]
    store_spec(engine, example_spec(variants=variants))
    assign(engine, NAME, as_of=AS_OF)
    files = {f.variant: f for f in write_send_lists(engine, NAME, tmp_path, now=AS_OF)}

    sequence = read(files["coupon10_sms_10h"].path)
    customers = {r["customer_id"] for r in sequence}
    first = [r for r in sequence if r["step"] == "0"]
    reminders = [r for r in sequence if r["step"] == "1"]
    assert len(first) == len(reminders) == len(customers) > 50
    assert {r["send_at"] for r in reminders} == {"2026-12-04T20:00:00+08:00"}
    assert all("12月4日后过期" in r["message"] for r in reminders)
    # The third touch would be the third in 7 days for a dormant customer: held back, recorded per step.
    assert not [r for r in sequence if r["step"] == "2"]
    assert files["coupon10_sms_10h"].held_by_caps == len(customers)
    assert files["coupon5_sms_10h"].held_by_caps == 0
    with session_scope(engine) as session:
        steps = dict(session.execute(select(Send.step, func.count()).where(Send.customer_id.in_(customers))
                                     .group_by(Send.step)).all())
        holds = session.execute(select(ContactHold.step, ContactHold.reason).distinct()).all()
    assert steps == {0: len(customers), 1: len(customers)}
    assert holds == [(2, HoldReason.DORMANT_CAP)]


def test_a_send_list_built_in_chunks_equals_one_built_at_once(tmp_path: Path) -> None:
    """Same files, same recorded sends and holds, whatever the chunk size (here with sequences, caps
    from another experiment's sends, and unsubscribes)."""
    from experiments.db import make_engine
    from experiments.models import ContactHold, Experiment
    from experiments.sendlist import write_send_lists
    from tests.conftest import fresh_database

    def folder(path: Path) -> Path:
        path.mkdir()
        return path

    def build(chunk: int) -> tuple[list, dict[str, str], dict[str, list[tuple]]]:
        engine = make_engine(fresh_database(folder(tmp_path / f"db{chunk}")))
        add_customers(engine, [f"C{i:04d}" for i in range(300)], inactive_days=60)
        spec = example_spec()
        variants = [v.model_dump() for v in spec.variants]
        variants[2]["touches"] = [dict(day=3, channel="sms", template=REMINDER, send_hour=20)]
        store_spec(engine, example_spec(name="earlier", layer="other"))
        assign(engine, "earlier", as_of=AS_OF)
        write_send_lists(engine, "earlier", tmp_path / f"earlier{chunk}", now=AS_OF, chunk=chunk)
        store_spec(engine, example_spec(variants=variants))
        assign(engine, NAME, as_of=AS_OF)
        with session_scope(engine) as session:
            for c in ("C0003", "C0100", "C0250"):
                session.add(Event(customer_id=c, event_type=EventType.UNSUBSCRIBE, occurred_at=AS_OF - timedelta(days=1)))
        out = tmp_path / f"out{chunk}"
        files = write_send_lists(engine, NAME, out, now=AS_OF, chunk=chunk, progress=chunk == 7)
        again = write_send_lists(engine, NAME, out, now=AS_OF, chunk=chunk)  # rebuilt: nothing recorded twice
        with session_scope(engine) as session:
            recorded = {
                "sends": sorted(session.execute(select(
                    Experiment.name, Send.customer_id, Send.step, Variant.name, Send.channel, Send.scheduled_at,
                    Send.message).join(Experiment, Experiment.id == Send.experiment_id)
                    .join(Variant, Variant.id == Send.variant_id)).all()),
                "holds": sorted(session.execute(select(
                    ContactHold.customer_id, ContactHold.step, ContactHold.reason)).all()),
            }
        engine.dispose()
        summary = [(f.variant, f.rows, f.suppressed_unsubscribed, f.held_by_caps) for f in files + again]
        return summary, {f.path.name: f.path.read_text(encoding="utf-8") for f in files}, recorded

    chunked, at_once = build(7), build(100_000)
    assert chunked == at_once
    summary, lists, recorded = at_once
    assert sum(s[2] for s in summary) > 0 and sum(s[3] for s in summary) > 0 and len(recorded["holds"]) > 0
    assert all("phone" not in text.splitlines()[0] for text in lists.values())

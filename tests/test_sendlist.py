"""Send lists: each day's due touches of the contacted variants; never the control, never an opted-out
customer, never inside quiet hours, never a touch twice, never a file outside --out."""

from __future__ import annotations

import csv
import hashlib
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, func, select, update

from experiments.access import Actor, Forbidden, Role, cli_actor
from experiments.assignment import assign
from experiments.audit import Action, entries
from experiments.db import session_scope
from experiments.identifiers import InvalidIdentifier
from experiments.importer import import_events, import_results
from experiments.models import (
    Assignment,
    ContactHold,
    Event,
    EventType,
    Experiment,
    ExperimentStatus,
    Send,
    Variant,
)
from experiments.policy import HoldReason
from experiments.sendlist import SendListRefused, list_path, local_day, write_send_lists
from experiments.store import utcnow
from tests.helpers import AS_OF, add_customers, example_spec, store_spec

NAME = "winback-coupon-2026-12"
DAY0 = date(2026, 12, 1)  # the example spec's start; AS_OF is its local midnight
REMINDER = "【好物商城】您的{coupon}元礼金{send_date}后过期 回TD退订"


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def send_lists(engine: Engine, out: Path, *, due: date = DAY0, **options) -> dict[str, object]:
    """The CLI's call (the operating-system user as admin), files by variant."""
    return {f.variant: f for f in write_send_lists(engine, NAME, out, actor=cli_actor(), due=due, now=AS_OF, **options)}


def listed(files: dict) -> dict[str, list[dict[str, str]]]:
    """customer → rows of every written file."""
    rows: dict[str, list[dict[str, str]]] = {}
    for f in files.values():
        for row in read(f.path) if f.path else []:
            rows.setdefault(row["customer_id"], []).append(row)
    return rows


def variant_of(engine: Engine) -> dict[str, str]:
    with session_scope(engine) as session:
        return dict(session.execute(
            select(Assignment.customer_id, Variant.name).join(Variant, Variant.id == Assignment.variant_id)).all())


def opt_out(engine: Engine, customers: list[str], kind: EventType = EventType.UNSUBSCRIBE,
            at: timedelta = timedelta(days=-3)) -> None:
    with session_scope(engine) as session:
        session.add_all(Event(customer_id=c, event_type=kind, occurred_at=AS_OF + at) for c in customers)


def launched(engine: Engine, n: int = 600, touches: list[dict] | None = None, **changes) -> dict[str, str]:
    """The example experiment assigned to ``n`` customers (coupon10 gets ``touches``); customer → variant."""
    add_customers(engine, [f"C{i:04d}" for i in range(n)])
    spec = example_spec()
    variants = [v.model_dump() for v in spec.variants]
    variants[2]["touches"] = touches or []
    store_spec(engine, example_spec(variants=variants, **changes))
    assign(engine, NAME, as_of=AS_OF)
    return variant_of(engine)


def count(engine: Engine, model: type) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(model))


def test_send_lists_exclude_control_and_opted_out(engine: Engine, tmp_path: Path) -> None:
    by_variant = launched(engine)
    contacted = sorted(c for c, v in by_variant.items() if v != "holdout")
    gone = contacted[:7]
    opt_out(engine, gone)
    # Dated later today than the list is built: an opt-out of any date imported so far holds.
    opt_out(engine, [contacted[8]], at=timedelta(hours=2))
    opt_out(engine, [contacted[9]], EventType.COMPLAINT, at=timedelta(days=-1))  # a complaint is an opt-out
    suppressed = set(gone) | {contacted[8], contacted[9]}

    files = send_lists(engine, tmp_path / "out")
    assert sorted(files) == ["coupon10_sms_10h", "coupon5_sms_10h"]
    rows = listed(files)
    for f in files.values():
        lines = read(f.path)
        assert len(lines) == f.rows and f.path.name == f"{NAME}__{f.variant}.csv"
        assert list(lines[0]) == ["customer_id", "step", "channel", "message", "send_at"]
        coupon = "10" if f.variant.startswith("coupon10") else "5"
        assert all(line["message"].startswith(f"【好物商城】好久不见！为您预留{coupon}元礼金") for line in lines)
        assert {(line["step"], line["channel"], line["send_at"]) for line in lines} == \
            {("0", "sms", "2026-12-01T10:00:00+08:00")}
    assert set(rows) == set(contacted) - suppressed
    assert all(by_variant[line["customer_id"]] == f.variant for f in files.values() for line in read(f.path))
    assert sum(f.suppressed_unsubscribed for f in files.values()) == len(suppressed)
    with session_scope(engine) as session:
        assert set(session.scalars(select(Send.customer_id))) == set(rows)
        reasons = dict(session.execute(select(ContactHold.customer_id, ContactHold.reason)).all())
    assert reasons == {c: HoldReason.UNSUBSCRIBED for c in gone} | {contacted[8]: HoldReason.UNSUBSCRIBED,
                                                                   contacted[9]: HoldReason.COMPLAINED}

    # Rebuilding today's lists lists nothing already exported (and writes no empty file).
    again = send_lists(engine, tmp_path / "again")
    assert [(f.rows, f.path) for f in again.values()] == [(0, None), (0, None)]
    assert not list((tmp_path / "again").iterdir())
    assert count(engine, Send) == len(rows)


def test_spaces_around_an_id_in_the_events_file_still_match(engine: Engine, tmp_path: Path) -> None:
    by_variant = launched(engine, 200)
    customer = min(c for c, v in by_variant.items() if v != "holdout")
    events = tmp_path / "unsubscribes.csv"
    events.write_text(f"customer_id,event_type,occurred_at,value\n  {customer}\u3000,unsubscribe,2026-11-30 09:00,\n",
                      encoding="utf-8")
    import_events(engine, events, actor=cli_actor())
    rows = listed(send_lists(engine, tmp_path / "out"))
    assert customer not in rows and len(rows) == sum(v != "holdout" for v in by_variant.values()) - 1


def test_each_touch_of_a_sequence_is_listed_on_its_own_day(engine: Engine, tmp_path: Path) -> None:
    touches = [dict(day=3, channel="sms", template=REMINDER, send_hour=20),
               dict(day=7, channel="push", template="好物商城：礼金今天到期", send_hour=10)]
    by_variant = launched(engine, 300, touches, attribution_days=14)
    sequence = sorted(c for c, v in by_variant.items() if v == "coupon10_sms_10h")
    single = sorted(c for c, v in by_variant.items() if v == "coupon5_sms_10h")

    day0 = send_lists(engine, tmp_path / "day0")
    assert {r[0]["step"] for r in listed(day0).values()} == {"0"}  # day 0: only the first touch, in both arms
    assert set(listed(day0)) == set(sequence) | set(single)
    assert listed(send_lists(engine, tmp_path / "day1", due=DAY0 + timedelta(days=1))) == {}  # nothing due

    # Someone unsubscribes on day 2 and someone complains on day 5: their later touches never go out.
    opt_out(engine, [sequence[0]], at=timedelta(days=2, hours=12))
    day3 = send_lists(engine, tmp_path / "day3", due=DAY0 + timedelta(days=3))
    assert day3["coupon5_sms_10h"].path is None  # a single-touch variant has nothing due
    reminders = listed(day3)
    assert set(reminders) == set(sequence) - {sequence[0]}
    assert {(r[0]["step"], r[0]["send_at"]) for r in reminders.values()} == {("1", "2026-12-04T20:00:00+08:00")}
    assert all("12月4日后过期" in r[0]["message"] for r in reminders.values())

    opt_out(engine, [sequence[1]], EventType.COMPLAINT, at=timedelta(days=5))
    # Building day 7 twice: the second build lists nothing twice.
    day7 = listed(send_lists(engine, tmp_path / "day7", due=DAY0 + timedelta(days=7)))
    assert listed(send_lists(engine, tmp_path / "day7-again", due=DAY0 + timedelta(days=7))) == {}
    # The dormant cap (2 touches in 7 days) counts the experiment's own earlier touches: day 7 is 7 days
    # after day 0, outside the window, so only the day-3 reminder counts.
    assert set(day7) == set(sequence) - {sequence[0], sequence[1]}
    assert {(r[0]["step"], r[0]["channel"]) for r in day7.values()} == {("2", "push")}
    with session_scope(engine) as session:
        held = set(session.execute(select(ContactHold.customer_id, ContactHold.step, ContactHold.reason)))
        sent_steps = dict(session.execute(select(Send.step, func.count()).group_by(Send.step)).all())
    assert held == {(sequence[0], 1, HoldReason.UNSUBSCRIBED), (sequence[0], 2, HoldReason.UNSUBSCRIBED),
                    (sequence[1], 2, HoldReason.COMPLAINED)}
    assert sent_steps == {0: len(sequence) + len(single), 1: len(sequence) - 1, 2: len(sequence) - 2}


def test_a_frequency_cap_counts_the_experiments_own_earlier_touches(engine: Engine, tmp_path: Path) -> None:
    # Dormant customers get at most 2 touches in any 7 days: a third touch on day 5 is held back.
    touches = [dict(day=3, channel="sms", template=REMINDER, send_hour=20),
               dict(day=5, channel="push", template="好物商城：礼金今天到期", send_hour=10)]
    by_variant = launched(engine, 200, touches)
    sequence = {c for c, v in by_variant.items() if v == "coupon10_sms_10h"}
    for day in (0, 3):
        send_lists(engine, tmp_path / f"day{day}", due=DAY0 + timedelta(days=day))
    day5 = send_lists(engine, tmp_path / "day5", due=DAY0 + timedelta(days=5))
    assert day5["coupon10_sms_10h"].rows == 0 and day5["coupon10_sms_10h"].held_by_caps == len(sequence) > 50
    with session_scope(engine) as session:
        assert set(session.execute(select(ContactHold.step, ContactHold.reason).distinct())) == \
            {(2, HoldReason.DORMANT_CAP)}


def test_a_touch_in_quiet_hours_is_never_listed(engine: Engine, tmp_path: Path) -> None:
    by_variant = launched(engine, 200)
    with session_scope(engine) as session:  # a design stored before send hours were checked
        session.execute(update(Variant).where(Variant.name == "coupon5_sms_10h").values(send_hour=23))
    files = send_lists(engine, tmp_path / "out")
    quiet = {c for c, v in by_variant.items() if v == "coupon5_sms_10h"}
    assert files["coupon5_sms_10h"].path is None and files["coupon5_sms_10h"].held_quiet_hours == len(quiet)
    assert files["coupon10_sms_10h"].rows > 0
    with session_scope(engine) as session:
        assert dict(session.execute(select(ContactHold.customer_id, ContactHold.reason)).all()) == \
            {c: HoldReason.QUIET_HOURS for c in quiet}


@pytest.mark.parametrize("status", [ExperimentStatus.STOPPED, ExperimentStatus.DECIDED])
def test_a_stopped_experiment_has_no_send_list(engine: Engine, tmp_path: Path, status: ExperimentStatus) -> None:
    launched(engine, 50)
    with session_scope(engine) as session:
        session.execute(update(Experiment).values(status=status))
    with pytest.raises(SendListRefused, match=f"'{NAME}' is {status.value}: a stopped experiment sends nothing"):
        send_lists(engine, tmp_path / "out")
    assert not (tmp_path / "out").exists() and count(engine, Send) == 0


def test_a_draft_has_no_send_list(engine: Engine, tmp_path: Path) -> None:
    store_spec(engine, example_spec())
    with pytest.raises(SendListRefused, match=f"'{NAME}' is a draft: launch it first"):
        send_lists(engine, tmp_path / "out")


def test_imported_results_have_no_send_list(engine: Engine, tmp_path: Path) -> None:
    results = tmp_path / "results.csv"
    results.write_text("user,arm,returned\n" + "".join(f"U{i},{'holdout' if i % 2 else 'sms'},{i % 3 == 0:d}\n"
                                                      for i in range(40)), encoding="utf-8")
    import_results(engine, results, actor=cli_actor(), experiment="ext", variant_column="arm", control="holdout",
                   metrics=["returned"], id_column="user")
    with pytest.raises(SendListRefused, match="'ext' holds imported results: it has no send lists"):
        write_send_lists(engine, "ext", tmp_path / "out", actor=cli_actor())
    assert not (tmp_path / "out").exists()


def test_a_label_cannot_lead_outside_the_folder(engine: Engine, tmp_path: Path) -> None:
    launched(engine, 50)
    with session_scope(engine) as session:  # a label stored before labels were checked
        session.execute(update(Variant).where(Variant.name == "coupon5_sms_10h").values(name="/../../escaped"))
    out = tmp_path / "a" / "b" / "out"
    with pytest.raises(InvalidIdentifier, match="variant name '/../../escaped' contains a path separator"):
        send_lists(engine, out)
    assert [p for p in tmp_path.rglob("*") if p.is_file() and "recall-test" not in p.name] == []
    assert count(engine, Send) == 0
    for bad in ("..", "a/b", "a\\b", "x\x00y", "名" * 41):
        with pytest.raises(InvalidIdentifier):
            list_path(out, NAME, bad)
    assert list_path(out, NAME, "名" * 40).parent == out.resolve()


def test_a_send_list_is_never_overwritten(engine: Engine, tmp_path: Path) -> None:
    launched(engine, 100)
    out = tmp_path / "out"
    out.mkdir()
    existing = out / f"{NAME}__coupon10_sms_10h.csv"
    existing.write_text("yesterday's list, maybe not sent yet\n", encoding="utf-8")
    with pytest.raises(SendListRefused, match="already exists: a send list is never overwritten"):
        send_lists(engine, out)
    # Nothing recorded, no other file left behind: the build can be repeated into a new folder.
    assert [p.name for p in out.iterdir()] == [existing.name]
    assert existing.read_text(encoding="utf-8") == "yesterday's list, maybe not sent yet\n"
    assert count(engine, Send) == count(engine, ContactHold) == 0
    assert sum(f.rows for f in send_lists(engine, tmp_path / "new").values()) > 0


def test_the_export_is_audited_with_the_hash_of_each_file(engine: Engine, tmp_path: Path) -> None:
    launched(engine, 100)
    opt_out(engine, ["C0001", "C0002"])
    files = send_lists(engine, tmp_path / "out")
    with session_scope(engine) as session:
        [entry] = entries(session, actions=[Action.SEND_LIST])
    assert (entry.actor, entry.via, entry.target) == (cli_actor().name, "cli", NAME)
    assert entry.details["due"] == "2026-12-01"
    assert entry.details["rows"] == sum(f.rows for f in files.values()) > 0
    assert entry.details["files"] == {
        f.path.name: hashlib.sha256(f.path.read_bytes()).hexdigest() for f in files.values()}
    assert entry.details["held"]["opted_out"] == sum(f.suppressed_unsubscribed for f in files.values())


def test_a_viewer_may_not_export_and_the_refusal_is_audited(engine: Engine, tmp_path: Path) -> None:
    launched(engine, 50)
    viewer = Actor("ceo", Role.VIEWER, "app")
    with pytest.raises(Forbidden):
        write_send_lists(engine, NAME, tmp_path / "out", actor=viewer, now=AS_OF)
    with session_scope(engine) as session:
        [entry] = entries(session, actions=[Action.FORBIDDEN])
    assert (entry.actor, entry.target, entry.details) == ("ceo", NAME, {"attempted": "send_list"})
    assert not (tmp_path / "out").exists() and count(engine, Send) == 0
    operator = Actor("ops", Role.OPERATOR, "app")
    assert write_send_lists(engine, NAME, tmp_path / "out", actor=operator, now=AS_OF)[0].rows > 0


def test_a_send_list_built_in_chunks_equals_one_built_at_once(tmp_path: Path) -> None:
    """Same files, same recorded sends and holds, whatever the chunk size (here with sequences, caps
    from another experiment's sends, and opt-outs)."""
    from experiments.db import make_engine
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
        store_spec(engine, example_spec(name="earlier", layer="other", start="2026-11-29"))
        assign(engine, "earlier", as_of=AS_OF - timedelta(days=2))
        write_send_lists(engine, "earlier", tmp_path / f"earlier{chunk}", actor=cli_actor(),
                         now=AS_OF - timedelta(days=2), chunk=chunk)
        store_spec(engine, example_spec(variants=variants))
        assign(engine, NAME, as_of=AS_OF)
        opt_out(engine, ["C0003", "C0100", "C0250"], at=timedelta(days=-1))
        summary, lists = [], {}
        for day in (0, 3, 3):  # day 3 twice: rebuilt, nothing listed or recorded twice
            out = tmp_path / f"out{chunk}-{day}-{len(summary)}"
            files = write_send_lists(engine, NAME, out, actor=cli_actor(), due=DAY0 + timedelta(days=day),
                                     now=AS_OF, chunk=chunk, progress=chunk == 7)
            summary += [(day, f.variant, f.rows, f.suppressed_unsubscribed, f.held_by_caps, f.sha256) for f in files]
            lists |= {f"{day}/{f.path.name}": f.path.read_text(encoding="utf-8") for f in files if f.path}
        with session_scope(engine) as session:
            recorded = {
                "sends": sorted(session.execute(select(
                    Experiment.name, Send.customer_id, Send.step, Variant.name, Send.channel, Send.scheduled_at)
                    .join(Experiment, Experiment.id == Send.experiment_id)
                    .join(Variant, Variant.id == Send.variant_id)).all()),
                "holds": sorted(session.execute(select(
                    ContactHold.customer_id, ContactHold.step, ContactHold.reason)).all()),
            }
        engine.dispose()
        return summary, lists, recorded

    chunked, at_once = build(7), build(100_000)
    assert chunked == at_once
    summary, lists, recorded = at_once
    assert sum(s[3] for s in summary) > 0 and sum(s[4] for s in summary) > 0 and len(recorded["holds"]) > 0
    assert [s[2] for s in summary if s[0] == 3][2:] == [0, 0]
    assert all("phone" not in text.splitlines()[0] for text in lists.values())


def test_the_sendlist_command(engine: Engine, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli import app

    runner = CliRunner()
    store_spec(engine, example_spec())
    draft = runner.invoke(app, ["sendlist", NAME, "--out", str(tmp_path / "out"), "--due", "2026-12-01"])
    assert draft.exit_code == 1 and draft.output.strip().splitlines() == [
        f"error: '{NAME}' is a draft: launch it first (recall assign {NAME})"]
    bad = runner.invoke(app, ["sendlist", NAME, "--out", str(tmp_path / "out"), "--due", "1.12."])
    assert bad.exit_code == 1 and "error: --due: not a date such as" in bad.output

    add_customers(engine, [f"C{i:04d}" for i in range(100)])
    assign(engine, NAME, as_of=AS_OF)
    opt_out(engine, ["C0001", "C0002", "C0003"])
    done = runner.invoke(app, ["sendlist", NAME, "--out", str(tmp_path / "out"), "--due", "2026-12-01",
                               "--no-progress"])
    assert done.exit_code == 0, done.output
    today = local_day(utcnow())
    assert ("not today" in done.output) == (today != DAY0)  # a day other than today is named
    lines = [line for line in done.output.splitlines() if line.endswith("touches due 2026-12-01") or "opted out" in line]
    assert len(lines) == 2 and sum(int(line.split(": ")[1].split()[0]) for line in lines) == count(engine, Send)
    again = runner.invoke(app, ["sendlist", NAME, "--out", str(tmp_path / "again"), "--due", "2026-12-01",
                                "--no-progress"])
    assert "coupon5_sms_10h: no file: 0 touches due 2026-12-01" in again.output


def test_the_database_classifies_every_touch_as_the_policy_does(engine: Engine, tmp_path: Path) -> None:
    """The send list is built by SQL; :meth:`ContactPolicy.hold_reason` is the reference. A randomized
    database (fixed seed): customers active, dormant or never active; assignment times spread over
    days and hours (first touches on different days, some after the send hour); another experiment's
    sends at random times and channels around each due day; unsubscribes and complaints; a three-touch
    sequence whose own earlier touches count; tight caps, a channel cap and a holiday cap."""
    import random

    from experiments.messages import MessageContext, render
    from experiments.models import Customer
    from experiments.policy import ContactPolicy, FrequencyCap, Touch
    from experiments.sendlist import send_time, steps
    from experiments.store import get_experiment

    rng = random.Random(20261201)
    ids = [f"C{i:04d}" for i in range(400)]
    touches = [dict(day=2, channel="push", template="好物商城：{customer_id}，礼金{send_date}到期 {{别错过}}",
                    send_hour=20),
               dict(day=3, channel="sms", template=REMINDER, send_hour=9)]
    launched(engine, len(ids), touches, cohort="all")
    store_spec(engine, example_spec(name="other", layer="other", cohort="all"))
    assign(engine, "other", as_of=AS_OF)
    with session_scope(engine) as session:
        for c in ids:
            session.execute(update(Customer).where(Customer.customer_id == c).values(
                last_active_at=rng.choice([None, AS_OF - timedelta(days=rng.uniform(0, 60))])))
            session.execute(update(Assignment).where(Assignment.customer_id == c).values(
                assigned_at=AS_OF + timedelta(hours=rng.uniform(-30, 100))))
        other = session.scalar(select(Experiment.id).where(Experiment.name == "other"))
        variant = session.scalar(select(Variant.id).where(Variant.experiment_id == other, Variant.is_control.is_(False)))
        session.add_all(Send(experiment_id=other, customer_id=c, step=k, variant_id=variant,
                             channel=rng.choice(["sms", "sms", "push"]),
                             scheduled_at=AS_OF + timedelta(hours=rng.uniform(-200, 250)))
                        for c in rng.sample(ids, 300) for k in range(rng.randint(1, 5)))
    opt_out(engine, rng.sample(ids, 25))
    opt_out(engine, rng.sample(ids, 25), EventType.COMPLAINT, at=timedelta(days=2))
    policy = ContactPolicy(dormant_cap=FrequencyCap(3, 5), active_cap=FrequencyCap(2, 9), holiday_daily_cap=1,
                           holidays=frozenset({DAY0 + timedelta(days=3)}),
                           channel_caps={"sms": FrequencyCap(2, 4), "push": FrequencyCap(1, 2)})

    def expected(due: date) -> tuple[dict, dict]:
        """(customer, step) → the CSV row listed, and → the hold reason, by the Python policy."""
        listed_rows, held = {}, {}
        with session_scope(engine) as session:
            experiment = get_experiment(session, NAME)
            sends = {}
            for c, at, channel in session.execute(select(Send.customer_id, Send.scheduled_at, Send.channel)):
                sends.setdefault(c, []).append(Touch(at, local_day(at), channel))
            done = set(session.execute(select(Send.customer_id, Send.step).where(Send.experiment_id == experiment.id)))
            done |= set(session.execute(select(ContactHold.customer_id, ContactHold.step)))
            events = dict(session.execute(select(Event.customer_id, func.min(Event.event_type)).group_by(
                Event.customer_id)).all())  # 'complaint' < 'unsubscribe': an unsubscribe wins below
            unsubscribed = set(session.scalars(select(Event.customer_id).where(
                Event.event_type == EventType.UNSUBSCRIBE)))
            active = dict(session.execute(select(Customer.customer_id, Customer.last_active_at)).all())
            for v in experiment.variants:
                if v.is_control:
                    continue
                for c, assigned_at in session.execute(select(Assignment.customer_id, Assignment.assigned_at).where(
                        Assignment.experiment_id == experiment.id, Assignment.variant_id == v.id)):
                    for s in steps(experiment, v):
                        at = send_time(experiment, v, assigned_at, s)
                        if at.date() != due or (c, s.step) in done:
                            continue
                        at_utc = at.astimezone(UTC).replace(tzinfo=None)
                        if c in events:
                            held[c, s.step] = (HoldReason.UNSUBSCRIBED if c in unsubscribed
                                               else HoldReason.COMPLAINED)
                        elif reason := policy.hold_reason(at_utc, due, s.channel, active[c], sends.get(c, [])):
                            held[c, s.step] = reason
                        else:
                            message = render(s.template, MessageContext(v.coupon, c, at))
                            listed_rows[c, s.step] = [c, str(s.step), s.channel, message, at.isoformat()]
        return listed_rows, held

    reasons = set()
    for day in (0, 2, 3, 5, 5, 6):  # days 1 and 4 skipped: their touches are never listed later
        due = DAY0 + timedelta(days=day)
        want_listed, want_held = expected(due)
        with session_scope(engine) as session:
            held_before = set(session.execute(select(ContactHold.customer_id, ContactHold.step)))
        files = send_lists(engine, tmp_path / f"day{day}-{len(reasons)}", due=due, policy=policy)
        got = {(line["customer_id"], int(line["step"])): list(line.values())
               for f in files.values() for line in (read(f.path) if f.path else [])}
        with session_scope(engine) as session:
            held = {(c, s): r for c, s, r in session.execute(
                select(ContactHold.customer_id, ContactHold.step, ContactHold.reason)) if (c, s) not in held_before}
            recorded = {(c, s): [c, str(s), ch, at] for c, s, ch, at in session.execute(
                select(Send.customer_id, Send.step, Send.channel, Send.scheduled_at).join(
                    Experiment, Experiment.id == Send.experiment_id).where(
                    Experiment.name == NAME, Send.customer_id.in_([c for c, _ in got] or [""])))}
        assert got == want_listed and held == want_held, due
        # Each send as listed: its channel, and its UTC time the file's local send_at.
        assert {k: [*v[:3], datetime.fromisoformat(v[4]).astimezone(UTC).replace(tzinfo=None)]
                for k, v in got.items()} == {k: recorded[k] for k in got}
        assert sum(f.rows for f in files.values()) == len(got)
        assert sum(f.suppressed_unsubscribed + f.held_by_caps for f in files.values()) == len(held)
        reasons |= set(held.values())
    # Every reason occurred at least once, on touches of every step.
    assert reasons == {HoldReason.UNSUBSCRIBED, HoldReason.COMPLAINED, HoldReason.DORMANT_CAP,
                       HoldReason.ACTIVE_CAP, HoldReason.CHANNEL_CAP, HoldReason.HOLIDAY_CAP}


def test_fields_that_need_quoting_are_written_as_the_csv_module_writes_them(engine: Engine, tmp_path: Path) -> None:
    """Lines are built by a format string, except where a comma or a quote (in an id or a message)
    needs the csv module's quoting: both give the csv module's bytes."""
    import io

    odd = ["Q,1", 'Q"2', 'Q,"3']
    add_customers(engine, odd + [f"C{i:04d}" for i in range(40)])
    spec = example_spec()
    variants = [v.model_dump() for v in spec.variants]
    variants[1]["template"] = "【好物商城】{customer_id} 您好：为您预留{coupon}元礼金 回TD退订"
    variants[2]["template"] = "【好物商城】{customer_id}, 您好, 为您预留{coupon}元礼金 回TD退订"
    store_spec(engine, example_spec(variants=variants))
    assign(engine, NAME, as_of=AS_OF)
    files = send_lists(engine, tmp_path / "out")
    by_variant = variant_of(engine)
    assert all(f.path for f in files.values())
    for f in files.values():
        coupon = "10" if f.variant.startswith("coupon10") else "5"
        template = variants[2 if coupon == "10" else 1]["template"]
        expected = io.StringIO()
        writer = csv.writer(expected)
        writer.writerow(["customer_id", "step", "channel", "message", "send_at"])
        writer.writerows([c, 0, "sms", template.format(customer_id=c, coupon=coupon), "2026-12-01T10:00:00+08:00"]
                         for c in sorted(c for c, v in by_variant.items() if v == f.variant))
        assert f.path.read_bytes() == expected.getvalue().encode("utf-8")
    listed_ids = {line["customer_id"] for f in files.values() for line in read(f.path)}
    assert listed_ids == {c for c, v in by_variant.items() if v != "holdout"} and len(listed_ids & set(odd)) == 2


def test_a_write_by_another_connection_mid_export_does_not_break_it(engine: Engine, tmp_path: Path) -> None:
    """SQLite: the app signs someone in (a commit from another connection) while a send list is being
    built. The export reads the main database into temporary tables before writing its sends; begun by
    that temporary write, its snapshot could not be upgraded after the other commit ("database is
    locked" at once). It now holds the write lock from the start, so the other writer waits instead."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL writers never fail on a stale snapshot here (READ COMMITTED)")
    launched(engine)
    other = sqlite3.connect(engine.url.database, timeout=0.1)
    attempts: list[str] = []

    def another_writer_commits(conn, cursor, statement: str, *_: object) -> None:  # noqa: ANN001
        if statement.lstrip().upper().startswith("INSERT INTO SENDS") and not attempts:
            try:
                other.execute("CREATE TABLE signed_in_meanwhile (x INTEGER)")  # any write to the main database
                other.commit()
                attempts.append("committed")
            except sqlite3.OperationalError as exc:  # the export holds the write lock: the other one waits
                other.rollback()
                attempts.append(str(exc))

    event.listen(engine, "before_cursor_execute", another_writer_commits)
    try:
        files = send_lists(engine, tmp_path / "out")
    finally:
        event.remove(engine, "before_cursor_execute", another_writer_commits)
        other.close()
    assert attempts == ["database is locked"]
    assert sum(f.rows for f in files.values()) == count(engine, Send) > 0

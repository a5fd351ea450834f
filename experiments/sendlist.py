"""Send lists: one CSV per contacted variant, for the sending system (SMS gateway, push service…).

The control is never listed (it is the holdout) and neither is anyone who has unsubscribed by the
time the list is built. Each listed touch is recorded in ``sends`` so that costs count real sends.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import Engine, and_, exists, select
from sqlalchemy.orm import Session

from experiments.config import settings
from experiments.db import bulk_insert, session_scope
from experiments.messages import MessageContext, render
from experiments.models import Assignment, ContactHold, Customer, Event, EventType, Experiment, Send, Variant
from experiments.policy import ContactPolicy, HoldReason, Touch
from experiments.store import get_experiment, stored_spec, utcnow

COLUMNS = ("customer_id", "step", "channel", "message", "send_at")
CHUNK = 20_000


@dataclass(frozen=True)
class SendListFile:
    variant: str
    path: Path
    rows: int
    suppressed_unsubscribed: int
    held_by_caps: int = 0


@dataclass(frozen=True)
class Step:
    """One touch of a variant: step 0 is the variant's own message, later steps its follow-ups."""

    step: int
    day: int
    channel: str
    template: str
    send_hour: int


def steps(experiment: Experiment, variant: Variant) -> list[Step]:
    first = Step(0, 0, variant.channel or "", variant.template, variant.send_hour or 0)
    spec = stored_spec(experiment)
    designed = next((v for v in spec.variants if v.name == variant.name), None) if spec else None
    follow_ups = designed.touches if designed else []
    return [first] + [Step(i, t.day, t.channel.value, t.template, t.send_hour) for i, t in enumerate(follow_ups, 1)]


def send_time(experiment: Experiment, variant: Variant, assigned_at: datetime, step: Step | None = None) -> datetime:
    """Local send time: the spec's start day (or the day of assignment) at the variant's send hour,
    plus the step's day offset. A send hour already past on the day of assignment moves to the next day.
    """
    tz = settings().timezone
    assigned_local = assigned_at.replace(tzinfo=UTC).astimezone(tz)
    start_local = experiment.start_at.replace(tzinfo=UTC).astimezone(tz) if experiment.start_at else assigned_local
    day = max(start_local.date(), assigned_local.date())
    first = datetime.combine(day, time(variant.send_hour or 0), tzinfo=tz)
    if first < assigned_local:
        first += timedelta(days=1)
    if step is None or step.step == 0:
        return first
    return datetime.combine(first.date() + timedelta(days=step.day), time(step.send_hour), tzinfo=tz)


def write_send_lists(engine: Engine, name: str, out_dir: str | Path, now: datetime | None = None,
                     policy: ContactPolicy | None = None) -> list[SendListFile]:
    """Write ``<out>/<experiment>__<variant>.csv`` for each contacted variant and record the sends.

    Each touch of a sequence is a row with its step and time. The contact policy applies across
    all experiments and every step: customers who unsubscribed by ``now`` and touches over a
    frequency cap are held back, recorded in ``contact_holds``, and the customers stay assigned.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    now = now or utcnow()
    policy = policy or ContactPolicy.from_env()
    files: list[SendListFile] = []
    with session_scope(engine) as session:
        experiment = get_experiment(session, name)
        unsubscribed = exists().where(
            Event.customer_id == Assignment.customer_id,
            Event.event_type == EventType.UNSUBSCRIBE,
            Event.occurred_at <= now,
        )
        other_sends = _other_sends(session, experiment, since=now - timedelta(days=_longest_cap_days(policy)))
        sent = set(session.execute(select(Send.customer_id, Send.step).where(Send.experiment_id == experiment.id)))
        held_before = set(session.execute(
            select(ContactHold.customer_id, ContactHold.step).where(ContactHold.experiment_id == experiment.id)))
        for variant in experiment.variants:
            if variant.is_control:
                continue
            of_variant = (Assignment.experiment_id == experiment.id, Assignment.variant_id == variant.id)
            sequence = steps(experiment, variant)
            holds: list[dict] = []

            def hold(customer_id: str, step: int, reason: str) -> None:
                if (customer_id, step) not in held_before:
                    holds.append(dict(experiment_id=experiment.id, customer_id=customer_id, step=step,
                                      variant_id=variant.id, reason=reason, held_at=now))

            n_unsubscribed = 0
            for customer_id in session.scalars(select(Assignment.customer_id).where(*of_variant, unsubscribed)):
                n_unsubscribed += 1
                for s in sequence:
                    if (customer_id, s.step) not in sent:
                        hold(customer_id, s.step, HoldReason.UNSUBSCRIBED)
            rows = session.execute(
                select(Assignment.customer_id, Assignment.assigned_at, Customer.last_active_at)
                .outerjoin(Customer, Customer.customer_id == Assignment.customer_id)
                .where(*of_variant, ~unsubscribed)
                .order_by(Assignment.customer_id)
            ).all()
            path = out / f"{experiment.name}__{variant.name}.csv"
            new_sends: list[dict] = []
            listed = capped = 0
            tmp = path.with_suffix(".csv.part")
            with tmp.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(COLUMNS)
                for customer_id, assigned_at, last_active_at in rows:
                    touches = list(other_sends.get(customer_id, ()))
                    for s in sequence:
                        at = send_time(experiment, variant, assigned_at, s)
                        at_utc = at.astimezone(UTC).replace(tzinfo=None)
                        if (customer_id, s.step) not in sent:
                            reason = policy.hold_reason(at_utc, at.date(), s.channel, last_active_at, touches)
                            if reason:
                                capped += 1
                                hold(customer_id, s.step, reason)
                                continue
                            new_sends.append(dict(
                                experiment_id=experiment.id, customer_id=customer_id, step=s.step,
                                variant_id=variant.id, channel=s.channel, scheduled_at=at_utc,
                                message=render(s.template, MessageContext(variant.coupon, customer_id, at)),
                            ))
                        touches.append(Touch(at_utc, at.date(), s.channel))  # later steps count this one
                        message = render(s.template, MessageContext(variant.coupon, customer_id, at))
                        writer.writerow((customer_id, s.step, s.channel, message, at.isoformat()))
                        listed += 1
            bulk_insert(session, Send, new_sends)
            bulk_insert(session, ContactHold, holds)
            tmp.replace(path)
            files.append(SendListFile(variant.name, path, listed, n_unsubscribed, capped))
    return files


def _longest_cap_days(policy: ContactPolicy) -> int:
    caps = [policy.dormant_cap, policy.active_cap, *policy.channel_caps.values()]
    return max(cap.days for cap in caps) + 1


def _other_sends(session: Session, experiment: Experiment, since: datetime) -> dict[str, list[Touch]]:
    """Sends of other experiments to this experiment's customers since ``since``."""
    tz = settings().timezone
    rows = session.execute(
        select(Send.customer_id, Send.scheduled_at, Send.channel)
        .join(Assignment, and_(Assignment.customer_id == Send.customer_id, Assignment.experiment_id == experiment.id))
        .where(Send.experiment_id != experiment.id, Send.scheduled_at >= since)
    )
    sends: dict[str, list[Touch]] = defaultdict(list)
    for customer_id, at, channel in rows:
        sends[customer_id].append(Touch(at, at.replace(tzinfo=UTC).astimezone(tz).date(), channel))
    return sends

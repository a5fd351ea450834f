"""Send lists: one CSV per contacted variant, for the sending system (SMS gateway, push service…).

The control is never listed (it is the holdout) and neither is anyone who has unsubscribed by the
time the list is built. Each listed touch is recorded in ``sends`` so that costs count real sends.

Export streams: each variant's customers are read ``chunk`` at a time from a server-side cursor in
customer order; what a chunk needs (its earlier sends and holds, other experiments' sends to its
customers) is looked up by the chunk's customer range, and its sends and holds are written with
:func:`experiments.db.bulk_insert` (COPY on PostgreSQL). Memory is bounded by the chunk, not the
experiment. Send lists carry no phone numbers: the sending system looks them up by customer id.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import Engine, and_, func, select
from sqlalchemy.orm import Session

from experiments.assignment import progress_bar
from experiments.config import settings
from experiments.db import bulk_insert, foreign_keys_checked_once, session_scope
from experiments.messages import MessageContext, render
from experiments.models import Assignment, ContactHold, Customer, Event, EventType, Experiment, Send, Variant
from experiments.policy import ContactPolicy, HoldReason, Touch
from experiments.store import get_experiment, stored_spec, utcnow

COLUMNS = ("customer_id", "step", "channel", "message", "send_at")
CHUNK = 50_000  # customers read, listed and recorded at a time


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
                     policy: ContactPolicy | None = None, *, chunk: int = CHUNK,
                     progress: bool = False) -> list[SendListFile]:
    """Write ``<out>/<experiment>__<variant>.csv`` for each contacted variant and record the sends.

    Each touch of a sequence is a row with its step and time. The contact policy applies across
    all experiments and every step: customers who unsubscribed by ``now`` and touches over a
    frequency cap are held back, recorded in ``contact_holds``, and the customers stay assigned.
    Customers stream ``chunk`` at a time (bounded memory); ``progress`` shows a progress bar.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    now = now or utcnow()
    policy = policy or ContactPolicy.from_env()
    files: list[SendListFile] = []
    with session_scope(engine) as session:
        experiment = get_experiment(session, name)
        contacted = [v for v in experiment.variants if not v.is_control]
        per_variant = dict(session.execute(
            select(Assignment.variant_id, func.count()).where(Assignment.experiment_id == experiment.id)
            .group_by(Assignment.variant_id)).all())
        customers = sum(per_variant.get(v.id, 0) for v in contacted)
        touches = sum(per_variant.get(v.id, 0) * len(steps(experiment, v)) for v in contacted) - (session.scalar(
            select(func.count()).select_from(Send).where(Send.experiment_id == experiment.id)) or 0)  # at most new
        with foreign_keys_checked_once(session, Send, touches), progress_bar(progress) as bar:
            task = bar.add_task(f"send lists of {experiment.name}", total=customers)
            for variant in contacted:
                files.append(_write_variant(session, experiment, variant, out, now, policy, chunk,
                                            lambda n: bar.advance(task, n)))
    return files


def _write_variant(session: Session, experiment: Experiment, variant: Variant, out: Path, now: datetime,
                   policy: ContactPolicy, chunk: int, advance: Callable[[int], None]) -> SendListFile:
    """One variant's list, streamed in customer order ``chunk`` customers at a time."""
    sequence = steps(experiment, variant)
    since = now - timedelta(days=_longest_cap_days(policy))
    unsubscribed = (select(Event.customer_id)
                    .where(Event.event_type == EventType.UNSUBSCRIBE, Event.occurred_at <= now)
                    .distinct().subquery())
    customers = session.connection().execute(
        select(Assignment.customer_id, Assignment.assigned_at, Customer.last_active_at,
               unsubscribed.c.customer_id.is_not(None))
        .outerjoin(Customer, Customer.customer_id == Assignment.customer_id)
        .outerjoin(unsubscribed, unsubscribed.c.customer_id == Assignment.customer_id)
        .where(Assignment.experiment_id == experiment.id, Assignment.variant_id == variant.id)
        .order_by(Assignment.customer_id)
        .execution_options(yield_per=chunk)
    )
    path = out / f"{experiment.name}__{variant.name}.csv"
    tmp = path.with_suffix(".csv.part")
    listed = capped = n_unsubscribed = 0
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for part in customers.partitions():
            first, last = part[0][0], part[-1][0]
            sent = _steps_recorded(session, Send, experiment.id, first, last)
            held_before = _steps_recorded(session, ContactHold, experiment.id, first, last)
            other_sends = _other_sends(session, experiment, variant, since, first, last)
            new_sends: list[dict] = []
            holds: list[dict] = []

            def hold(customer_id: str, step: int, reason: str) -> None:
                if (customer_id, step) not in held_before:
                    holds.append(dict(experiment_id=experiment.id, customer_id=customer_id, step=step,
                                      variant_id=variant.id, reason=reason, held_at=now))

            for customer_id, assigned_at, last_active_at, gone in part:
                if gone:
                    n_unsubscribed += 1
                    for s in sequence:
                        if (customer_id, s.step) not in sent:
                            hold(customer_id, s.step, HoldReason.UNSUBSCRIBED)
                    continue
                touches = list(other_sends.get(customer_id, ()))
                for s in sequence:
                    at = send_time(experiment, variant, assigned_at, s)
                    at_utc = at.astimezone(UTC).replace(tzinfo=None)
                    message = render(s.template, MessageContext(variant.coupon, customer_id, at))
                    if (customer_id, s.step) not in sent:
                        reason = policy.hold_reason(at_utc, at.date(), s.channel, last_active_at, touches)
                        if reason:
                            capped += 1
                            hold(customer_id, s.step, reason)
                            continue
                        new_sends.append(dict(
                            experiment_id=experiment.id, customer_id=customer_id, step=s.step,
                            variant_id=variant.id, channel=s.channel, scheduled_at=at_utc, message=message,
                        ))
                    touches.append(Touch(at_utc, at.date(), s.channel))  # later steps count this one
                    writer.writerow((customer_id, s.step, s.channel, message, at.isoformat()))
                    listed += 1
            bulk_insert(session, Send, new_sends)
            bulk_insert(session, ContactHold, holds)
            advance(len(part))
    customers.close()
    tmp.replace(path)
    return SendListFile(variant.name, path, listed, n_unsubscribed, capped)


def _steps_recorded(session: Session, model: type[Send] | type[ContactHold], experiment_id: int, first: str,
                    last: str) -> set[tuple[str, int]]:
    """(customer, step) already in ``sends`` or ``contact_holds`` for customers ``first``..``last``
    (the primary key's range: a chunk's look-up, not the whole experiment's)."""
    return set(session.execute(select(model.customer_id, model.step).where(
        model.experiment_id == experiment_id, model.customer_id.between(first, last))))


def _longest_cap_days(policy: ContactPolicy) -> int:
    caps = [policy.dormant_cap, policy.active_cap, *policy.channel_caps.values()]
    return max(cap.days for cap in caps) + 1


def _other_sends(session: Session, experiment: Experiment, variant: Variant, since: datetime, first: str,
                 last: str) -> dict[str, list[Touch]]:
    """Sends of other experiments since ``since`` to the variant's customers ``first``..``last``."""
    tz = settings().timezone
    rows = session.execute(
        select(Send.customer_id, Send.scheduled_at, Send.channel)
        .join(Assignment, and_(Assignment.customer_id == Send.customer_id, Assignment.experiment_id == experiment.id,
                               Assignment.variant_id == variant.id))
        .where(Send.experiment_id != experiment.id, Send.scheduled_at >= since,
               Send.customer_id.between(first, last))
    )
    sends: dict[str, list[Touch]] = defaultdict(list)
    for customer_id, at, channel in rows:
        sends[customer_id].append(Touch(at, at.replace(tzinfo=UTC).astimezone(tz).date(), channel))
    return sends

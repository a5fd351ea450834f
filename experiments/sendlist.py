"""Send lists: one CSV per contacted variant, for the sending system (SMS gateway, push service…).

The control is never listed (it is the holdout) and neither is anyone who has unsubscribed by the
time the list is built. Each listed touch is recorded in ``sends`` so that costs count real sends.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import Engine, and_, exists, insert, select
from sqlalchemy.orm import Session

from experiments.config import settings
from experiments.db import session_scope
from experiments.messages import MessageContext, render
from experiments.models import Assignment, ContactHold, Customer, Event, EventType, Experiment, Send, Variant
from experiments.policy import ContactPolicy, HoldReason
from experiments.store import get_experiment, utcnow

COLUMNS = ("customer_id", "channel", "message", "send_at")
CHUNK = 20_000


@dataclass(frozen=True)
class SendListFile:
    variant: str
    path: Path
    rows: int
    suppressed_unsubscribed: int
    held_by_caps: int = 0


def send_time(experiment: Experiment, variant: Variant, assigned_at: datetime) -> datetime:
    """Local send time: the spec's start day (or the day of assignment) at the variant's send hour.

    A send hour already past on the day of assignment moves to the next day.
    """
    tz = settings().timezone
    assigned_local = assigned_at.replace(tzinfo=UTC).astimezone(tz)
    start_local = experiment.start_at.replace(tzinfo=UTC).astimezone(tz) if experiment.start_at else assigned_local
    day = max(start_local.date(), assigned_local.date())
    at = datetime.combine(day, time(variant.send_hour or 0), tzinfo=tz)
    if at < assigned_local:
        at += timedelta(days=1)
    return at


def write_send_lists(engine: Engine, name: str, out_dir: str | Path, now: datetime | None = None,
                     policy: ContactPolicy | None = None) -> list[SendListFile]:
    """Write ``<out>/<experiment>__<variant>.csv`` for each contacted variant and record the sends.

    The contact policy applies across all experiments: customers who unsubscribed by ``now`` and
    customers over a frequency cap are held back, recorded in ``contact_holds`` and stay assigned.
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
        already_sent = exists().where(
            Send.experiment_id == Assignment.experiment_id, Send.customer_id == Assignment.customer_id
        )
        other_sends = _other_sends(session, experiment, since=now - timedelta(days=_longest_cap_days(policy)))
        held_before = set(session.scalars(
            select(ContactHold.customer_id).where(ContactHold.experiment_id == experiment.id)
        ))
        for variant in experiment.variants:
            if variant.is_control:
                continue
            of_variant = (Assignment.experiment_id == experiment.id, Assignment.variant_id == variant.id)
            holds: list[dict] = []

            def hold(customer_id: str, reason: str) -> None:
                if customer_id not in held_before:
                    holds.append(dict(experiment_id=experiment.id, customer_id=customer_id, step=0,
                                      variant_id=variant.id, reason=reason, held_at=now))

            suppressed = session.scalars(select(Assignment.customer_id).where(*of_variant, unsubscribed, ~already_sent))
            n_unsubscribed = 0
            for customer_id in suppressed:
                n_unsubscribed += 1
                hold(customer_id, HoldReason.UNSUBSCRIBED)
            rows = session.execute(
                select(Assignment.customer_id, Assignment.assigned_at, already_sent.label("sent"),
                       Customer.last_active_at)
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
                for customer_id, assigned_at, sent, last_active_at in rows:
                    at = send_time(experiment, variant, assigned_at)
                    at_utc = at.astimezone(UTC).replace(tzinfo=None)
                    if not sent:
                        reason = policy.hold_reason(at_utc, at.date(), last_active_at, other_sends.get(customer_id, ()))
                        if reason:
                            capped += 1
                            hold(customer_id, reason)
                            continue
                    message = render(variant.template, MessageContext(variant.coupon, customer_id, at))
                    writer.writerow((customer_id, variant.channel, message, at.isoformat()))
                    listed += 1
                    if not sent:
                        new_sends.append(dict(
                            experiment_id=experiment.id, customer_id=customer_id, step=0, variant_id=variant.id,
                            channel=variant.channel, scheduled_at=at_utc, message=message,
                        ))
            for start in range(0, len(new_sends), CHUNK):
                session.execute(insert(Send), new_sends[start:start + CHUNK])
            for start in range(0, len(holds), CHUNK):
                session.execute(insert(ContactHold), holds[start:start + CHUNK])
            tmp.replace(path)
            files.append(SendListFile(variant.name, path, listed, n_unsubscribed, capped))
    return files


def _longest_cap_days(policy: ContactPolicy) -> int:
    return max(policy.dormant_cap.days, policy.active_cap.days) + 1


def _other_sends(session: Session, experiment: Experiment, since: datetime) -> dict[str, list[tuple[datetime, date]]]:
    """Sends of other experiments to this experiment's customers since ``since``: (UTC time, local day)."""
    tz = settings().timezone
    rows = session.execute(
        select(Send.customer_id, Send.scheduled_at)
        .join(Assignment, and_(Assignment.customer_id == Send.customer_id, Assignment.experiment_id == experiment.id))
        .where(Send.experiment_id != experiment.id, Send.scheduled_at >= since)
    )
    sends: dict[str, list[tuple[datetime, date]]] = defaultdict(list)
    for customer_id, at in rows:
        sends[customer_id].append((at, at.replace(tzinfo=UTC).astimezone(tz).date()))
    return sends

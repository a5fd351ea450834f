"""Send lists: one CSV per contacted variant, for the sending system (SMS gateway, push service…).

The control is never listed (it is the holdout) and neither is anyone who has unsubscribed by the
time the list is built. Each listed touch is recorded in ``sends`` so that costs count real sends.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import Engine, exists, func, insert, select

from experiments.config import settings
from experiments.db import session_scope
from experiments.messages import MessageContext, render
from experiments.models import Assignment, Event, EventType, Experiment, Send, Variant
from experiments.store import get_experiment, utcnow

COLUMNS = ("customer_id", "channel", "message", "send_at")
CHUNK = 20_000


@dataclass(frozen=True)
class SendListFile:
    variant: str
    path: Path
    rows: int
    suppressed_unsubscribed: int


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


def write_send_lists(engine: Engine, name: str, out_dir: str | Path, now: datetime | None = None) -> list[SendListFile]:
    """Write ``<out>/<experiment>__<variant>.csv`` for each contacted variant and record the sends."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    now = now or utcnow()
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
        for variant in experiment.variants:
            if variant.is_control:
                continue
            of_variant = (Assignment.experiment_id == experiment.id, Assignment.variant_id == variant.id)
            suppressed = session.scalar(select(func.count()).select_from(Assignment).where(*of_variant, unsubscribed))
            rows = session.execute(
                select(Assignment.customer_id, Assignment.assigned_at, already_sent.label("sent"))
                .where(*of_variant, ~unsubscribed)
                .order_by(Assignment.customer_id)
            ).all()
            path = out / f"{experiment.name}__{variant.name}.csv"
            new_sends: list[dict] = []
            tmp = path.with_suffix(".csv.part")
            with tmp.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(COLUMNS)
                for customer_id, assigned_at, sent in rows:
                    at = send_time(experiment, variant, assigned_at)
                    message = render(variant.template, MessageContext(variant.coupon, customer_id, at))
                    writer.writerow((customer_id, variant.channel, message, at.isoformat()))
                    if not sent:
                        new_sends.append(dict(
                            experiment_id=experiment.id, customer_id=customer_id, step=0, variant_id=variant.id,
                            channel=variant.channel, scheduled_at=at.astimezone(UTC).replace(tzinfo=None),
                            message=message,
                        ))
            for start in range(0, len(new_sends), CHUNK):
                session.execute(insert(Send), new_sends[start:start + CHUNK])
            tmp.replace(path)
            files.append(SendListFile(variant.name, path, len(rows), suppressed or 0))
    return files


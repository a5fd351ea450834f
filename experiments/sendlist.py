"""Send lists: each day, one CSV per contacted variant of the touches due that day, for the sending
system (SMS gateway, push service…).

A touch is listed on its own due day (``recall sendlist NAME --due DATE``, default today), never
earlier, so that it is checked against the opt-outs known when it is due. A touch is never listed when

* it belongs to the control (the holdout is never messaged);
* its customer has an unsubscribe or a complaint of any date imported so far (recorded in
  ``contact_holds`` as ``unsubscribed`` or ``complained``: a complaint is an opt-out);
* its local send time falls in the quiet hours (``quiet_hours``; a validated design cannot have one);
* it would exceed a frequency, channel or holiday cap, counting every experiment's sends;
* it was already exported (it is in ``sends``) or already held back: a rebuild lists only what is new.

Send lists exist only for designed, running experiments. Each listed touch is recorded in ``sends``
(costs count real sends) and each export in the audit log with the sha256 of every file, in the same
transaction. A file is never overwritten and never written outside ``--out``.

Export streams: each variant's customers are read ``chunk`` at a time from a server-side cursor in
customer order; what a chunk needs (its exported and held touches, every experiment's recent sends to
its customers) is looked up by the chunk's customer range, and its sends and holds are written with
:func:`experiments.db.bulk_insert` (COPY on PostgreSQL). Memory is bounded by the chunk, not the
experiment. Send lists carry no phone numbers: the sending system looks them up by customer id.
"""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import Engine, and_, case, func, select
from sqlalchemy.orm import Session

from experiments.access import Actor, Forbidden, Permission, require
from experiments.assignment import progress_bar
from experiments.audit import Action, record, record_now
from experiments.catalog import in_quiet_hours
from experiments.config import settings
from experiments.db import bulk_insert, foreign_keys_checked_once, session_scope
from experiments.identifiers import check_name
from experiments.messages import MessageContext, Template
from experiments.models import (
    Assignment,
    ContactHold,
    Customer,
    Event,
    EventType,
    Experiment,
    ExperimentSource,
    ExperimentStatus,
    Send,
    Variant,
)
from experiments.policy import ContactPolicy, HoldReason, Touch
from experiments.store import get_experiment, local_midnight_utc, stored_spec, utcnow

COLUMNS = ("customer_id", "step", "channel", "message", "send_at")
CHUNK = 50_000  # customers read, listed and recorded at a time
OPT_OUTS = (EventType.UNSUBSCRIBE, EventType.COMPLAINT)
MAX_FILE_NAME_BYTES = 255


class SendListRefused(ValueError):
    """A send list that must not be built; the message says why and what to do."""


@dataclass(frozen=True)
class SendListFile:
    """One variant's list of the due day; ``path`` is None when none of its touches was due."""

    variant: str
    path: Path | None
    rows: int
    suppressed_unsubscribed: int  # touches due that day held back by an unsubscribe or a complaint
    held_by_caps: int = 0
    held_quiet_hours: int = 0
    sha256: str = ""


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
    return _Schedule(experiment, variant).at(assigned_at, step)


class _Schedule:
    """:func:`send_time` for one variant's many customers: the time zone and start are read once."""

    def __init__(self, experiment: Experiment, variant: Variant):
        self.tz = settings().timezone
        self.start = experiment.start_at.replace(tzinfo=UTC).astimezone(self.tz).date() if experiment.start_at else None
        self.hour = time(variant.send_hour or 0)

    def first(self, assigned_at: datetime) -> datetime:
        assigned_local = assigned_at.replace(tzinfo=UTC).astimezone(self.tz)
        day = max(self.start, assigned_local.date()) if self.start else assigned_local.date()
        first = datetime.combine(day, self.hour, tzinfo=self.tz)
        return first + timedelta(days=1) if first < assigned_local else first

    def at(self, assigned_at: datetime, step: Step | None = None) -> datetime:
        first = self.first(assigned_at)
        return first if step is None or step.step == 0 else self.later(first, step)

    def later(self, first: datetime, step: Step) -> datetime:
        return datetime.combine(first.date() + timedelta(days=step.day), time(step.send_hour), tzinfo=self.tz)


def local_day(at: datetime) -> date:
    """The configured time zone's day of ``at`` (naive UTC)."""
    return at.replace(tzinfo=UTC).astimezone(settings().timezone).date()


def list_path(out: Path, experiment: str, variant: str) -> Path:
    """``<out>/<experiment>__<variant>.csv``, refused unless it is a plain file name inside ``out``."""
    file_name = f"{check_name(experiment, 'experiment name')}__{check_name(variant, 'variant name')}.csv"
    folder = out.resolve()
    path = folder / file_name
    if len(file_name.encode("utf-8")) > MAX_FILE_NAME_BYTES or path.resolve().parent != folder:
        raise SendListRefused(f"send list file {file_name!r} would not be a file inside {out}")
    return path


def check_sendable(experiment: Experiment) -> None:
    """Send lists exist only for designed experiments that are running."""
    name = experiment.name
    if experiment.source != ExperimentSource.DESIGNED:
        raise SendListRefused(f"{name!r} holds imported results: it has no send lists (its customers were "
                              "messaged elsewhere)")
    if experiment.status == ExperimentStatus.DRAFT:
        raise SendListRefused(f"{name!r} is a draft: launch it first (recall assign {name})")
    if experiment.status != ExperimentStatus.RUNNING:
        raise SendListRefused(f"{name!r} is {experiment.status.value}: a stopped experiment sends nothing more")


def write_send_lists(engine: Engine, name: str, out_dir: str | Path, *, actor: Actor, due: date | None = None,
                     now: datetime | None = None, policy: ContactPolicy | None = None, chunk: int = CHUNK,
                     progress: bool = False) -> list[SendListFile]:
    """Write ``<out>/<experiment>__<variant>.csv`` of the touches due on ``due`` (local day; default the
    day of ``now``), record them in ``sends`` and the export in the audit log, as ``actor``.

    Touches held back (opt-outs, quiet hours, caps) are recorded in ``contact_holds``, and their
    customers stay assigned. A variant with no touch due gets no file. Customers stream ``chunk`` at a
    time (bounded memory); ``progress`` shows a progress bar. Raises :class:`SendListRefused` for an
    experiment that is not designed and running, or a file that already exists.
    """
    try:
        require(actor, Permission.SEND)
    except Forbidden:
        record_now(engine, actor, Action.FORBIDDEN, name, attempted=Action.SEND_LIST.value)
        raise
    now = now or utcnow()
    due = due or local_day(now)
    policy = policy or ContactPolicy.from_env()
    out = Path(out_dir)
    created: list[Path] = []  # removed again if anything fails: no file without its recorded sends
    try:
        with session_scope(engine) as session:
            experiment = get_experiment(session, name)
            check_sendable(experiment)
            contacted = [v for v in experiment.variants if not v.is_control]
            out.mkdir(parents=True, exist_ok=True)
            paths = {v.id: list_path(out, experiment.name, v.name) for v in contacted}
            per_variant = dict(session.execute(
                select(Assignment.variant_id, func.count()).where(Assignment.experiment_id == experiment.id)
                .group_by(Assignment.variant_id)).all())
            customers = sum(per_variant.get(v.id, 0) for v in contacted)  # at most one touch each a day
            drafts = []
            with foreign_keys_checked_once(session, Send, customers), progress_bar(progress) as bar:
                task = bar.add_task(f"send lists of {experiment.name} due {due}", total=customers)
                for variant in contacted:
                    part = paths[variant.id].with_name(paths[variant.id].name + ".part")
                    created.append(part)
                    drafts.append(_write_variant(session, experiment, variant, part, due, now, policy, chunk,
                                                 lambda n: bar.advance(task, n)))
            files = [_publish(draft, paths[variant.id], created) for draft, variant in zip(drafts, contacted)]
            record(session, actor, Action.SEND_LIST, experiment.name, due=due.isoformat(),
                   rows=sum(f.rows for f in files),
                   files={f.path.name: f.sha256 for f in files if f.path},
                   held={"opted_out": sum(f.suppressed_unsubscribed for f in files),
                         "caps": sum(f.held_by_caps for f in files),
                         "quiet_hours": sum(f.held_quiet_hours for f in files)})
    except BaseException:
        for path in created:
            path.unlink(missing_ok=True)
        raise
    return files


def _publish(draft: SendListFile, path: Path, created: list[Path]) -> SendListFile:
    """Move a written ``.part`` file to its name (never over an existing file), or drop an empty one."""
    assert draft.path is not None
    if not draft.rows:
        draft.path.unlink()
        return SendListFile(draft.variant, None, 0, draft.suppressed_unsubscribed, draft.held_by_caps,
                            draft.held_quiet_hours)
    if path.exists():
        raise SendListRefused(f"{path} already exists: a send list is never overwritten (its touches may have "
                              "gone out); give each day's lists their own folder, e.g. --out lists/<DATE>")
    with draft.path.open("rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    draft.path.replace(path)
    created.append(path)
    return SendListFile(draft.variant, path, draft.rows, draft.suppressed_unsubscribed, draft.held_by_caps,
                        draft.held_quiet_hours, digest)


def _write_variant(session: Session, experiment: Experiment, variant: Variant, path: Path, due: date,
                   now: datetime, policy: ContactPolicy, chunk: int,
                   advance: Callable[[int], None]) -> SendListFile:
    """One variant's touches due on ``due``, streamed in customer order ``chunk`` customers at a time."""
    sequence = steps(experiment, variant)
    templates = {s.step: Template(s.template) for s in sequence}
    schedule = _Schedule(experiment, variant)
    # The day of a customer's first touch → the step due on ``due``: one at most, as the days increase.
    due_step = {due - timedelta(days=s.day): s for s in sequence}
    since = local_midnight_utc(due) - timedelta(days=_longest_cap_days(policy))
    opted_out = (select(Event.customer_id,
                        func.max(case((Event.event_type == EventType.UNSUBSCRIBE, 1), else_=0)).label("unsubscribed"))
                 .where(Event.event_type.in_(OPT_OUTS)).group_by(Event.customer_id).subquery())
    customers = session.connection().execute(
        select(Assignment.customer_id, Assignment.assigned_at, Customer.last_active_at, opted_out.c.unsubscribed)
        .outerjoin(Customer, Customer.customer_id == Assignment.customer_id)
        .outerjoin(opted_out, opted_out.c.customer_id == Assignment.customer_id)  # stored ids are normalised
        .where(Assignment.experiment_id == experiment.id, Assignment.variant_id == variant.id)
        .order_by(Assignment.customer_id)
        .execution_options(yield_per=chunk)
    )
    listed = n_opted_out = capped = quiet = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for part in customers.partitions():
            first, last = part[0][0], part[-1][0]
            done = (_steps_recorded(session, Send, experiment.id, first, last)
                    | _steps_recorded(session, ContactHold, experiment.id, first, last))
            recent = _recent_sends(session, experiment, variant, since, first, last)
            new_sends: list[dict] = []
            holds: list[dict] = []
            for customer_id, assigned_at, last_active_at, unsubscribed in part:
                first_touch = schedule.first(assigned_at)
                s = due_step.get(first_touch.date())
                if s is None or (customer_id, s.step) in done:
                    continue
                at = first_touch if s.step == 0 else schedule.later(first_touch, s)
                at_utc = at.astimezone(UTC).replace(tzinfo=None)
                if unsubscribed is not None:
                    reason = HoldReason.UNSUBSCRIBED if unsubscribed else HoldReason.COMPLAINED
                    n_opted_out += 1
                elif in_quiet_hours(at.hour):
                    reason = HoldReason.QUIET_HOURS
                    quiet += 1
                else:
                    reason = policy.hold_reason(at_utc, due, s.channel, last_active_at, recent.get(customer_id, ()))
                    capped += reason is not None
                if reason:
                    holds.append(dict(experiment_id=experiment.id, customer_id=customer_id, step=s.step,
                                      variant_id=variant.id, reason=reason, held_at=now))
                    continue
                message = templates[s.step].render(MessageContext(variant.coupon, customer_id, at))
                new_sends.append(dict(experiment_id=experiment.id, customer_id=customer_id, step=s.step,
                                      variant_id=variant.id, channel=s.channel, scheduled_at=at_utc, message=message))
                writer.writerow((customer_id, s.step, s.channel, message, at.isoformat()))
                listed += 1
            bulk_insert(session, Send, new_sends)
            bulk_insert(session, ContactHold, holds)
            advance(len(part))
    customers.close()
    return SendListFile(variant.name, path, listed, n_opted_out, capped, quiet)


def _steps_recorded(session: Session, model: type[Send] | type[ContactHold], experiment_id: int, first: str,
                    last: str) -> set[tuple[str, int]]:
    """(customer, step) already in ``sends`` or ``contact_holds`` for customers ``first``..``last``
    (the primary key's range: a chunk's look-up, not the whole experiment's)."""
    return set(session.execute(select(model.customer_id, model.step).where(
        model.experiment_id == experiment_id, model.customer_id.between(first, last))))


def _longest_cap_days(policy: ContactPolicy) -> int:
    caps = [policy.dormant_cap, policy.active_cap, *policy.channel_caps.values()]
    return max(cap.days for cap in caps) + 1


def _recent_sends(session: Session, experiment: Experiment, variant: Variant, since: datetime, first: str,
                  last: str) -> dict[str, list[Touch]]:
    """Sends of every experiment (this one's earlier touches included) since ``since`` to the
    variant's customers ``first``..``last``: what the frequency caps count."""
    tz = settings().timezone
    rows = session.execute(
        select(Send.customer_id, Send.scheduled_at, Send.channel)
        .join(Assignment, and_(Assignment.customer_id == Send.customer_id, Assignment.experiment_id == experiment.id,
                               Assignment.variant_id == variant.id))
        .where(Send.scheduled_at >= since, Send.customer_id.between(first, last))
    )
    sends: defaultdict[str, list[Touch]] = defaultdict(list)
    for customer_id, at, channel in rows:
        sends[customer_id].append(Touch(at, at.replace(tzinfo=UTC).astimezone(tz).date(), channel))
    return sends

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
import string
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Exists,
    Integer,
    Label,
    MetaData,
    Select,
    String,
    Subquery,
    Table,
    and_,
    case,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    null,
    select,
    true,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from experiments.access import Actor, Forbidden, Permission, require
from experiments.assignment import progress_bar
from experiments.audit import Action, record, record_now
from experiments.catalog import in_quiet_hours
from experiments.config import settings
from experiments.db import foreign_keys_checked_once, session_scope
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
from experiments.policy import (
    DORMANT_AFTER_DAYS,
    ContactPolicy,
    FrequencyCap,
    HoldReason,
)
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
            with foreign_keys_checked_once(session, Send, customers), progress_bar(progress) as bar, \
                    _due_touches_table(session):
                task = bar.add_task(f"send lists of {experiment.name} due {due}", total=customers)
                for variant in contacted:
                    part = paths[variant.id].with_name(paths[variant.id].name + ".part")
                    created.append(part)
                    drafts.append(_write_variant(session, experiment, variant, part, due, now, policy, chunk))
                    bar.advance(task, per_variant.get(variant.id, 0))
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
                   now: datetime, policy: ContactPolicy, chunk: int) -> SendListFile:
    """One variant's touches due on ``due``: classified, recorded and written (see the module docstring)."""
    connection = session.connection()
    connection.execute(delete(_DUE))
    schedule = _Schedule(experiment, variant)
    due_steps = [d for s in steps(experiment, variant) if (d := _DueStep.of(s, variant, schedule, due))]
    for d in due_steps:
        connection.execute(insert(_DUE).from_select(
            ["customer_id", "step", "reason"], _classified(experiment, variant, d, due, policy)))
    for d in due_steps:
        connection.execute(insert(Send).from_select(
            ["experiment_id", "customer_id", "step", "variant_id", "channel", "scheduled_at", "message"],
            select(literal(experiment.id), _DUE.c.customer_id, _DUE.c.step, literal(variant.id),
                   literal(d.step.channel, String), literal(d.at_utc, DateTime), d.message_sql(_DUE.c.customer_id))
            .where(_DUE.c.step == d.step.step, _DUE.c.reason.is_(None))))
    connection.execute(insert(ContactHold).from_select(
        ["experiment_id", "customer_id", "step", "variant_id", "reason", "held_at"],
        select(literal(experiment.id), _DUE.c.customer_id, _DUE.c.step, literal(variant.id), _DUE.c.reason,
               literal(now, DateTime)).where(_DUE.c.reason.is_not(None))))
    held = dict(connection.execute(
        select(_DUE.c.reason, func.count()).where(_DUE.c.reason.is_not(None)).group_by(_DUE.c.reason)).all())

    row_of = {d.step.step: d.csv_row for d in due_steps}
    listed = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        result = connection.execute(
            select(_DUE.c.customer_id, _DUE.c.step).where(_DUE.c.reason.is_(None)).order_by(_DUE.c.customer_id)
            .execution_options(yield_per=chunk))
        for part in result.partitions():
            writer.writerows(row_of[step](customer_id) for customer_id, step in part)
            listed += len(part)
        result.close()
    opted_out = held.get(HoldReason.UNSUBSCRIBED, 0) + held.get(HoldReason.COMPLAINED, 0)
    quiet = held.get(HoldReason.QUIET_HOURS, 0)
    return SendListFile(variant.name, path, listed, opted_out, sum(held.values()) - opted_out - quiet, quiet)


# The touches of one variant due on one day, classified, before they are recorded and written: a
# temporary table (each connection its own), filled and read in one transaction.
_DUE = Table("recall_due_touches", MetaData(), Column("customer_id", String(64)), Column("step", Integer),
             Column("reason", String(32)), prefixes=["TEMPORARY"])


@contextmanager
def _due_touches_table(session: Session) -> Iterator[None]:
    connection = session.connection()
    _DUE.drop(connection, checkfirst=True)
    _DUE.create(connection)
    yield
    _DUE.drop(connection)


@dataclass(frozen=True)
class _DueStep:
    """A step due on a day: every one of its touches that day has the same send time and message, but
    for the customer id; its customers are those assigned in ``(assigned_after, assigned_until]``."""

    step: Step
    at: datetime  # local send time
    assigned_after: datetime | None  # naive UTC; None: no lower bound
    assigned_until: datetime
    pieces: tuple[str | None, ...]  # the rendered message: literal text, None where the customer id goes

    @classmethod
    def of(cls, step: Step, variant: Variant, schedule: _Schedule, due: date) -> _DueStep | None:
        """The step if some customer's touch of it can fall on ``due``: the customers whose first touch
        is on day ``due - step.day`` (:meth:`_Schedule.first` solved for the assignment time)."""
        first = due - timedelta(days=step.day)
        if schedule.start and first < schedule.start:
            return None
        at = datetime.combine(due, time(step.send_hour if step.step else schedule.hour.hour), tzinfo=schedule.tz)
        until = datetime.combine(first, schedule.hour, tzinfo=schedule.tz)
        # Assigned after the send hour of the day before: the first touch moves to the next day; on the
        # start day, everyone assigned before it is included.
        after = None if first == schedule.start else until - timedelta(days=1)
        return cls(step, at, after and _utc(after), _utc(until), _pieces(step, variant, at))

    @property
    def at_utc(self) -> datetime:
        return _utc(self.at)

    def csv_row(self, customer_id: str) -> tuple[str, int, str, str, str]:
        message = "".join(customer_id if p is None else p for p in self.pieces)
        return customer_id, self.step.step, self.step.channel, message, self.at.isoformat()

    def message_sql(self, customer_id: ColumnElement) -> ColumnElement:
        """The message as the database concatenates it (the same text as :meth:`csv_row`'s)."""
        parts = [customer_id if p is None else literal(p, String) for p in self.pieces if p != ""]
        message = parts[0] if parts else literal("", String)
        for part in parts[1:]:
            message = message + part
        return message


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None)


def _pieces(step: Step, variant: Variant, at: datetime) -> tuple[str | None, ...]:
    """The step's message rendered for ``at`` with the customer id left open (``None``)."""
    fields = MessageContext(variant.coupon, "", at).fields()
    Template(step.template)  # checked: plain, known placeholders only
    pieces: list[str | None] = []
    for text, field, _, _ in string.Formatter().parse(step.template):
        pieces.append(text)
        if field == "customer_id":
            pieces.append(None)
        elif field is not None:
            pieces.append(fields[field])
    return tuple(pieces)


def _classified(experiment: Experiment, variant: Variant, due_step: _DueStep, due: date,
                policy: ContactPolicy) -> Select:
    """(customer, step, reason) of the step's touches due on ``due`` not yet exported or held: reason
    NULL for a touch to list, else why it is held back, in :meth:`ContactPolicy.hold_reason`'s order
    after the opt-outs and quiet hours."""
    a = Assignment
    step = due_step.step.step

    def recorded(model: type[Send | ContactHold]) -> Exists:
        return exists().where(model.experiment_id == experiment.id, model.customer_id == a.customer_id,
                              model.step == step)

    opted_out = (select(Event.customer_id,
                        func.max(case((Event.event_type == EventType.UNSUBSCRIBE, 1), else_=0)).label("unsubscribed"))
                 .where(Event.event_type.in_(OPT_OUTS)).group_by(Event.customer_id).subquery())
    whens = [(opted_out.c.unsubscribed == 1, HoldReason.UNSUBSCRIBED),
             (opted_out.c.unsubscribed == 0, HoldReason.COMPLAINED)]
    customers = a.__table__.outerjoin(opted_out, opted_out.c.customer_id == a.customer_id)  # ids are normalised
    if in_quiet_hours(due_step.at.hour):
        whens.append((true(), HoldReason.QUIET_HOURS))
    else:
        recent = _recent_sends(experiment, variant, due_step, due, policy)
        customers = customers.outerjoin(recent, recent.c.customer_id == a.customer_id)
        whens += _caps(recent, due_step, due, policy)
    reason = case(*((condition, literal(why, String)) for condition, why in whens), else_=null())
    bounds = [a.assigned_at <= due_step.assigned_until]
    if due_step.assigned_after is not None:
        bounds.append(a.assigned_at > due_step.assigned_after)
    return (select(a.customer_id, literal(step), reason).select_from(customers)
            .where(a.experiment_id == experiment.id, a.variant_id == variant.id, *bounds,
                   ~recorded(Send), ~recorded(ContactHold)))


def _recent_sends(experiment: Experiment, variant: Variant, due_step: _DueStep, due: date,
                  policy: ContactPolicy) -> Subquery:
    """Per customer of the variant with sends near the touch, of every experiment (this one's earlier
    touches included): the sends each cap counts, in its window ``at - days < t < at + days``."""
    at = due_step.at_utc
    day = (local_midnight_utc(due), local_midnight_utc(due + timedelta(days=1)))  # the touch's local day

    def within(cap: FrequencyCap) -> ColumnElement[bool]:
        return and_(Send.scheduled_at > at - timedelta(days=cap.days), Send.scheduled_at < at + timedelta(days=cap.days))

    def counted(name: str, condition: ColumnElement[bool]) -> Label:
        return func.sum(case((condition, 1), else_=0)).label(name)

    columns = [Send.customer_id, counted("dormant", within(policy.dormant_cap)),
               counted("active", within(policy.active_cap))]
    channel_cap = policy.channel_caps.get(due_step.step.channel)
    if channel_cap:
        columns.append(counted("channel", and_(Send.channel == due_step.step.channel, within(channel_cap))))
    if due in policy.holidays:
        columns.append(counted("day", and_(Send.scheduled_at >= day[0], Send.scheduled_at < day[1])))
    widest = timedelta(days=max(c.days for c in (policy.dormant_cap, policy.active_cap, channel_cap) if c))
    return (select(*columns)
            .join(Assignment, and_(Assignment.experiment_id == experiment.id, Assignment.customer_id == Send.customer_id,
                                   Assignment.variant_id == variant.id))
            .where(Send.scheduled_at > min(at - widest, day[0]), Send.scheduled_at < max(at + widest, day[1]))
            .group_by(Send.customer_id).subquery("recent"))


def _caps(recent: Subquery, due_step: _DueStep, due: date, policy: ContactPolicy) -> list[tuple]:
    """:meth:`ContactPolicy.hold_reason` as CASE branches over :func:`_recent_sends`' counts (a customer
    with no recent sends counts 0 everywhere)."""
    at = due_step.at_utc
    active = func.coalesce(
        select(Customer.last_active_at > at - timedelta(days=DORMANT_AFTER_DAYS))
        .where(Customer.customer_id == Assignment.customer_id).scalar_subquery(), false())

    def reached(column: str, cap: int) -> ColumnElement[bool]:
        return func.coalesce(recent.c[column], 0) >= cap

    # The count first: the customer's activity is looked up only for the few who reach a cap.
    whens = [(and_(reached("dormant", policy.dormant_cap.max_sends), ~active), HoldReason.DORMANT_CAP),
             (and_(reached("active", policy.active_cap.max_sends), active), HoldReason.ACTIVE_CAP)]
    if "channel" in recent.c:
        whens.append((reached("channel", policy.channel_caps[due_step.step.channel].max_sends),
                      HoldReason.CHANNEL_CAP))
    if "day" in recent.c:
        whens.append((reached("day", policy.holiday_daily_cap), HoldReason.HOLIDAY_CAP))
    return whens

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

The database does the work, in a few statements whatever the number of customers (a million in
seconds, where a loop over customers in Python took minutes):

1. the customers opted out so far are looked up once (a temporary table);
2. one INSERT … SELECT classifies every touch due that day: which step is due follows from the
   variant and the assignment time alone (:class:`_DueStep`), so each step's send time and message
   are the same for all its customers but for the customer id; touches already exported or held are
   left out; the reason to hold one (opt-out, quiet hours, then the caps of
   :meth:`experiments.policy.ContactPolicy.hold_reason`, written as SQL in :class:`_Caps`) or NULL
   goes into a second temporary table;
3. one INSERT … SELECT records the listed touches in ``sends`` (not their message:
   the spec's template, the coupon, the time and the id give it) and the held ones in ``contact_holds``;
4. the file is written from the listed customer ids, streamed as plain tuples (a server-side cursor
   on PostgreSQL), joined with each step's constant texts; its sha256 is taken as it is written.

Memory stays flat: no step holds more than ``chunk`` customers in Python. tests/test_sendlist.py
checks the SQL against ``hold_reason`` itself on a randomized database. Send lists carry no phone
numbers: the sending system looks them up by customer id.
"""

from __future__ import annotations

import csv
import hashlib
import io
import string
from collections.abc import Callable, Iterable, Iterator, Sequence
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
    MetaData,
    Select,
    String,
    Table,
    and_,
    case,
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
from experiments.dialects import (
    analyze_table,
    begin_writing,
    filled_in_key_order,
    in_stored_order,
    stream_rows,
    with_sort_memory,
    without_jit,
)
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
CHUNK = 50_000  # customer ids fetched and written to a file at a time
OPT_OUTS = (EventType.UNSUBSCRIBE, EventType.COMPLAINT)
MAX_FILE_NAME_BYTES = 255
_CSV_SPECIAL = ',"\r\n'  # characters that make the csv module quote a field


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
    customers stay assigned. A variant with no touch due gets no file. The database classifies and
    records the touches; the listed ids reach Python ``chunk`` at a time (bounded memory). ``progress``
    shows a progress bar (one step a variant). Raises :class:`SendListRefused` for an
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
            # At most one touch a customer a day: the experiment's assignments bound the day's sends.
            customers = session.scalar(select(func.count()).where(Assignment.experiment_id == experiment.id))
            drafts = []
            with foreign_keys_checked_once(session, Send, customers), progress_bar(progress) as bar, \
                    _export_tables(session):
                task = bar.add_task(f"send lists of {experiment.name} due {due}", total=len(contacted) + 1)
                due_steps = {v.id: _due_steps(experiment, v, due) for v in contacted}
                all_due = [(v, d) for v in contacted for d in due_steps[v.id]]
                _classify(session, experiment, all_due, due, policy)
                held = _record(session, experiment, all_due, now)
                bar.advance(task)
                for variant in contacted:
                    part = paths[variant.id].with_name(paths[variant.id].name + ".part")
                    created.append(part)
                    drafts.append(_write_variant(session, variant, due_steps[variant.id], held, part, chunk))
                    bar.advance(task)
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
    draft.path.replace(path)
    created.append(path)
    return SendListFile(draft.variant, path, draft.rows, draft.suppressed_unsubscribed, draft.held_by_caps,
                        draft.held_quiet_hours, draft.sha256)


def _due_steps(experiment: Experiment, variant: Variant, due: date) -> list[_DueStep]:
    schedule = _Schedule(experiment, variant)
    return [d for s in steps(experiment, variant) if (d := _DueStep.of(s, variant, schedule, due))]


def _classify(session: Session, experiment: Experiment, due_steps: list[tuple[Variant, _DueStep]], due: date,
              policy: ContactPolicy) -> None:
    """Every touch due on ``due`` not yet exported or held, with why it is held (NULL: to list), into
    the temporary table: one statement, one pass over the experiment's assignments."""
    if due_steps:
        session.connection().execute(insert(_DUE).from_select(
            ["variant_id", "step", "customer_id", "reason"], _classified(experiment, due_steps, due, policy)))


def _record(session: Session, experiment: Experiment, due_steps: list[tuple[Variant, _DueStep]],
            now: datetime) -> dict[tuple[int, str], int]:
    """The classified touches of every variant into ``sends`` (listed) and ``contact_holds`` (held), one
    statement each, read in customer order (the order the temporary table was filled in) so that both
    tables' keys grow by appending; returns the held touches counted by (variant id, reason)."""
    connection = session.connection()
    due_touches = _DUE.c
    if due_steps:
        def of_touch(value: Callable[[_DueStep], object], type_: type) -> ColumnElement:
            return case(*((and_(due_touches.variant_id == v.id, due_touches.step == d.step.step),
                           literal(value(d), type_)) for v, d in due_steps))

        connection.execute(insert(Send).from_select(
            ["experiment_id", "customer_id", "step", "variant_id", "channel", "scheduled_at"],
            in_stored_order(connection, select(
                literal(experiment.id), due_touches.customer_id, due_touches.step, due_touches.variant_id,
                of_touch(lambda d: d.step.channel, String), of_touch(lambda d: d.at_utc, DateTime))
                .where(due_touches.reason.is_(None)), due_touches.customer_id, due_touches.step)))
    connection.execute(insert(ContactHold).from_select(
        ["experiment_id", "customer_id", "step", "variant_id", "reason", "held_at"],
        select(literal(experiment.id), due_touches.customer_id, due_touches.step, due_touches.variant_id,
               due_touches.reason, literal(now, DateTime)).where(due_touches.reason.is_not(None))
        .order_by(due_touches.customer_id, due_touches.step)))
    return {(variant_id, reason): n for variant_id, reason, n in connection.execute(
        select(due_touches.variant_id, due_touches.reason, func.count()).where(due_touches.reason.is_not(None))
        .group_by(due_touches.variant_id, due_touches.reason))}


def _write_variant(session: Session, variant: Variant, due_steps: list[_DueStep], held_by: dict[tuple[int, str], int],
                   path: Path, chunk: int) -> SendListFile:
    """One variant's listed touches written to ``path``, by step, each in customer order."""
    connection = session.connection()
    due_touches = _DUE.c
    held = {reason: n for (variant_id, reason), n in held_by.items() if variant_id == variant.id}
    listed = 0
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        def write(text: str) -> None:
            data = text.encode("utf-8")
            fh.write(data)
            digest.update(data)

        write(_csv_text([COLUMNS]))
        for d in due_steps:  # by step, each in customer order (the table's key)
            customers = (select(due_touches.customer_id)
                         .where(due_touches.variant_id == variant.id, due_touches.step == d.step.step,
                                due_touches.reason.is_(None))
                         .order_by(due_touches.customer_id))
            for rows in stream_rows(connection, customers, chunk):
                write(d.csv_text([customer_id for customer_id, in rows]))
                listed += len(rows)
    opted_out = held.get(HoldReason.UNSUBSCRIBED, 0) + held.get(HoldReason.COMPLAINED, 0)
    quiet = held.get(HoldReason.QUIET_HOURS, 0)
    return SendListFile(variant.name, path, listed, opted_out, sum(held.values()) - opted_out - quiet, quiet,
                        digest.hexdigest())


# Temporary tables of one export (each connection has its own; dropped at its end): the customers
# opted out so far, looked up once, and every due touch of each variant with why it is held (NULL: listed).
_TEMPORARY = MetaData()
_OPTED_OUT = Table("recall_opted_out", _TEMPORARY, Column("customer_id", String(64), primary_key=True),
                   Column("unsubscribed", Integer), prefixes=["TEMPORARY"], sqlite_with_rowid=False)
# Keyed by customer, as the assignments it is filled from (appended in order) and as sends and
# contact_holds (filled from it in order); a customer has one variant. On PostgreSQL a heap filled in
# that order, without the key's B-tree (:func:`filled_in_key_order`).
_DUE = Table("recall_due_touches", _TEMPORARY, Column("customer_id", String(64), primary_key=True),
             Column("step", Integer, primary_key=True), Column("variant_id", Integer),
             Column("reason", String(32)), prefixes=["TEMPORARY"], sqlite_with_rowid=False)


@contextmanager
def _export_tables(session: Session) -> Iterator[None]:
    connection = session.connection()
    begin_writing(connection)
    without_jit(connection)
    with_sort_memory(connection)
    _TEMPORARY.drop_all(connection, checkfirst=True)
    _TEMPORARY.create_all(connection)
    filled_in_key_order(connection, _DUE)
    connection.execute(insert(_OPTED_OUT).from_select(["customer_id", "unsubscribed"], select(
        Event.customer_id, func.max(case((Event.event_type == EventType.UNSUBSCRIBE, 1), else_=0)))
        .where(Event.event_type.in_(OPT_OUTS)).group_by(Event.customer_id)))
    analyze_table(connection, _OPTED_OUT.name)
    yield
    _TEMPORARY.drop_all(connection)


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
        at = datetime.combine(due, time(step.send_hour), tzinfo=schedule.tz)
        until = datetime.combine(first, schedule.hour, tzinfo=schedule.tz)
        # Assigned after the send hour of the day before: the first touch moves to the next day; on the
        # start day, everyone assigned before it is included. (Send hours lie outside the quiet hours,
        # where daylight-saving changes happen, so comparing UTC instants equals comparing local times.)
        after = None if first == schedule.start else until - timedelta(days=1)
        return cls(step, at, after and _utc(after), _utc(until), _pieces(step, variant, at))

    @property
    def at_utc(self) -> datetime:
        return _utc(self.at)

    def csv_text(self, customers: list[str]) -> str:
        """The file's lines (:data:`COLUMNS`) of ``customers``, as :mod:`csv` writes them: by one join at
        C speed (a million lines in a fraction of a second) unless a field needs quoting."""
        step, channel, send_at = str(self.step.step), self.step.channel, self.at.isoformat()
        constant = [p for p in self.pieces if p is not None] + [channel, send_at]
        if any(map(_needs_quoting, constant)) or _needs_quoting("".join(customers)):
            return _csv_text((c, step, channel, self.message(c), send_at) for c in customers)
        # A line is the id, a constant text, the id again where the message holds it…: the constant
        # texts are interleaved with the ids by slice assignment and joined once, five times faster
        # than a format call per line.
        texts: list[str] = []
        for piece in (f",{step},{channel},", *self.pieces, f",{send_at}\r\n"):
            if piece is None:
                texts.append("")
            elif texts:
                texts[-1] += piece
            else:
                texts.append(piece)
        width, n = 2 * len(texts), len(customers)
        parts: list[str] = [""] * (width * n)
        for i, text in enumerate(texts):
            parts[2 * i::width] = customers
            parts[2 * i + 1::width] = [text] * n
        return "".join(parts)

    def message(self, customer_id: str) -> str:
        return "".join(customer_id if p is None else p for p in self.pieces)


def _needs_quoting(text: str) -> bool:
    return any(c in text for c in _CSV_SPECIAL)


def _csv_text(rows: Iterable[Sequence[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


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


def _classified(experiment: Experiment, due_steps: list[tuple[Variant, _DueStep]], due: date,
                policy: ContactPolicy) -> Select:
    """(variant, step, customer, reason) of the touches due on ``due`` not yet exported or held: reason
    NULL for a touch to list, else why it is held back: an opt-out, the quiet hours, then
    :meth:`ContactPolicy.hold_reason` as SQL (see :class:`_Caps`). Which of ``due_steps`` a customer's
    touch is follows from the variant and the assignment time (:class:`_DueStep`)."""
    a = Assignment

    def assigned_for(variant: Variant, d: _DueStep) -> ColumnElement[bool]:
        after = [] if d.assigned_after is None else [a.assigned_at > d.assigned_after]
        return and_(a.variant_id == variant.id, a.assigned_at <= d.assigned_until, *after)

    touch = case(*((assigned_for(v, d), i) for i, (v, d) in enumerate(due_steps)), else_=null())
    due_now = (select(a.customer_id, a.variant_id, touch.label("touch"))
               .where(a.experiment_id == experiment.id).subquery("due_now"))
    step = case({i: d.step.step for i, (_, d) in enumerate(due_steps)}, value=due_now.c.touch)

    def recorded(model: type[Send | ContactHold]) -> Exists:
        return exists().where(model.experiment_id == experiment.id, model.customer_id == due_now.c.customer_id,
                              model.step == step)

    def reason(d: _DueStep) -> ColumnElement[str]:
        opted_out = _OPTED_OUT.c
        whens = [(opted_out.unsubscribed == 1, HoldReason.UNSUBSCRIBED),
                 (opted_out.unsubscribed == 0, HoldReason.COMPLAINED)]
        if in_quiet_hours(d.at.hour):
            whens.append((true(), HoldReason.QUIET_HOURS))
        else:
            whens += _Caps(policy, d, due, due_now.c.customer_id).whens()
        return case(*((condition, literal(why, String) if why else null()) for condition, why in whens),
                    else_=null())

    return (select(due_now.c.variant_id, step, due_now.c.customer_id,
                   case({i: reason(d) for i, (_, d) in enumerate(due_steps)}, value=due_now.c.touch))
            .select_from(due_now.outerjoin(_OPTED_OUT, _OPTED_OUT.c.customer_id == due_now.c.customer_id))
            .where(due_now.c.touch.is_not(None), ~recorded(Send), ~recorded(ContactHold))
            .order_by(due_now.c.customer_id))  # the assignments' order: appended to the temporary table


@dataclass(frozen=True)
class _Caps:
    """:meth:`ContactPolicy.hold_reason` for a touch at ``due_step``'s time, as CASE branches.

    The caps count the customer's sends of every experiment (this one's earlier touches included) in
    each cap's window ``at - days < t < at + days``. Most customers have none near the touch: one index
    probe (``ix_sends_customer_time``) settles them, and only the others are counted cap by cap.
    """

    policy: ContactPolicy
    due_step: _DueStep
    due: date
    customer_id: ColumnElement[str]

    def whens(self) -> list[tuple[ColumnElement[bool], str | None]]:
        policy, at, channel = self.policy, self.due_step.at_utc, self.due_step.step.channel
        dormant, active = (policy.hold_reason(at, self.due, channel, last_active, []) for last_active in (None, at))
        nothing_near = ~self.sends(self.widest()).exists()
        whens = [(and_(nothing_near, self.active()), active), (nothing_near, dormant)] if dormant != active \
            else [(nothing_near, dormant)]
        whens += [(and_(self.counted(policy.dormant_cap) >= policy.dormant_cap.max_sends, ~self.active()),
                   HoldReason.DORMANT_CAP),
                  (and_(self.counted(policy.active_cap) >= policy.active_cap.max_sends, self.active()),
                   HoldReason.ACTIVE_CAP)]
        if channel_cap := policy.channel_caps.get(channel):
            whens.append((self.counted(channel_cap, Send.channel == channel) >= channel_cap.max_sends,
                          HoldReason.CHANNEL_CAP))
        if self.due in policy.holidays:
            day = self.day()
            whens.append((self.count(Send.scheduled_at >= day[0], Send.scheduled_at < day[1]) >=
                          policy.holiday_daily_cap, HoldReason.HOLIDAY_CAP))
        return whens

    def day(self) -> tuple[datetime, datetime]:
        """The touch's local day, as UTC instants."""
        return local_midnight_utc(self.due), local_midnight_utc(self.due + timedelta(days=1))

    def window(self, cap: FrequencyCap) -> tuple[datetime, datetime]:
        return self.due_step.at_utc - timedelta(days=cap.days), self.due_step.at_utc + timedelta(days=cap.days)

    def widest(self) -> tuple[datetime, datetime]:
        caps = [self.policy.dormant_cap, self.policy.active_cap, *self.policy.channel_caps.values()]
        windows = [self.window(cap) for cap in caps] + [self.day()]
        return min(w[0] for w in windows), max(w[1] for w in windows)

    def sends(self, window: tuple[datetime, datetime], *conditions: ColumnElement[bool]) -> Select:
        return select(Send.customer_id).where(Send.customer_id == self.customer_id, Send.scheduled_at > window[0],
                                              Send.scheduled_at < window[1], *conditions)

    def counted(self, cap: FrequencyCap, *conditions: ColumnElement[bool]) -> ColumnElement[int]:
        return self.count(Send.scheduled_at > self.window(cap)[0], Send.scheduled_at < self.window(cap)[1],
                          *conditions)

    def count(self, *conditions: ColumnElement[bool]) -> ColumnElement[int]:
        return (select(func.count()).select_from(Send.__table__)
                .where(Send.customer_id == self.customer_id, *conditions).scalar_subquery())

    def active(self) -> ColumnElement[bool]:
        """Active at the touch (:meth:`ContactPolicy.cap_for`): last active less than 30 days before it."""
        since = self.due_step.at_utc - timedelta(days=DORMANT_AFTER_DAYS)
        return func.coalesce(select(Customer.last_active_at > since)
                             .where(Customer.customer_id == self.customer_id).scalar_subquery(), false())

"""Deterministic assignment: sha256(salt:customer_id) picks a bucket, buckets map to variants.

The hash makes the split reproducible on any machine and database and independent of the order
customers arrive in; only customers not yet assigned are ever written, so nobody moves.

:func:`bucket` is the definition; :class:`experiments.dialects.hash_bucket` computes the same number
inside the database, so assigning millions of customers is one INSERT … SELECT, and no customer id
travels to Python.
"""

from __future__ import annotations

import hashlib
import struct
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy import (
    DateTime,
    Engine,
    Insert,
    Select,
    and_,
    case,
    exists,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from experiments.cohorts import cohort_filter
from experiments.db import foreign_keys_checked_once, session_scope
from experiments.dialects import hash_bucket
from experiments.filters import compile_filter
from experiments.models import (
    Assignment,
    Customer,
    Event,
    EventType,
    Experiment,
    ExperimentStatus,
    Send,
    TargetScore,
)
from experiments.policy import DORMANT_AFTER_DAYS, ContactPolicy, FrequencyCap
from experiments.store import get_experiment, stored_spec, utcnow

BUCKETS = 10_000
ASSIGNMENT_COLUMNS = ("experiment_id", "customer_id", "variant_id", "bucket", "assigned_at")
_FIRST_8_BYTES = struct.Struct(">Q").unpack_from


def bucket(salt: str, customer_id: str) -> int:
    """The customer's bucket in [0, BUCKETS): the first 8 bytes of sha256("salt:id"), big-endian."""
    return buckets(salt, [customer_id])[0]


def buckets(salt: str, customer_ids: Iterable[str]) -> list[int]:
    """:func:`bucket` of many customers at once (the one implementation of the hash).

    The hash state of ``"salt:"`` is computed once and copied for each customer id, about twice as
    fast as hashing ``"salt:id"`` whole.
    """
    salted = hashlib.sha256(f"{salt}:".encode()).copy
    first_8_bytes = _FIRST_8_BYTES
    out: list[int] = []
    append = out.append
    for customer_id in customer_ids:
        h = salted()
        h.update(customer_id.encode())
        append(first_8_bytes(h.digest())[0] % BUCKETS)
    return out


def bucket_bounds(shares: Sequence[float]) -> list[int]:
    """Upper bucket bound of each variant, in spec order (the last is always BUCKETS)."""
    bounds = [round(c * BUCKETS) for c in accumulate(shares)]
    bounds[-1] = BUCKETS
    return bounds


def variant_index(bucket_no: int, bounds: Sequence[int]) -> int:
    return bisect_right(bounds, bucket_no)


@dataclass(frozen=True)
class AssignmentSummary:
    experiment: str
    newly_assigned: int
    per_variant: dict[str, int]
    in_other_experiment: int = 0
    in_global_holdout: int = 0
    not_targeted: int = 0  # targeted experiment: scored, in the targeted-policy group, below the cutoff


def in_global_holdout(policy: ContactPolicy, customer_id: str) -> bool:
    """A stable share of all customers that no campaign ever contacts (the long-run natural rate)."""
    return bucket(policy.global_holdout_salt, customer_id) < round(policy.global_holdout_share * BUCKETS)


@dataclass(frozen=True)
class Audience:
    """Who an assignment of an experiment would reach now, and who it leaves out and why.

    ``eligible`` counts customers in the cohort and filter not yet in the experiment; of them,
    ``held_by_layer`` are in another running experiment of the same layer (by name), ``in_global_holdout``
    are never contacted by any campaign, and the rest (``to_assign``) would be assigned. Of those,
    ``unsubscribed`` (or complained) and ``capped`` (already at their frequency cap) stay assigned
    (intention-to-treat) but would not be messaged at launch.
    """

    experiment: str
    eligible: int
    held_by_layer: dict[str, int]
    in_global_holdout: int
    to_assign: int
    unsubscribed: int
    capped: int

    @property
    def held_by_other_experiments(self) -> int:
        return self.eligible - self.in_global_holdout - self.to_assign

    @property
    def reachable(self) -> int:
        """Customers who would be assigned and could be messaged today."""
        return self.to_assign - self.unsubscribed - self.capped


def audience(session: Session, experiment: Experiment, as_of: datetime, policy: ContactPolicy) -> Audience:
    """:class:`Audience` of ``experiment`` at ``as_of`` (naive UTC). Reads only: two aggregate queries."""
    spec = stored_spec(experiment)
    custom = compile_filter(spec.filter, as_of) if spec else true()
    targets = _Targets(session, experiment, (cohort_filter(experiment.cohort, as_of), custom),
                       bool(_per_variant(session, experiment)))
    busy = targets.in_other()
    held_out = _held_out(policy)
    # IN (subquery), not a correlated EXISTS: PostgreSQL hashes the few opted-out ids once.
    unsubscribed = Customer.customer_id.in_(
        select(Event.customer_id).where(Event.event_type.in_((EventType.UNSUBSCRIBE, EventType.COMPLAINT)),
                                        Event.occurred_at <= as_of))
    capped = _at_cap(policy, as_of)
    free = and_(~busy, ~held_out)

    def count_if(condition: ColumnElement[bool]):  # noqa: ANN202 - a SQL expression
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    row = session.execute(select(
        func.count(), count_if(busy), count_if(and_(~busy, held_out)), count_if(free),
        count_if(and_(free, unsubscribed)), count_if(and_(free, ~unsubscribed, capped)),
    ).select_from(Customer).where(*targets.eligible_here())).one()
    eligible, n_busy, n_held_out, to_assign, n_unsubscribed, n_capped = (int(x or 0) for x in row)
    held_by_layer: dict[str, int] = {}
    if n_busy:
        held_by_layer = {name: int(n) for name, n in session.execute(
            select(Experiment.name, func.count())
            .select_from(Customer)
            .join(Assignment, Assignment.customer_id == Customer.customer_id)
            .join(Experiment, Experiment.id == Assignment.experiment_id)
            .where(Assignment.experiment_id.in_(targets.others), *targets.eligible_here())
            .group_by(Experiment.name)
            .order_by(func.count().desc(), Experiment.name)
        )}
    return Audience(experiment.name, eligible, held_by_layer, n_held_out, to_assign, n_unsubscribed, n_capped)


def _held_out(policy: ContactPolicy) -> ColumnElement[bool]:
    bound = round(policy.global_holdout_share * BUCKETS) if policy.global_holdout_share else 0
    if not bound:
        return false()
    return hash_bucket(policy.global_holdout_salt, Customer.customer_id, BUCKETS) < bound


def _at_cap(policy: ContactPolicy, as_of: datetime) -> ColumnElement[bool]:
    """Customers whose touches around ``as_of`` already reach their frequency cap (dormant or active)."""
    dormant = or_(Customer.last_active_at.is_(None),
                  Customer.last_active_at <= as_of - timedelta(days=DORMANT_AFTER_DAYS))

    def at(cap: FrequencyCap) -> ColumnElement[bool]:
        if cap.max_sends <= 0:
            return true()
        window = timedelta(days=cap.days)
        return Customer.customer_id.in_(
            select(Send.customer_id)
            .where(Send.scheduled_at > as_of - window, Send.scheduled_at < as_of + window)
            .group_by(Send.customer_id)
            .having(func.count() >= cap.max_sends)
        )

    return or_(and_(dormant, at(policy.dormant_cap)), and_(~dormant, at(policy.active_cap)))


def assign(engine: Engine, name: str, as_of: datetime | None = None, policy: ContactPolicy | None = None,
           *, progress: bool = False) -> AssignmentSummary:
    """Assign every target customer not yet assigned; launch the experiment (its design locks).

    ``as_of`` (naive UTC) is the reference time for the cohort and the start of each new
    customer's attribution window; it defaults to now. Customers in another running experiment of
    the same layer, and those in the global holdout, are left out (see :mod:`experiments.policy`).
    This is the mechanism; :func:`experiments.lifecycle.launch` is the action (role, state, audience
    and audit checked, in the same transaction through :func:`assign_in`).
    """
    with session_scope(engine) as session:
        return assign_in(session, get_experiment(session, name), as_of=as_of, policy=policy, progress=progress)


def assign_in(session: Session, experiment: Experiment, *, as_of: datetime | None = None,
              policy: ContactPolicy | None = None, progress: bool = False,
              explained: Audience | None = None) -> AssignmentSummary:
    """:func:`assign` inside the caller's transaction (``explained``: the audience already counted).

    The database does the work: customers are hashed where they are (:class:`hash_bucket`) and
    stored with one INSERT … SELECT (``progress`` shows a bar with the elapsed time). No customer id
    travels to Python, so memory stays flat. One statement, not ranges of customer ids: at 10M
    customers on PostgreSQL ten ranges took 59 s, one statement 47 s (benchmarks/warehouse.py).

    An experiment whose spec has a ``[source]`` is refused: its assignments live in the team's
    warehouse, where they were made, and Recall Lab only reads them.
    """
    as_of = as_of or utcnow()
    policy = policy or ContactPolicy.from_env()
    spec = stored_spec(experiment)
    if spec is not None and spec.source is not None:
        raise ValueError(
            f"experiment {experiment.name!r} reads its assignments from the team's warehouse ([source] in its "
            "spec): Recall Lab does not assign it; assign it where the warehouse's assignments are made"
        )
    custom = compile_filter(spec.filter, as_of) if spec else true()
    before = _per_variant(session, experiment)
    targets = _Targets(session, experiment, (cohort_filter(experiment.cohort, as_of), custom), bool(before))
    if explained is None:
        in_other_experiment = session.scalar(targets.count(busy=True)) or 0
        total = session.scalar(targets.count(busy=False)) or 0
    else:
        in_other_experiment = explained.held_by_other_experiments
        total = explained.to_assign + explained.in_global_holdout
    held_out = _held_out(policy)
    conditions = [~held_out]
    not_targeted = 0
    if spec is not None and spec.target is not None:
        conditions.append(_targeted_here(experiment))
        not_targeted = _score_once(session, experiment, targets, held_out, as_of)
    with foreign_keys_checked_once(session, Assignment, total), progress_bar(progress) as bar:
        # One statement: the bar pulses with the elapsed time until the database is done.
        task = bar.add_task(f"assigning {total:,} customers to {experiment.name}", total=None)
        session.execute(targets.insert(as_of, *conditions))
        bar.update(task, total=total, completed=total)
    after = _per_variant(session, experiment)
    counts = {v.name: after.get(v.id, 0) - before.get(v.id, 0) for v in experiment.variants}
    newly_assigned = sum(counts.values())
    if experiment.status == ExperimentStatus.DRAFT:
        experiment.status = ExperimentStatus.RUNNING
        experiment.launched_at = as_of
    return AssignmentSummary(experiment.name, newly_assigned, counts, in_other_experiment,
                             total - newly_assigned - not_targeted, not_targeted)


def _score_once(session: Session, experiment: Experiment, targets: _Targets, held_out: ColumnElement[bool],
                as_of: datetime) -> int:
    """A targeted experiment (spec ``target = "MODEL"``): score the customers this launch would assign
    with the stored model (experiments.targeting) and return how many of them the targeted policy leaves
    out. They are not assigned: not contacted, their incremental outcome is 0 by construction."""
    from experiments.targeting import score_audience  # scikit-learn only when a launch needs it

    score_audience(session, experiment, select(Customer.customer_id).where(*targets._where(False), ~held_out), as_of)
    return session.scalar(select(func.count()).select_from(TargetScore).where(
        TargetScore.experiment_id == experiment.id, TargetScore.targeting_policy, ~TargetScore.targeted,
        ~exists().where(Assignment.experiment_id == experiment.id,
                        Assignment.customer_id == TargetScore.customer_id))) or 0


def _targeted_here(experiment: Experiment) -> ColumnElement[bool]:
    """Scored at launch, and contacted by its policy: everyone in the contact-everyone group, the
    targeted audience in the targeted-policy group (each then split by the usual hash into the variants,
    so each group has its own holdout)."""
    return exists().where(TargetScore.experiment_id == experiment.id, TargetScore.customer_id == Customer.customer_id,
                          or_(~TargetScore.targeting_policy, TargetScore.targeted))


class _Targets:
    """The experiment's target customers as SQL: eligible (cohort, filter), not yet assigned, and
    (``busy``) in another running experiment of the same layer or not.

    The experiments to check against are looked up first, so that the common case, a new experiment
    in a layer with nothing else running, needs no anti-join over the assignments table at all.
    """

    def __init__(self, session: Session, experiment: Experiment, eligible: Sequence[ColumnElement[bool]],
                 has_assignments: bool):
        self.experiment = experiment
        self.eligible = eligible
        self.others = list(session.scalars(select(Experiment.id).where(
            Experiment.id != experiment.id, Experiment.layer == experiment.layer,
            Experiment.status == ExperimentStatus.RUNNING)))
        self.has_assignments = has_assignments

    def _assigned(self, experiments: Sequence[int]) -> ColumnElement[bool]:
        if not experiments:
            return false()
        return exists().where(Assignment.experiment_id.in_(experiments), Assignment.customer_id == Customer.customer_id)

    def in_other(self) -> ColumnElement[bool]:
        """In another running experiment of the layer."""
        return self._assigned(self.others)

    def eligible_here(self) -> list[ColumnElement[bool]]:
        """In the cohort and filter, and not yet in this experiment."""
        already = [~self._assigned([self.experiment.id])] if self.has_assignments else []
        return [*self.eligible, *already]

    def _where(self, busy: bool) -> list[ColumnElement[bool]]:
        in_other = self.in_other()
        return [*self.eligible_here(), in_other if busy else ~in_other]

    def count(self, busy: bool) -> Select:
        return select(func.count()).select_from(Customer).where(*self._where(busy))

    def insert(self, as_of: datetime, *conditions: ColumnElement[bool]) -> Insert:
        """INSERT … SELECT of the targets, hashed by the database."""
        hashed = (
            select(Customer.customer_id, hash_bucket(self.experiment.salt, Customer.customer_id, BUCKETS).label("bucket"))
            .where(*self._where(False), *conditions)
            # OFFSET 0 keeps PostgreSQL from inlining the hash into every branch of the CASE below
            # (it would compute sha256 once per variant).
            .offset(0)
            .subquery("hashed")
        )
        variants = self.experiment.variants
        bounds = bucket_bounds([v.share for v in variants])
        variant_id = case(*[(hashed.c.bucket < bound, v.id) for bound, v in zip(bounds[:-1], variants)],
                          else_=variants[-1].id)
        rows = select(literal(self.experiment.id), hashed.c.customer_id, variant_id, hashed.c.bucket,
                      literal(as_of, DateTime()))
        return insert(Assignment).from_select(list(ASSIGNMENT_COLUMNS), rows)


def _per_variant(session: Session, experiment: Experiment) -> dict[int, int]:
    return dict(session.execute(
        select(Assignment.variant_id, func.count())
        .where(Assignment.experiment_id == experiment.id)
        .group_by(Assignment.variant_id)
    ).all())


def progress_bar(enabled: bool) -> Progress:
    """A rich progress bar on stderr (bar, count, rate, elapsed); does nothing unless ``enabled``."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
        TimeElapsedColumn(), console=Console(stderr=True), disable=not enabled,
    )

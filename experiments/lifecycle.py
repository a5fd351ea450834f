"""An experiment's life: draft → running (launch) → stopped → decided → rolled out.

Each transition is an action: checked against the actor's role and recorded in the audit log in
the same transaction, so a transition that fails leaves neither a change nor an entry (a refusal
for lack of permission is recorded on its own). Launching explains its audience before it locks
anything, and refuses an audience nobody is in. A decided experiment ships one named variant or is a
no-go, with a written reason; rolling the shipped variant out is remembered
(:func:`experiments.store.last_rollout`), so the next campaign of the same cohort and layer is
compared with it. :func:`clone` starts again from a past design.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine, select

from experiments.access import Actor, Forbidden, Permission
from experiments.assignment import AssignmentSummary, Audience, assign_in, audience
from experiments.audit import Action, record, record_now
from experiments.db import session_scope
from experiments.identifiers import InvalidIdentifier, check_name
from experiments.models import Decision, Experiment, ExperimentStatus
from experiments.policy import ContactPolicy
from experiments.spec import ExperimentSpec
from experiments.store import create_experiment, get_experiment, new_experiment, stored_spec, utcnow

LaunchAudience = Audience  # the name callers of the first version used


class WrongState(ValueError):
    """A transition the experiment's current status does not allow; the message says what does."""


class LaunchRefused(ValueError):
    """A launch that would reach nobody: the experiment stays a draft and nothing is written."""

    def __init__(self, message: str, audience: Audience):
        super().__init__(message)
        self.audience = audience


def _require(engine: Engine, actor: Actor, permission: Permission, action: Action, name: str) -> None:
    """Raise :class:`Forbidden` (and record the refusal in its own transaction) unless allowed."""
    if not actor.can(permission):
        record_now(engine, actor, Action.FORBIDDEN, name, attempted=action.value, permission=permission.value)
        raise Forbidden(f"{actor.name} ({actor.role.value}) may not {action.value.replace('_', ' ')} "
                        f"{name!r}: it needs the {permission.value} permission")


def _expect(experiment: Experiment, *allowed: ExperimentStatus, doing: str, hint: str = "") -> None:
    if experiment.status not in allowed:
        wanted = " or ".join(s.value for s in allowed)
        raise WrongState(f"cannot {doing} {experiment.name!r}: it is {experiment.status.value}, not {wanted}"
                         + (f"; {hint}" if hint else ""))


# --------------------------------------------------------------------------- launch


def launch_audience(engine: Engine, name: str, as_of: datetime | None = None,
                    policy: ContactPolicy | None = None) -> Audience:
    """The audience a launch of ``name`` would assign at ``as_of`` (naive UTC; default now). Reads only."""
    with session_scope(engine) as session:
        return audience(session, get_experiment(session, name), as_of or utcnow(), policy or ContactPolicy.from_env())


def launch_check(engine: Engine, name: str, as_of: datetime | None = None,
                 policy: ContactPolicy | None = None) -> tuple[Audience, str | None]:
    """The audience a launch of ``name`` would assign, and why :func:`launch` would refuse it (None: it
    would not). Reads only: what a page shows before its launch button."""
    with session_scope(engine) as session:
        experiment = get_experiment(session, name)
        found = audience(session, experiment, as_of or utcnow(), policy or ContactPolicy.from_env())
        return found, refusal(experiment, found) if experiment.status == ExperimentStatus.DRAFT else None


def spec_audience(engine: Engine, spec: ExperimentSpec, as_of: datetime | None = None,
                  policy: ContactPolicy | None = None) -> Audience:
    """The audience of a design not saved yet (the Design page's form), by the same rules as
    :func:`launch_audience`: the experiment is built in memory only, nothing is written."""
    with session_scope(engine) as session:
        return audience(session, new_experiment(spec), as_of or utcnow(), policy or ContactPolicy.from_env())


def refusal(experiment: Experiment, found: Audience) -> str | None:
    """Why a first launch with audience ``found`` must not happen (None: it may)."""
    name, layer = experiment.name, experiment.layer
    if found.eligible == 0:
        spec = stored_spec(experiment)
        return (f"refusing to launch {name!r}: no customer is in cohort {experiment.cohort!r}"
                + (" with its filter" if spec and spec.filter else "") + " now")
    if found.to_assign == 0:
        parts = []
        if found.held_by_layer:
            held = ", ".join(f"{other} ({n:,})" for other, n in found.held_by_layer.items())
            parts.append(f"held by running experiments of layer {layer!r}: {held}")
        if found.in_global_holdout:
            parts.append(f"{found.in_global_holdout:,} in the global holdout")
        return (f"refusing to launch {name!r}: all {found.eligible:,} eligible customers are unavailable ("
                + "; ".join(parts) + "). Stop or decide the experiments holding them "
                "(recall experiment stop NAME), or set another layer in its spec and create it again (a draft may change)")
    if found.unsubscribed == found.to_assign:
        return (f"refusing to launch {name!r}: every one of the {found.to_assign:,} customers it would assign "
                "has unsubscribed or complained, so nobody would be messaged")
    return None


def launch(engine: Engine, name: str, *, actor: Actor, as_of: datetime | None = None, progress: bool = False,
           policy: ContactPolicy | None = None, explain: Callable[[Audience], None] | None = None
           ) -> AssignmentSummary:
    """Assign the experiment's customers (launching it: its design locks), as ``actor``.

    In one transaction: the audience is counted and handed to ``explain`` (e.g. printed) before
    anything is written; a first launch that would reach nobody raises :class:`LaunchRefused` and
    leaves the draft untouched; otherwise customers are assigned and the launch is audited. A running
    experiment may be launched again to add newly eligible customers; a stopped one may not.
    """
    _require(engine, actor, Permission.LAUNCH, Action.LAUNCH, name)
    as_of = as_of or utcnow()
    policy = policy or ContactPolicy.from_env()
    with session_scope(engine) as session:
        experiment = get_experiment(session, name)
        _expect(experiment, ExperimentStatus.DRAFT, ExperimentStatus.RUNNING, doing="launch",
                hint="clone it to run the design again (recall experiment clone NAME NEW_NAME)")
        found = audience(session, experiment, as_of, policy)
        if explain is not None:
            explain(found)
        if experiment.status == ExperimentStatus.DRAFT and (why := refusal(experiment, found)):
            raise LaunchRefused(why, found)
        first = experiment.status == ExperimentStatus.DRAFT
        summary = assign_in(session, experiment, as_of=as_of, policy=policy, progress=progress, explained=found)
        record(session, actor, Action.LAUNCH, name, first=first, newly_assigned=summary.newly_assigned,
               per_variant=summary.per_variant, eligible=found.eligible, held_by_layer=found.held_by_layer,
               in_global_holdout=found.in_global_holdout, unsubscribed=found.unsubscribed, capped=found.capped)
        return summary


# --------------------------------------------------------------------------- stop, decide, roll out


def stop(engine: Engine, name: str, *, actor: Actor, reason: str = "") -> None:
    """Stop a running experiment: no more assignments or send lists; its customers are free again."""
    _require(engine, actor, Permission.DECIDE, Action.STOP, name)
    with session_scope(engine) as session:
        experiment = get_experiment(session, name)
        _expect(experiment, ExperimentStatus.RUNNING, doing="stop")
        experiment.status = ExperimentStatus.STOPPED
        experiment.stopped_at = utcnow()
        record(session, actor, Action.STOP, name, reason=reason.strip())


def decide(engine: Engine, name: str, *, actor: Actor, variant: str | None, reason: str) -> None:
    """Decide a stopped experiment: ship ``variant`` (a contacted variant), or no-go (``variant`` None).

    The reason is required: a decision nobody can explain later is not a decision."""
    _require(engine, actor, Permission.DECIDE, Action.DECIDE, name)
    reason = reason.strip()
    if not reason:
        raise ValueError(f"deciding {name!r} needs a written reason (--reason \"…\")")
    with session_scope(engine) as session:
        experiment = get_experiment(session, name)
        _expect(experiment, ExperimentStatus.STOPPED, doing="decide",
                hint="stop it first (recall experiment stop NAME)" if experiment.status == ExperimentStatus.RUNNING
                else "")
        if variant is not None:
            contacted = [v.name for v in experiment.variants if not v.is_control]
            if variant not in contacted:
                raise ValueError(f"cannot ship {variant!r} in {name!r}: not one of its contacted variants "
                                 f"({', '.join(contacted)}); to keep the status quo decide no-go")
        experiment.status = ExperimentStatus.DECIDED
        experiment.decision = Decision.SHIP if variant else Decision.NO_GO
        experiment.decided_variant = variant
        experiment.decision_reason = reason
        experiment.decided_by = actor.name
        experiment.decided_at = utcnow()
        record(session, actor, Action.DECIDE, name, decision=experiment.decision.value, variant=variant,
               reason=reason)


def roll_out(engine: Engine, name: str, *, actor: Actor) -> None:
    """Mark the shipped variant of a decided experiment as rolled out to everyone (remembered)."""
    _require(engine, actor, Permission.LAUNCH, Action.ROLL_OUT, name)
    with session_scope(engine) as session:
        experiment = get_experiment(session, name)
        _expect(experiment, ExperimentStatus.DECIDED, doing="roll out",
                hint="decide it first (recall experiment decide NAME --ship VARIANT --reason …)")
        if experiment.decision != Decision.SHIP:
            raise WrongState(f"cannot roll out {name!r}: it was decided no-go; nothing to roll out")
        experiment.status = ExperimentStatus.ROLLED_OUT
        experiment.rolled_out_at = utcnow()
        record(session, actor, Action.ROLL_OUT, name, variant=experiment.decided_variant,
               cohort=experiment.cohort, layer=experiment.layer)


# --------------------------------------------------------------------------- clone


def clone(engine: Engine, name: str, new_name: str, *, actor: Actor) -> None:
    """A new draft with the design of ``name`` under ``new_name``: a fresh salt (the new name), so its
    split is independent of the original's."""
    _require(engine, actor, Permission.DESIGN, Action.EXPERIMENT_CREATE, new_name)
    try:
        new_name = check_name(new_name, "experiment name")
    except InvalidIdentifier as exc:
        raise ValueError(str(exc)) from None
    with session_scope(engine) as session:
        source = get_experiment(session, name)
        spec = stored_spec(source)
        if spec is None:
            raise ValueError(f"cannot clone {name!r}: its results were imported, it has no design to copy")
        if session.scalar(select(Experiment.id).where(Experiment.name == new_name)) is not None:
            raise ValueError(f"cannot clone {name!r} as {new_name!r}: an experiment of that name exists")
        copied = ExperimentSpec.model_validate({**json.loads(spec.model_dump_json()), "name": new_name})
        create_experiment(session, copied)
        record(session, actor, Action.EXPERIMENT_CREATE, new_name, cloned_from=name)

"""An experiment's life: draft → running (launch) → stopped → decided → rolled out.

Each transition is an action: checked against the actor's role and recorded in the audit log in
the same transaction. Launching explains its audience before it locks anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, true

from experiments.access import Actor, Permission, require
from experiments.assignment import AssignmentSummary, _Targets, assign
from experiments.audit import Action, record
from experiments.cohorts import cohort_filter
from experiments.db import session_scope
from experiments.filters import compile_filter
from experiments.store import get_experiment, stored_spec, utcnow


@dataclass(frozen=True)
class LaunchAudience:
    """Who a launch would assign now, and who it leaves out and why."""

    experiment: str
    eligible: int  # in the cohort and filter, not yet assigned
    to_assign: int  # of those, not held by another running experiment of the layer
    held_by_layer: dict[str, int] = field(default_factory=dict)  # other running experiment → customers


def launch_audience(engine: Engine, name: str, as_of: datetime | None = None) -> LaunchAudience:
    """The audience a launch of ``name`` would assign at ``as_of`` (naive UTC; default now). Reads only."""
    as_of = as_of or utcnow()
    with session_scope(engine) as session:
        experiment = get_experiment(session, name)
        spec = stored_spec(experiment)
        custom = compile_filter(spec.filter, as_of) if spec else true()
        targets = _Targets(session, experiment, (cohort_filter(experiment.cohort, as_of), custom), True)
        held = session.scalar(targets.count(busy=True)) or 0
        free = session.scalar(targets.count(busy=False)) or 0
        return LaunchAudience(experiment.name, held + free, free, {"other experiments": held} if held else {})


def launch(engine: Engine, name: str, *, actor: Actor, as_of: datetime | None = None,
           progress: bool = False) -> AssignmentSummary:
    """Assign the experiment's customers (launching it: its design locks), as ``actor``."""
    require(actor, Permission.LAUNCH)
    summary = assign(engine, name, as_of=as_of, progress=progress)
    with session_scope(engine) as session:
        record(session, actor, Action.LAUNCH, name, newly_assigned=summary.newly_assigned,
               per_variant=summary.per_variant)
    return summary

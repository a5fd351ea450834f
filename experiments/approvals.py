"""Four-eyes launches: with ``RECALL_LAUNCH_APPROVAL=1`` a launch from the app is a request that a
second person (operator or admin, not the requester) approves; approving launches it.

The request is stored (``launch_requests``), not only logged, so the Design page can list what
waits; editing the draft deletes its requests, so an approval always approves the requested design.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select

from experiments.access import Actor, Forbidden, Permission, require
from experiments.assignment import AssignmentSummary
from experiments.audit import Action, record
from experiments.db import session_scope
from experiments.lifecycle import launch, launch_audience
from experiments.models import Experiment, ExperimentStatus, LaunchRequest
from experiments.store import get_experiment, utcnow


def approval_required() -> bool:
    return os.environ.get("RECALL_LAUNCH_APPROVAL", "") == "1"


@dataclass(frozen=True)
class PendingLaunch:
    id: int
    experiment: str
    requested_by: str
    requested_at: datetime  # naive UTC
    audience: int


def request_launch(engine: Engine, name: str, *, actor: Actor) -> PendingLaunch:
    """Ask for a second person's approval to launch the draft ``name`` (one open request per draft)."""
    require(actor, Permission.LAUNCH)
    audience = launch_audience(engine, name).to_assign
    with session_scope(engine) as session:
        experiment = get_experiment(session, name)
        if experiment.status != ExperimentStatus.DRAFT:
            raise ValueError(f"{name!r} is {experiment.status.value}: only a draft can be launched")
        if session.scalar(select(LaunchRequest.id).where(LaunchRequest.experiment_id == experiment.id,
                                                         LaunchRequest.approved_at.is_(None))) is not None:
            raise ValueError(f"a launch of {name!r} is already waiting for approval")
        request = LaunchRequest(experiment_id=experiment.id, requested_by=actor.name, requested_at=utcnow(),
                                audience=audience)
        session.add(request)
        record(session, actor, Action.LAUNCH_REQUEST, name, audience=audience)
        session.flush()
        return PendingLaunch(request.id, name, actor.name, request.requested_at, audience)


def pending_launches(engine: Engine) -> list[PendingLaunch]:
    """Requests not yet approved, oldest first (reads only)."""
    with session_scope(engine) as session:
        rows = session.execute(
            select(LaunchRequest.id, Experiment.name, LaunchRequest.requested_by, LaunchRequest.requested_at,
                   LaunchRequest.audience)
            .join(Experiment, Experiment.id == LaunchRequest.experiment_id)
            .where(LaunchRequest.approved_at.is_(None), Experiment.status == ExperimentStatus.DRAFT)
            .order_by(LaunchRequest.id)).all()
    return [PendingLaunch(*row) for row in rows]


def approve_launch(engine: Engine, request_id: int, *, actor: Actor) -> AssignmentSummary:
    """Approve a request and launch the experiment, as ``actor``, who must not be the requester."""
    require(actor, Permission.LAUNCH)
    pending = {p.id: p for p in pending_launches(engine)}
    if request_id not in pending:
        raise ValueError(f"no launch request {request_id} is waiting (approved already, or the draft changed)")
    request = pending[request_id]
    if request.requested_by == actor.name:
        raise Forbidden(f"{actor.name} requested this launch: a second person must approve it")
    summary = launch(engine, request.experiment, actor=actor)
    with session_scope(engine) as session:
        stored = session.get(LaunchRequest, request_id)
        stored.approved_by, stored.approved_at = actor.name, utcnow()
        record(session, actor, Action.LAUNCH_APPROVE, request.experiment, requested_by=request.requested_by,
               newly_assigned=summary.newly_assigned)
    return summary

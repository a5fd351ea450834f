"""Storing experiments: a validated spec becomes rows; a launched design never changes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING
from datetime import UTC, datetime, time

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session, selectinload

from experiments.catalog import BUILTIN_METRICS
from experiments.config import to_stored_utc
from experiments.models import (
    Assignment,
    Experiment,
    ExperimentSource,
    ExperimentStatus,
    MetricDefinition,
    TargetingModel,
    Variant,
)

if TYPE_CHECKING:  # the spec's pydantic models load when a spec is read or stored: `recall report` of
    # imported results reads none, and building those models is a tenth of its start-up
    from experiments.spec import ExperimentSpec


class NotFound(LookupError):
    pass


class DesignLocked(ValueError):
    """A launched experiment's design is immutable: results must be read against what was sent."""


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def local_midnight_utc(day) -> datetime:  # noqa: ANN001 - a datetime.date
    """The UTC instant at which ``day`` starts in the configured time zone."""
    return to_stored_utc(datetime.combine(day, time(0)))


def create_experiment(session: Session, spec: ExperimentSpec) -> Experiment:
    """Store a spec as a draft experiment. The same spec stored twice is a no-op."""
    from experiments.spec import SpecError

    spec_json = spec.model_dump_json()
    if spec.target is not None and session.scalar(
            select(TargetingModel.id).where(TargetingModel.name == spec.target)) is None:
        raise SpecError(spec.name, [("target", f"no stored targeting model {spec.target!r}; store one with "
                                               f"`recall target EXPERIMENT --save {spec.target}`")])
    existing = session.scalar(select(Experiment).where(Experiment.name == spec.name))
    if existing is not None:
        if json.loads(existing.spec_json) == json.loads(spec_json):
            return existing
        if existing.status != ExperimentStatus.DRAFT or _has_assignments(session, existing):
            raise DesignLocked(f"experiment {spec.name!r} is {existing.status.value} and its design is locked")
        session.delete(existing)
        session.flush()
    experiment = new_experiment(spec)
    session.add(experiment)
    session.flush()
    return experiment


def new_experiment(spec: ExperimentSpec) -> Experiment:
    """The draft ``spec`` describes, not yet in any session (:func:`create_experiment` stores it)."""
    spec_json = spec.model_dump_json()
    experiment = Experiment(
        name=spec.name,
        hypothesis=spec.hypothesis,
        cohort=spec.cohort,
        attribution_days=spec.attribution_days,
        primary_metric=spec.primary_metric,
        salt=spec.name,
        layer=spec.layer,
        status=ExperimentStatus.DRAFT,
        source=ExperimentSource.DESIGNED,
        start_at=local_midnight_utc(spec.start) if spec.start else None,
        spec_json=spec_json,
        created_at=utcnow(),
    )
    experiment.variants = [
        Variant(
            position=i,
            name=v.name,
            share=v.share,
            is_control=v.control,
            channel=v.channel.value if v.channel else None,
            coupon=v.coupon,
            template=v.template,
            send_hour=v.send_hour,
        )
        for i, v in enumerate(spec.variants)
    ]
    experiment.metrics = [
        MetricDefinition(position=i, name=m.name, kind=m.kind) for i, m in enumerate(BUILTIN_METRICS.values())
    ]
    return experiment


def _has_assignments(session: Session, experiment: Experiment) -> bool:
    """Whether any customer is assigned (one key probe, not a count of a million assignments)."""
    return bool(session.scalar(select(exists().where(Assignment.experiment_id == experiment.id))))


def get_experiment(session: Session, name: str) -> Experiment:
    experiment = session.scalar(
        select(Experiment)
        .where(Experiment.name == name)
        .options(selectinload(Experiment.variants), selectinload(Experiment.metrics))
    )
    if experiment is None:
        known = session.scalars(select(Experiment.name).order_by(Experiment.name)).all()
        hint = f"; known: {', '.join(known)}" if known else "; none exist yet (recall experiment create SPEC)"
        raise NotFound(f"no experiment named {name!r}{hint}")
    return experiment


def list_experiments(session: Session) -> list[Experiment]:
    return list(
        session.scalars(
            select(Experiment).order_by(Experiment.created_at.desc(), Experiment.id.desc()).options(
                selectinload(Experiment.variants)
            )
        )
    )


def stored_spec(experiment: Experiment) -> ExperimentSpec | None:
    """The spec a designed experiment was created from (None for imported results)."""
    if experiment.source != ExperimentSource.DESIGNED:
        return None
    from experiments.spec import ExperimentSpec

    return ExperimentSpec.model_validate_json(experiment.spec_json)


@dataclass(frozen=True)
class Rollout:
    """A variant rolled out to everyone after its experiment: what the next campaign is compared with."""

    experiment: str
    variant: str | None
    rolled_out_at: str  # naive UTC, ISO 8601
    reason: str


def last_rollout(session: Session, cohort: str, layer: str, *, excluding: str | None = None) -> Rollout | None:
    """The most recent rolled-out experiment of ``cohort`` and ``layer`` (other than ``excluding``).

    A new campaign in the same audience runs on top of it: its no-contact holdout still measures the
    natural rate, and the rolled-out variant is the practice it must beat."""
    query = (select(Experiment)
             .where(Experiment.status == ExperimentStatus.ROLLED_OUT, Experiment.cohort == cohort,
                    Experiment.layer == layer)
             .order_by(Experiment.rolled_out_at.desc(), Experiment.id.desc())
             .limit(1))
    if excluding is not None:
        query = query.where(Experiment.name != excluding)
    found = session.scalar(query)
    if found is None:
        return None
    at = found.rolled_out_at.isoformat(timespec="seconds") if found.rolled_out_at else ""
    return Rollout(found.name, found.decided_variant, at, found.decision_reason or "")

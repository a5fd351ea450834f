"""Notes on an experiment's results: what an analyst saw or agreed, kept beside the numbers.

Adding one is an action (analysts and above, audited in the same transaction); reading them is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select

from experiments.access import Actor, Permission, require
from experiments.audit import Action, record
from experiments.db import session_scope
from experiments.models import ExperimentNote
from experiments.store import get_experiment, utcnow

MAX_NOTE = 2_000


@dataclass(frozen=True)
class Note:
    author: str
    created_at: datetime  # naive UTC
    text: str


def add_note(engine: Engine, name: str, text: str, *, actor: Actor) -> None:
    """Add a note to experiment ``name`` as ``actor``; an empty note is refused."""
    require(actor, Permission.NOTE)
    text = text.strip()
    if not text:
        raise ValueError(f"a note on {name!r} cannot be empty")
    if len(text) > MAX_NOTE:
        raise ValueError(f"a note on {name!r} has {len(text):,} characters; at most {MAX_NOTE:,}")
    with session_scope(engine) as session:
        experiment = get_experiment(session, name)
        session.add(ExperimentNote(experiment_id=experiment.id, author=actor.name, created_at=utcnow(), text=text))
        record(session, actor, Action.NOTE_ADD, name, characters=len(text))


def notes(engine: Engine, name: str) -> list[Note]:
    """The notes of experiment ``name``, newest first."""
    with session_scope(engine) as session:
        experiment = get_experiment(session, name)
        rows = session.scalars(select(ExperimentNote).where(ExperimentNote.experiment_id == experiment.id)
                               .order_by(ExperimentNote.created_at.desc(), ExperimentNote.id.desc()))
        return [Note(r.author, r.created_at, r.text) for r in rows]

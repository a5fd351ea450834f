"""What the app's buttons do. Each action checks the actor's role where it runs (a page that hides a
button is not the check) and records itself in the audit log; pages call these only from a click.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import zipfile
from pathlib import Path

from sqlalchemy import Engine, select

from experiments.access import Actor, Forbidden, Permission, require
from experiments.approvals import approval_required
from experiments.assignment import AssignmentSummary
from experiments.audit import Action, record, record_now
from experiments.db import session_scope
from experiments.lifecycle import launch
from experiments.models import Experiment
from experiments.sendlist import write_send_lists
from experiments.spec import ExperimentSpec
from experiments.store import create_experiment


def save_draft(engine: Engine, spec: ExperimentSpec, *, actor: Actor) -> None:
    """Store the Design form's spec as a draft (a new one, or an edit of a draft not yet launched)."""
    require(actor, Permission.DESIGN)
    with session_scope(engine) as session:
        existed = session.scalar(select(Experiment.id).where(Experiment.name == spec.name)) is not None
        create_experiment(session, spec)
        record(session, actor, Action.EXPERIMENT_EDIT if existed else Action.EXPERIMENT_CREATE, spec.name,
               variants=[v.name for v in spec.variants])


def launch_now(engine: Engine, name: str, *, actor: Actor) -> AssignmentSummary:
    """Launch at once: refused when launches need a second person's approval."""
    require(actor, Permission.LAUNCH)
    if approval_required():
        raise Forbidden("launches need a second person's approval (RECALL_LAUNCH_APPROVAL=1)")
    return launch(engine, name, actor=actor)


def build_send_lists(engine: Engine, name: str, *, actor: Actor) -> tuple[bytes, int]:
    """Write today's send lists of the experiment (recording the sends and the export) and return them
    as one ZIP, with the number of touches in it."""
    require(actor, Permission.SEND)
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as folder, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        files = write_send_lists(engine, name, folder, actor=actor)
        for f in files:
            if f.path is not None:  # None: no touch of this variant due today
                archive.write(f.path, Path(f.path).name)
    return buffer.getvalue(), sum(f.rows for f in files)


def record_download(engine: Engine, target: str, kind: str, data: bytes | str, *, actor: Actor) -> None:
    """A download from the app (reports, send lists): analysts and above, with a hash of what left."""
    require(actor, Permission.DOWNLOAD)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    record_now(engine, actor, Action.DOWNLOAD, target, kind=kind, bytes=len(raw),
               sha256=hashlib.sha256(raw).hexdigest())

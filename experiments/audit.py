"""The audit log: who did what, when, from the app or the CLI.

Append-only from the application's side: this module only inserts and reads, and migration 0005
adds database triggers that refuse UPDATE and DELETE on ``audit_log``. An entry is written in the
same transaction as the action it records, so an action that rolls back leaves no entry, and an
entry never describes an action that did not happen; refusals (failed sign-ins, forbidden actions)
are recorded in a transaction of their own.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from experiments.access import Actor
from experiments.db import session_scope
from experiments.models import AuditEntry
from experiments.store import utcnow


class Action(str, enum.Enum):
    SIGN_IN = "sign_in"
    SIGN_IN_FAILED = "sign_in_failed"
    SIGN_OUT = "sign_out"
    FORBIDDEN = "forbidden"
    USER_ADD = "user_add"
    USER_DISABLE = "user_disable"
    USER_ENABLE = "user_enable"
    USER_ROLE = "user_role"
    USER_PASSWORD = "user_password"
    EXPERIMENT_CREATE = "experiment_create"
    EXPERIMENT_EDIT = "experiment_edit"
    LAUNCH_REQUEST = "launch_request"
    LAUNCH_APPROVE = "launch_approve"
    LAUNCH = "launch"
    STOP = "stop"
    DECIDE = "decide"
    ROLL_OUT = "roll_out"
    NOTE_ADD = "note_add"
    IMPORT_EVENTS = "import_events"
    IMPORT_RESULTS = "import_results"
    SEND_LIST = "send_list"
    DOWNLOAD = "download"
    SETTINGS = "settings"
    DB_UPGRADE = "db_upgrade"
    DB_DOWNGRADE = "db_downgrade"
    DB_BACKUP = "db_backup"
    DB_RESTORE = "db_restore"
    MODEL_SAVE = "model_save"


@dataclass(frozen=True)
class Entry:
    at: datetime  # naive UTC
    actor: str
    role: str
    via: str
    action: str
    target: str
    details: dict


def record(session: Session, actor: Actor, action: Action, target: str = "", **details: object) -> None:
    """Add an entry to the session's transaction (committed with the action it records)."""
    session.add(AuditEntry(at=utcnow(), actor=actor.name, role=actor.role.value, via=actor.via,
                           action=action.value, target=target[:256],
                           details=json.dumps(details, ensure_ascii=False, default=str, sort_keys=True)))


def record_now(engine: Engine, actor: Actor, action: Action, target: str = "", **details: object) -> None:
    """An entry in a transaction of its own: for refusals, which have no action to ride with."""
    with session_scope(engine) as session:
        record(session, actor, action, target, **details)


def entries(session: Session, *, limit: int = 200, actions: Sequence[Action] = (), actor: str | None = None,
            target: str | None = None) -> list[Entry]:
    """The newest entries first, optionally of some actions, one actor or one target."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if actions:
        query = query.where(AuditEntry.action.in_([a.value for a in actions]))
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if target:
        query = query.where(AuditEntry.target == target)
    return [Entry(e.at, e.actor, e.role, e.via, e.action, e.target, json.loads(e.details or "{}"))
            for e in session.scalars(query)]

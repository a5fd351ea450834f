"""Backups, restores and the one command that drops tables, each guarded and recorded.

A backup is one file: SQLite's own online backup (``sqlite3.Connection.backup``: a consistent copy
while others read and write) or PostgreSQL's ``pg_dump -Fc`` archive. A restore replaces every table
with the file's, in one transaction on PostgreSQL (``pg_restore --clean --if-exists
--single-transaction``); the database's current state is backed up first. A downgrade writes a
backup before it drops anything. Each is an admin's action (``Permission.DESTROY``) and recorded in
the audit log. A restore also brings back the audit log as it was in the file, so the restore is
recorded after it, in the restored log.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from experiments.access import Actor, Permission, require
from experiments.audit import Action, record_now
from experiments.config import PROJECT_ROOT
from experiments.db import (
    current_revision,
    downgrade,
    ensure_schema,
    table_names,
    upgrade,
)

DEFAULT_BACKUP_FOLDER = PROJECT_ROOT / "backups"
SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"


class BackupError(RuntimeError):
    """A backup or restore that could not be made, with what to do."""


@dataclass(frozen=True)
class Backup:
    path: Path
    size: int  # bytes


def default_backup_path(engine: Engine, reason: str = "backup") -> Path:
    """``<database>-<reason>-<UTC time>.<sqlite|dump>`` in ``$RECALL_BACKUP_DIR``, else ``backups/`` in the
    project folder."""
    name = Path(engine.url.database or "memory").stem if _is_sqlite(engine) else engine.url.database or "postgres"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = Path(os.environ.get("RECALL_BACKUP_DIR") or DEFAULT_BACKUP_FOLDER)
    return folder / f"{name}-{reason}-{stamp}.{'sqlite' if _is_sqlite(engine) else 'dump'}"


def back_up(engine: Engine, actor: Actor, out: Path | None = None, *, reason: str = "backup") -> Backup:
    """Write a backup of the whole database to ``out`` (default: :func:`default_backup_path`)."""
    require(actor, Permission.DESTROY)
    path = Path(out) if out else default_backup_path(engine, reason)
    path.parent.mkdir(parents=True, exist_ok=True)
    if _is_sqlite(engine):
        _sqlite_copy(engine, path)
    else:
        _run_pg("pg_dump", engine.url, ["--format=custom", "--no-owner", f"--file={path}"])
    made = Backup(path, path.stat().st_size)
    if "audit_log" in table_names(engine):
        record_now(engine, actor, Action.DB_BACKUP, str(path), bytes=made.size, reason=reason)
    return made


def restore(engine: Engine, actor: Actor, path: Path) -> Backup:
    """Replace the database's contents with backup ``path``; returns the backup of what it replaced."""
    require(actor, Permission.DESTROY)
    path = Path(path)
    _check_backup_file(engine, path)
    before = back_up(engine, actor, reason="before-restore")
    engine.dispose()  # no pooled connection holds a table the restore replaces
    if _is_sqlite(engine):
        with closing(sqlite3.connect(path)) as source, engine.connect() as connection:
            source.backup(connection.connection.driver_connection)
    else:
        _run_pg("pg_restore", engine.url, ["--clean", "--if-exists", "--no-owner", "--single-transaction",
                                           "--exit-on-error"], last=str(path))
    engine.dispose()
    ensure_schema(engine)  # a backup of an older revision is migrated, as on any first use
    record_now(engine, actor, Action.DB_RESTORE, str(path), replaced_backup=str(before.path))
    return before


def downgrade_with_backup(engine: Engine, actor: Actor, revision: str = "base") -> Backup:
    """Back the database up, then revert migrations down to ``revision``."""
    require(actor, Permission.DESTROY)
    made = back_up(engine, actor, reason=f"before-downgrade-{revision}")
    if "audit_log" in table_names(engine):  # recorded first: a downgrade to base drops the log itself
        record_now(engine, actor, Action.DB_DOWNGRADE, revision, backup=str(made.path),
                   from_revision=current_revision(engine))
    downgrade(engine, revision)
    return made


def upgrade_recorded(engine: Engine, actor: Actor) -> tuple[str | None, str | None]:
    """Apply every migration; returns the revision before and after (recorded when they differ)."""
    before = current_revision(engine)
    upgrade(engine)
    after = current_revision(engine)
    if before != after:
        record_now(engine, actor, Action.DB_UPGRADE, after or "", from_revision=before)
    return before, after


def what_downgrade_drops(engine: Engine, revision: str) -> str:
    """A sentence naming what a downgrade to ``revision`` would remove (for its confirmation)."""
    if revision == "base":
        tables = sorted(table_names(engine) - {"alembic_version"})
        return f"every table ({len(tables)}: {', '.join(tables)}) and all their data"
    return f"what the migrations after {revision} added (now at {current_revision(engine)}), with its data"


def _is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_copy(engine: Engine, path: Path) -> None:
    if path.exists():
        path.unlink()  # a backup into an existing database file would merge into it
    with engine.connect() as connection, closing(sqlite3.connect(path)) as target:
        connection.connection.driver_connection.backup(target)


def _check_backup_file(engine: Engine, path: Path) -> None:
    if not path.is_file():
        raise BackupError(f"{path}: no such backup file")
    with path.open("rb") as fh:
        head = fh.read(len(SQLITE_MAGIC))
    expected, kind = (SQLITE_MAGIC, "a SQLite backup") if _is_sqlite(engine) else (PG_DUMP_MAGIC, "a pg_dump archive")
    if not head.startswith(expected):
        raise BackupError(f"{path}: not {kind} (the database is {engine.dialect.name}); "
                          f"use a file written by recall db backup for this kind of database")


def _run_pg(tool: str, url: URL, options: list[str], last: str | None = None) -> None:
    """Run pg_dump or pg_restore on ``url``'s database; the password goes by environment, never argv."""
    program = shutil.which(tool)
    if program is None:
        raise BackupError(f"{tool} not found on PATH: install the PostgreSQL client programs "
                          f"(e.g. apt-get install postgresql-client) in the server's major version")
    target = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    env = {**os.environ, **({"PGPASSWORD": str(url.password)} if url.password else {})}
    arguments = [program, *options, f"--dbname={target}", *([last] if last else [])]
    done = subprocess.run(arguments, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise BackupError(f"{tool} failed: {lines[0] if lines else f'exit status {done.returncode}'}")

"""``recall db``: the schema (Alembic migrations), backups and restores.

Commands that drop or replace data ask for ``--yes`` and write a backup first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import DbOption, fail, mask_url, out
from experiments.access import cli_actor
from experiments.config import database_url

app = typer.Typer(help="Database schema (Alembic migrations), backups and restores.", no_args_is_help=True)

YesOption = Annotated[bool, typer.Option("--yes", help="Confirm: this replaces or drops data.")]


@app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Apply all migrations (the app and every command also do this on first use)."""
    from experiments.backup import upgrade_recorded
    from experiments.db import make_engine

    _, after = upgrade_recorded(make_engine(db), cli_actor())
    out.print(f"database at revision {after}: {mask_url(database_url(db))}")


@app.command("downgrade")
def db_downgrade(revision: str = typer.Argument("base"), yes: YesOption = False, db: DbOption = None) -> None:
    """Revert migrations down to REVISION (default: base, i.e. drop every table); a backup is written first."""
    from experiments.backup import BackupError, downgrade_with_backup, what_downgrade_drops
    from experiments.db import make_engine

    engine = make_engine(db)
    if not yes:
        fail(f"downgrade to {revision} would drop {what_downgrade_drops(engine, revision)} in "
             f"{mask_url(database_url(db))}: add --yes to confirm (a backup is written first)")
    try:
        made = downgrade_with_backup(engine, cli_actor(), revision)
    except BackupError as exc:
        fail(f"{exc}; nothing was dropped")
    out.print(f"backup written to {made.path} ({made.size:,} bytes)", soft_wrap=True)
    out.print(f"database downgraded to {revision}; recall db restore {made.path} --yes brings it back",
              soft_wrap=True)


@app.command("backup")
def db_backup(
    out_file: Annotated[Path | None, typer.Option("--out", help="Backup file (default: backups/<db>-backup-<time>.*)")]
    = None,
    db: DbOption = None,
) -> None:
    """Write a backup of the whole database (SQLite: its backup API; PostgreSQL: pg_dump -Fc)."""
    from experiments.backup import BackupError, back_up
    from experiments.db import make_engine

    try:
        made = back_up(make_engine(db), cli_actor(), out_file)
    except BackupError as exc:
        fail(str(exc))
    out.print(f"backup written to {made.path} ({made.size:,} bytes)", soft_wrap=True)


@app.command("restore")
def db_restore(
    file: Annotated[Path, typer.Argument(help="A file written by recall db backup.")],
    yes: YesOption = False,
    db: DbOption = None,
) -> None:
    """Replace every table of the database with FILE's (the current state is backed up first)."""
    from experiments.backup import BackupError, restore
    from experiments.db import make_engine

    if not yes:
        fail(f"restore would replace every table of {mask_url(database_url(db))} with {file}'s: add --yes to "
             f"confirm (the current database is backed up first)")
    try:
        replaced = restore(make_engine(db), cli_actor(), file)
    except BackupError as exc:
        fail(str(exc))
    out.print(f"the database before the restore is in {replaced.path}", soft_wrap=True)
    out.print(f"restored {file} into {mask_url(database_url(db))}", soft_wrap=True)

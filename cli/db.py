"""``recall db``: the schema (Alembic migrations)."""

from __future__ import annotations

import typer

from cli.common import DbOption, mask_url, out
from experiments.config import database_url

app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Apply all migrations (the app and every command also do this on first use)."""
    from experiments.db import current_revision, make_engine, upgrade

    engine = make_engine(db)
    upgrade(engine)
    out.print(f"database at revision {current_revision(engine)}: {mask_url(database_url(db))}")


@app.command("downgrade")
def db_downgrade(revision: str = typer.Argument("base"), db: DbOption = None) -> None:
    """Revert migrations down to REVISION (default: base, i.e. drop every table)."""
    from experiments.db import downgrade, make_engine

    downgrade(make_engine(db), revision)
    out.print(f"database downgraded to {revision}")


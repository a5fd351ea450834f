"""``recall experiment``: create and inspect experiments."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Column, Table

from cli.common import DbOption, engine_for, fail, out

app = typer.Typer(help="Create and inspect experiments.", no_args_is_help=True)


@app.command("create")
def experiment_create(spec: Path, db: DbOption = None) -> None:
    """Validate SPEC (a TOML file) and store it as a draft experiment."""
    from experiments.db import session_scope
    from experiments.spec import SpecError, load_spec
    from experiments.store import DesignLocked, create_experiment

    try:
        parsed = load_spec(spec)
        with session_scope(engine_for(db)) as session:
            experiment = create_experiment(session, parsed)
            status = experiment.status.value
    except (SpecError, DesignLocked) as exc:
        fail(str(exc))
    out.print(f"experiment [bold]{parsed.name}[/] stored ({status}), {len(parsed.variants)} variants, "
              f"control: {parsed.control.name}")


@app.command("list")
def experiment_list(db: DbOption = None) -> None:
    """List experiments, newest first."""
    from experiments.db import session_scope
    from experiments.store import list_experiments

    table = Table("status", "source", "cohort", "variants", "created (UTC)")
    table.columns.insert(0, Column("name", no_wrap=True))
    with session_scope(engine_for(db)) as session:
        for e in list_experiments(session):
            table.add_row(e.name, e.status.value, e.source.value, e.cohort, str(len(e.variants)),
                          e.created_at.isoformat(timespec="minutes"))
    out.print(table)


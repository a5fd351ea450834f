"""``recall assign`` and ``recall sendlist``: launching a designed experiment and messaging its customers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import DbOption, engine_for, fail, out, parse_local_time


def assign(
    name: str,
    as_of: Annotated[str | None, typer.Option(help="Reference time for the cohort and attribution window "
                                                   "(ISO; local time unless an offset is given). Default: now.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar (on stderr).")] = True,
    db: DbOption = None,
) -> None:
    """Assign the target customers of NAME to variants (deterministic; nobody already assigned moves)."""
    from experiments.access import cli_actor
    from experiments.lifecycle import launch
    from experiments.store import NotFound

    try:
        summary = launch(engine_for(db), name, actor=cli_actor(), as_of=parse_local_time(as_of), progress=progress)
    except (NotFound, ValueError) as exc:
        fail(str(exc))
    out.print(f"{summary.newly_assigned:,} customers newly assigned in [bold]{name}[/]")
    for variant, count in summary.per_variant.items():
        out.print(f"  {variant}: {count:,}")



def sendlist(
    name: str,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the CSV files.")],
    progress: Annotated[bool, typer.Option(help="Show a progress bar (on stderr).")] = True,
    db: DbOption = None,
) -> None:
    """Write one CSV per contacted variant (never the control, never unsubscribed customers)."""
    from experiments.sendlist import write_send_lists
    from experiments.store import NotFound

    try:
        files = write_send_lists(engine_for(db), name, out_dir, progress=progress)
    except NotFound as exc:
        fail(str(exc))
    for f in files:
        notes = [f"{f.suppressed_unsubscribed:,} unsubscribed left out"] if f.suppressed_unsubscribed else []
        notes += [f"{f.held_by_caps:,} touches held back by frequency caps"] if f.held_by_caps else []
        out.print(f"{f.path}: {f.rows:,} touches" + (f" ({'; '.join(notes)})" if notes else ""))



def register(app: typer.Typer) -> None:
    app.command()(assign)
    app.command()(sendlist)

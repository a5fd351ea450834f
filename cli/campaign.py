"""``recall assign`` and ``recall sendlist``: launching a designed experiment and messaging its customers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import DbOption, engine_for, err, fail, out, parse_local_time


def assign(
    name: str,
    as_of: Annotated[str | None, typer.Option(help="Reference time for the cohort and attribution window "
                                                   "(ISO; local time unless an offset is given). Default: now.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only explain the audience; assign nobody.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar (on stderr).")] = True,
    db: DbOption = None,
) -> None:
    """Launch NAME: explain its audience, then assign it (deterministic; nobody already assigned moves).

    A first launch that would reach nobody is refused and the experiment stays a draft."""
    from cli.experiment import print_audience
    from experiments.access import Forbidden, cli_actor
    from experiments.lifecycle import launch, launch_audience
    from experiments.store import NotFound

    engine, when = engine_for(db), parse_local_time(as_of)
    try:
        if dry_run:
            print_audience(launch_audience(engine, name, when))
            return
        summary = launch(engine, name, actor=cli_actor(), as_of=when, progress=progress, explain=print_audience)
    except (NotFound, ValueError, Forbidden) as exc:
        fail(str(exc))
    out.print(f"{summary.newly_assigned:,} customers newly assigned in [bold]{name}[/]")
    for variant, count in summary.per_variant.items():
        out.print(f"  {variant}: {count:,}")


def sendlist(
    name: str,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the CSV files (one folder per day: "
                                                         "an existing list is never overwritten).")],
    due: Annotated[str | None, typer.Option(help="Local day whose touches to list (YYYY-MM-DD). "
                                                 "Default: today.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar (on stderr).")] = True,
    db: DbOption = None,
) -> None:
    """Write one CSV per contacted variant of the touches due on --due (never the control, never a
    customer who unsubscribed or complained, never inside quiet hours, never a touch listed before)."""
    from datetime import date

    from experiments.access import Forbidden, cli_actor
    from experiments.sendlist import local_day, write_send_lists
    from experiments.store import NotFound, utcnow

    today = local_day(utcnow())
    try:
        day = date.fromisoformat(due) if due else today
    except ValueError:
        fail(f"--due: not a date such as {today.isoformat()}: {due!r}")
    try:
        files = write_send_lists(engine_for(db), name, out_dir, actor=cli_actor(), due=day, progress=progress)
    except (NotFound, ValueError, Forbidden) as exc:
        fail(str(exc))
    if day != today:
        why = ("an opt-out imported before then cannot stop them; build each day's list on its day" if day > today
               else "their send times have passed")
        err.print(f"[yellow]note:[/] listed the touches due on {day}, not today ({today}): {why}",
                  highlight=False, soft_wrap=True)
    for f in files:
        notes = [f"{f.suppressed_unsubscribed:,} opted out"] if f.suppressed_unsubscribed else []
        notes += [f"{f.held_by_caps:,} held back by frequency caps"] if f.held_by_caps else []
        notes += [f"{f.held_quiet_hours:,} held back: quiet hours"] if f.held_quiet_hours else []
        where = str(f.path) if f.path else f"{f.variant}: no file"
        out.print(f"{where}: {f.rows:,} touches due {day}" + (f" ({'; '.join(notes)})" if notes else ""),
                  highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(assign)
    app.command()(sendlist)

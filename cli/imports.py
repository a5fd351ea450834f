"""``recall import``: events, or per-customer results of a test run elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import DbOption, engine_for, err, fail, out, split_list

app = typer.Typer(help="Import outcomes: events, or per-customer results of a test run elsewhere.", no_args_is_help=True)


def _import_outcome(result) -> None:
    if result.already_imported:
        out.print(f"{result.file}: already imported, nothing changed")
        return
    skipped = f", {result.skipped_duplicates:,} already present" if result.skipped_duplicates else ""
    target = f" into experiment {result.experiment}" if result.experiment else ""
    out.print(f"{result.file}: {result.rows:,} rows, {result.inserted:,} inserted{skipped}{target}")
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    if result.late_unsubscribes:
        err.print(f"[yellow]warning:[/] {result.late_unsubscribes:,} send(s) were scheduled after the customer had "
                  "already unsubscribed: these unsubscribes arrived late", highlight=False, soft_wrap=True)


@app.command("events")
def import_events(
    file: Path,
    progress: Annotated[bool, typer.Option(help="Show a progress bar (on stderr).")] = True,
    db: DbOption = None,
) -> None:
    """Import events (customer_id, event_type, occurred_at, value) from FILE.csv, atomically."""
    from experiments.access import cli_actor
    from experiments.importer import ImportFailed
    from experiments.importer import import_events as run_import

    try:
        _import_outcome(run_import(engine_for(db), file, actor=cli_actor(), progress=progress))
    except ImportFailed as exc:
        fail(str(exc))


@app.command("results")
def import_results(
    file: Path,
    experiment: Annotated[str, typer.Option(help="Name of the experiment to create.")],
    variant_column: Annotated[str, typer.Option(help="Column holding each customer's variant label.")],
    control: Annotated[str, typer.Option(help="Label of the no-contact control.")],
    metrics: Annotated[str, typer.Option(help="Comma-separated outcome columns, e.g. visit,conversion,spend.")],
    id_column: Annotated[str | None, typer.Option(help="Customer id column (default: the row number).")] = None,
    covariates: Annotated[str | None, typer.Option(help="Comma-separated pre-period covariate columns.")] = None,
    segments: Annotated[str | None, typer.Option(help="Comma-separated segment columns.")] = None,
    shares: Annotated[str | None, typer.Option(help="Designed shares, e.g. 'A=0.45,B=0.45,Control=0.1' "
                                                    "(default: equal).")] = None,
    channel: Annotated[str | None, typer.Option(help="Channel the contacted variants used, for costs.")] = None,
    factors: Annotated[str | None, typer.Option(help="Comma-separated factor columns of a factorial test, each "
                                                     "holding the row's level (empty for the control), e.g. "
                                                     "coupon,wording,send_hour.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar (on stderr).")] = True,
    db: DbOption = None,
) -> None:
    """Import per-customer results of a test run elsewhere as a new experiment."""
    from experiments.access import cli_actor
    from experiments.importer import ImportFailed
    from experiments.importer import import_results as run_import

    parsed_shares = None
    if shares:
        try:
            parsed_shares = {k.strip(): float(v) for k, v in (p.split("=", 1) for p in split_list(shares))}
        except ValueError:
            fail(f"--shares: expected LABEL=SHARE pairs separated by commas, got {shares!r}")
    try:
        result = run_import(
            engine_for(db), file, actor=cli_actor(), experiment=experiment, variant_column=variant_column,
            control=control,
            metrics=split_list(metrics), id_column=id_column, covariates=split_list(covariates),
            segments=split_list(segments), shares=parsed_shares, channel=channel, factors=split_list(factors),
            progress=progress,
        )
    except ImportFailed as exc:
        fail(str(exc))
    _import_outcome(result)


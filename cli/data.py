"""``recall demo`` and ``recall simulate``: simulated campaigns for trying the app and measuring scale."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Column, Table

from cli.common import DbOption, engine_for, fail, mask_url, out


def demo(
    customers: Annotated[int, typer.Option(min=1000, help="Number of simulated customers.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same campaign).")] = 20261123,
    db: DbOption = None,
) -> None:
    """Build a realistic simulated recall campaign (idempotent)."""
    from analysis.runs import stored_reports
    from experiments.demo import build_demo

    engine = engine_for(db)
    with out.status("building the demo campaign…"):
        summary = build_demo(engine, customers=customers, seed=seed)
    with out.status("storing the demo's analysis runs (the app reads them instead of computing)…"):
        stored_reports(engine, summary.experiments)
    out.print(f"demo experiment [bold]{summary.experiment}[/]: {summary.customers:,} customers, "
              f"{summary.sends:,} sends, {summary.events:,} events")


def simulate(
    customers: Annotated[int, typer.Option(min=1, help="Number of simulated customers (about 3 events each).")],
    db: Annotated[str, typer.Option("--db", help="Where to write: duckdb:///file.duckdb (a warehouse in the "
                                                 "layout a spec's source section reads; the experiment is "
                                                 "registered in the Recall Lab database, $RECALL_DATABASE_URL) "
                                                 "or an empty Recall Lab database (PostgreSQL or SQLite).")],
    name: Annotated[str, typer.Option(help="Experiment name.")] = "sim-campaign",
    seed: Annotated[int, typer.Option(help="Random seed (same seed and chunk, same data).")] = 7,
    chunk: Annotated[int, typer.Option(min=1, help="Customers generated and written at a time.")] = 1_000_000,
) -> None:
    """Generate a large realistic campaign (customers, assignments, sends, events) to measure scale."""
    from experiments.simulate import simulate as run_simulate
    from experiments.store import DesignLocked

    try:
        summary = run_simulate(db, customers, name=name, seed=seed, chunk=chunk, progress=True)
    except (ValueError, RuntimeError, DesignLocked) as exc:
        fail(str(exc))
    out.print(f"simulated [bold]{summary.name}[/] into {mask_url(db)}: {summary.customers:,} customers, "
              f"{summary.assignments:,} assignments, {summary.sends:,} sends, {summary.events:,} events "
              f"in {summary.total_seconds:.1f} s")
    table = Table("phase", Column("seconds", justify="right"))
    for phase, seconds in summary.seconds.items():
        table.add_row(phase, f"{seconds:.2f}")
    out.print(table)



def register(app: typer.Typer) -> None:
    app.command()(demo)
    app.command()(simulate)

"""``recall plan``: candidate tests ranked by ICE; a plan becomes a draft experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Column, Table

from cli.common import DbOption, engine_for, fail, out

app = typer.Typer(help="Candidate tests ranked by ICE; a plan becomes a draft experiment.", no_args_is_help=True)


@app.command("list")
def plan_list(plans: Path, db: DbOption = None) -> None:
    """Rank the plans in PLANS (TOML) by ICE score, with the audience each would reach today."""
    from experiments.db import session_scope
    from experiments.planning import audience, load_plans, tier_bounds
    from experiments.spec import SpecError
    from experiments.store import utcnow

    try:
        book = load_plans(plans)
    except SpecError as exc:
        fail(str(exc))
    now = utcnow()
    table = Table("rank", Column("plan", no_wrap=True), "cohort", "tier", "channel", "coupon", "I", "C", "E", "ICE",
                  "audience")
    with session_scope(engine_for(db)) as session:
        bounds = tier_bounds(session.connection(), now)
        for rank, p in enumerate(book.ranked(), 1):
            table.add_row(str(rank), p.name, p.cohort, p.value_tier, p.channel.value, f"¥{p.coupon}", str(p.impact),
                          str(p.confidence), str(p.ease), f"{p.ice:.1f}",
                          f"{audience(session.connection(), p, now, bounds):,}")
    out.print(table)


@app.command("draft")
def plan_draft(
    plans: Path,
    name: Annotated[str, typer.Argument(help="The plan to turn into a draft experiment.")],
    holdout: Annotated[float, typer.Option(min=0.01, max=0.5, help="No-contact holdout share.")] = 0.1,
    db: DbOption = None,
) -> None:
    """Store plan NAME from PLANS as a draft experiment (holdout + the plan's variant)."""
    from experiments.db import session_scope
    from experiments.planning import draft_spec, load_plans, tier_bounds, tier_filter
    from experiments.spec import SpecError
    from experiments.store import DesignLocked, create_experiment, utcnow

    try:
        plan = load_plans(plans).get(name)
        with session_scope(engine_for(db)) as session:
            spec = draft_spec(plan, holdout=holdout,
                              filter=tier_filter(plan, tier_bounds(session.connection(), utcnow())))
            create_experiment(session, spec)
    except (SpecError, DesignLocked, KeyError) as exc:
        fail(str(exc).strip("'\""))
    out.print(f"draft experiment [bold]{spec.name}[/] stored: holdout {holdout:.0%}, cohort {spec.cohort}"
              + (f", filter {spec.filter}" if spec.filter else ""))


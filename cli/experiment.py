"""``recall experiment``: create and inspect experiments, and move them through their lifecycle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Column, Table

from cli.common import DbOption, engine_for, fail, out

app = typer.Typer(help="Create, inspect, stop, decide, roll out and clone experiments.", no_args_is_help=True)


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


# --------------------------------------------------------------------------- the lifecycle


def _transition(action, db: str | None) -> None:  # noqa: ANN001 - a call on (engine, actor)
    """Run a lifecycle action as the CLI's actor; a refusal is one line."""
    from experiments.access import Forbidden, cli_actor
    from experiments.store import NotFound

    try:
        action(engine_for(db), cli_actor())
    except (NotFound, ValueError, Forbidden) as exc:
        fail(str(exc))


@app.command("show")
def experiment_show(name: str, db: DbOption = None) -> None:
    """Show NAME: design, status and decision, customers per variant, the last roll-out it runs on,
    what a launch would reach (drafts) and its audit trail."""
    from sqlalchemy import func, select

    from experiments.audit import entries
    from experiments.db import session_scope
    from experiments.lifecycle import launch_audience
    from experiments.models import Assignment, ExperimentSource, ExperimentStatus
    from experiments.result_tables import customers_per_variant
    from experiments.store import NotFound, get_experiment, last_rollout

    engine = engine_for(db)
    try:
        with session_scope(engine) as session:
            e = get_experiment(session, name)
            assigned = (customers_per_variant(session.connection(), e) if e.source == ExperimentSource.IMPORTED
                        else dict(session.execute(select(Assignment.variant_id, func.count())
                                                  .where(Assignment.experiment_id == e.id)
                                                  .group_by(Assignment.variant_id)).all()))
            previous = last_rollout(session, e.cohort, e.layer, excluding=e.name)
            trail = entries(session, target=e.name, limit=20)
    except NotFound as exc:
        fail(str(exc))
    out.print(f"[bold]{e.name}[/] ({e.status.value}, {e.source.value})")
    if e.hypothesis:
        out.print(f"  hypothesis: {e.hypothesis}")
    out.print(f"  cohort {e.cohort}, layer {e.layer}, primary metric {e.primary_metric}, "
              f"attribution {e.attribution_days} days")
    for label, at in (("created", e.created_at), ("launched", e.launched_at), ("stopped", e.stopped_at),
                      ("decided", e.decided_at), ("rolled out", e.rolled_out_at)):
        if at is not None:
            out.print(f"  {label}: {at.isoformat(timespec='minutes')} UTC")
    if e.decision is not None:
        what = f"ship [bold]{e.decided_variant}[/]" if e.decided_variant else "no-go"
        out.print(f"  decision: {what} by {e.decided_by}: {e.decision_reason}")
    table = Table("variant", Column("share", justify="right"), "channel", Column("coupon", justify="right"),
                  Column("customers", justify="right"))
    for v in e.variants:
        table.add_row(v.name + (" (no-contact control)" if v.is_control else ""), f"{v.share:.2%}",
                      v.channel or "–", f"¥{v.coupon:,.2f}" if v.coupon else "–", f"{assigned.get(v.id, 0):,}")
    out.print(table)
    if previous is not None:
        out.print(f"  runs on top of [bold]{previous.variant}[/], rolled out from {previous.experiment} "
                  f"on {previous.rolled_out_at} UTC: compare the variants with it; the holdout still measures "
                  "the natural rate")
    if e.status == ExperimentStatus.DRAFT and e.spec_json and e.source.value == "designed":
        try:
            print_audience(launch_audience(engine, name))
        except ValueError as exc:
            out.print(f"  audience: cannot be counted ({exc})")
    if trail:
        out.print("  audit trail (newest first):")
        for entry in trail:
            out.print(f"    {entry.at.isoformat(timespec='seconds')} {entry.actor} ({entry.via}) {entry.action}",
                      highlight=False)


def print_audience(audience) -> None:  # noqa: ANN001 - experiments.assignment.Audience
    """What a launch would reach, and who it leaves out and why (printed before anything is locked)."""
    out.print(f"audience of [bold]{audience.experiment}[/] now:")
    out.print(f"  eligible (cohort and filter, not yet assigned): {audience.eligible:,}")
    for other, n in audience.held_by_layer.items():
        out.print(f"  − held by running experiment {other} (same layer): {n:,}")
    if audience.in_global_holdout:
        out.print(f"  − in the global holdout (never contacted): {audience.in_global_holdout:,}")
    out.print(f"  = to assign: {audience.to_assign:,}")
    if audience.unsubscribed:
        out.print(f"    of whom unsubscribed or complained (assigned, never messaged): {audience.unsubscribed:,}")
    if audience.capped:
        out.print(f"    of whom at their frequency cap today (first touch held back): {audience.capped:,}")


@app.command("stop")
def experiment_stop(
    name: str,
    reason: Annotated[str, typer.Option(help="Why it stops now (kept in the audit log).")] = "",
    db: DbOption = None,
) -> None:
    """Stop running experiment NAME: no more assignments or send lists; its customers are free again."""
    from experiments.lifecycle import stop

    _transition(lambda engine, actor: stop(engine, name, actor=actor, reason=reason), db)
    out.print(f"experiment [bold]{name}[/] stopped; decide it with: recall experiment decide {name} "
              "--ship VARIANT --reason \"…\" (or --no-go)")


@app.command("decide")
def experiment_decide(
    name: str,
    reason: Annotated[str, typer.Option(help="The written reason (required).")],
    ship: Annotated[str | None, typer.Option(help="The contacted variant to ship.")] = None,
    no_go: Annotated[bool, typer.Option("--no-go", help="Ship nothing: keep the status quo.")] = False,
    db: DbOption = None,
) -> None:
    """Decide stopped experiment NAME: --ship VARIANT or --no-go, with --reason."""
    from experiments.lifecycle import decide

    if (ship is None) == (not no_go):
        fail("give exactly one of --ship VARIANT and --no-go")
    _transition(lambda engine, actor: decide(engine, name, actor=actor, variant=ship, reason=reason), db)
    out.print(f"experiment [bold]{name}[/] decided: " + (f"ship {ship}" if ship else "no-go")
              + (f"; roll it out with: recall experiment rollout {name}" if ship else ""))


@app.command("rollout")
def experiment_rollout(name: str, db: DbOption = None) -> None:
    """Record that the shipped variant of decided experiment NAME now goes to everyone (remembered for
    the next campaign of the same cohort and layer)."""
    from experiments.lifecycle import roll_out

    _transition(lambda engine, actor: roll_out(engine, name, actor=actor), db)
    out.print(f"experiment [bold]{name}[/] rolled out")


@app.command("clone")
def experiment_clone(name: str, new_name: str, db: DbOption = None) -> None:
    """A new draft NEW_NAME with the design of NAME (and a fresh assignment salt)."""
    from experiments.lifecycle import clone

    _transition(lambda engine, actor: clone(engine, name, new_name, actor=actor), db)
    out.print(f"experiment [bold]{new_name}[/] stored (draft), a copy of {name}")

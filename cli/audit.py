"""``recall audit``: who did what and when, from the app and the CLI, newest first."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC
from enum import Enum
from typing import Annotated

import typer
from rich.table import Table

from cli.common import DbOption, engine_for, fail, out


class Format(str, Enum):
    table = "table"
    json = "json"


def audit(
    actor: Annotated[str | None, typer.Option(help="Only this actor (an app user, or os:NAME for the CLI).")] = None,
    action: Annotated[list[str] | None, typer.Option(help="Only this action (repeatable), e.g. launch, sign_in_failed.")] = None,
    target: Annotated[str | None, typer.Option(help="Only this target (an experiment, user or file).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many entries.")] = 50,
    format: Annotated[Format, typer.Option("--format", help="table, or json (one array, times in UTC).")] = Format.table,
    db: DbOption = None,
) -> None:
    """Show the audit log, newest first."""
    from experiments.access import Permission, cli_actor, require
    from experiments.audit import Action, entries
    from experiments.config import settings
    from experiments.db import session_scope

    require(cli_actor(), Permission.AUDIT)
    try:
        actions = [Action(a) for a in action or []]
    except ValueError as exc:
        fail(f"--action: {exc}; choose from {', '.join(a.value for a in Action)}")
    with session_scope(engine_for(db)) as session:
        rows = entries(session, limit=limit, actions=actions, actor=actor, target=target)
    if format == Format.json:
        print(json.dumps([asdict(e) | {"at": e.at.isoformat() + "Z"} for e in rows], ensure_ascii=False, indent=2))
        return
    tz = settings().timezone
    table = Table("when", "who", "role", "via", "action", "target", "details")
    for e in rows:
        table.add_row(e.at.replace(tzinfo=UTC).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"), e.actor, e.role, e.via,
                      e.action, e.target, json.dumps(e.details, ensure_ascii=False))
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)

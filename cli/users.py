"""``recall user``: the accounts that sign in to the app, and their roles.

The CLI acts as the operating-system user with the admin role (:func:`experiments.access.cli_actor`);
every change is in the audit log under that name. Passwords come from standard input when it is not a
terminal (``echo "$PW" | recall user add wang --role analyst``), else they are asked for twice.
"""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer
from rich.table import Table

from cli.common import DbOption, engine_for, fail, out
from experiments.access import Role, cli_actor

app = typer.Typer(help="Accounts that sign in to the app (roles: viewer, analyst, operator, admin).",
                  no_args_is_help=True)

RoleOption = Annotated[Role, typer.Option("--role", help="viewer, analyst, operator or admin.")]


def read_password(prompt: str = "password") -> str:
    """A new password: one line of standard input, or typed twice at a terminal (never echoed)."""
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            fail("no password on standard input (give it as one line, or run in a terminal to be asked)")
        return password
    password = getpass.getpass(f"{prompt}: ")
    if getpass.getpass(f"{prompt} again: ") != password:
        fail("the two passwords differ; nothing changed")
    return password


def _run(change) -> None:  # noqa: ANN001 - a callable
    from experiments.users import UserError

    try:
        change()
    except UserError as exc:
        fail(str(exc))


@app.command("add")
def add(name: str, role: RoleOption, db: DbOption = None) -> None:
    """Create an account NAME with ROLE (the password from standard input, or asked for)."""
    from experiments.users import add_user

    engine = engine_for(db)
    password = read_password()
    _run(lambda: add_user(engine, name, password, role, actor=cli_actor()))
    out.print(f"user [bold]{name}[/] added as {role.value}")


@app.command("list")
def list_(db: DbOption = None) -> None:
    """Every account with its role and whether it is disabled or locked."""
    from experiments.users import list_users

    users = list_users(engine_for(db), actor=cli_actor())
    if not users:
        out.print("no users yet: recall user add NAME --role admin")
        return
    table = Table("name", "role", "state", "locked until (UTC)", "created (UTC)")
    for u in users:
        table.add_row(u.name, u.role.value, "disabled" if u.disabled else "active",
                      f"{u.locked_until:%Y-%m-%d %H:%M}" if u.locked_until else "", f"{u.created_at:%Y-%m-%d %H:%M}")
    out.print(table)


@app.command("disable")
def disable(name: str, db: DbOption = None) -> None:
    """Disable NAME: no more sign-ins, and open sessions end at their next click."""
    from experiments.users import set_disabled

    _run(lambda: set_disabled(engine_for(db), name, True, actor=cli_actor()))
    out.print(f"user [bold]{name}[/] disabled")


@app.command("enable")
def enable(name: str, db: DbOption = None) -> None:
    """Enable NAME again (also clears a lock-out after failed sign-ins)."""
    from experiments.users import set_disabled

    _run(lambda: set_disabled(engine_for(db), name, False, actor=cli_actor()))
    out.print(f"user [bold]{name}[/] enabled")


@app.command("reset-password")
def reset(name: str, db: DbOption = None) -> None:
    """Give NAME a new password (from standard input, or asked for); their open sessions end."""
    from experiments.users import reset_password

    engine = engine_for(db)
    password = read_password("new password")
    _run(lambda: reset_password(engine, name, password, actor=cli_actor()))
    out.print(f"password of [bold]{name}[/] reset")


@app.command("role")
def role(name: str, new_role: Annotated[Role, typer.Argument(metavar="ROLE", help="viewer, analyst, operator or admin.")],
         db: DbOption = None) -> None:
    """Give NAME another role (takes effect at their next click)."""
    from experiments.users import set_role

    _run(lambda: set_role(engine_for(db), name, new_role, actor=cli_actor()))
    out.print(f"user [bold]{name}[/] is now {new_role.value}")

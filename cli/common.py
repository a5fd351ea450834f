"""What every command group shares: the consoles, the --db option, errors as one line, the acting user."""

from __future__ import annotations

import logging
import traceback
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from experiments.config import to_stored_utc

if TYPE_CHECKING:
    from rich.console import Console


class LazyConsole:
    """A rich Console made on first use: a command that prints plain text (``recall report`` writes
    its Markdown to stdout) does not import rich, a twentieth of its start-up."""

    def __init__(self, *, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - whatever the Console has
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr)
        return getattr(self._console, name)


out = LazyConsole()
err = LazyConsole(stderr=True)

DB_META = "recall.db"


def _remember_db(ctx: typer.Context, value: str | None) -> str | None:
    ctx.meta[DB_META] = value  # shared by every context of the command: fault messages name the database
    return value


DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: $RECALL_DATABASE_URL, else the SQLite file recall.db).",
                 callback=_remember_db),
]

DebugOption = Annotated[
    bool,
    typer.Option("--debug", envvar="RECALL_DEBUG",
                 help="Show the traceback of a fault as well as its one-line message (or RECALL_DEBUG=1)."),
]


class Lang(str, Enum):
    zh = "zh"
    en = "en"


def fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


class FaultReportingGroup(TyperGroup):
    """The root command: any fault of any command ends in one line on stderr and exit status 1.

    The line says what failed and what to do (experiments.faults); ``--debug`` (or RECALL_DEBUG=1)
    prints the traceback before it. Usage errors keep Typer's own message and exit status 2.
    """

    def invoke(self, ctx: typer.Context) -> Any:
        if not ctx.params.get("debug"):
            # psycopg logs a warning of its own when a connection is lost during COPY: a second line.
            logging.getLogger("psycopg").setLevel(logging.ERROR)
        try:
            return super().invoke(ctx)
        except (TyperException, typer.Exit, typer.Abort):  # usage errors, exits and ^C keep Typer's handling
            raise
        except Exception as exc:  # noqa: BLE001 - every fault becomes one line
            from experiments.config import database_url
            from experiments.faults import explain

            if ctx.params.get("debug"):
                traceback.print_exception(exc)
            fail(explain(exc, database_url(ctx.meta.get(DB_META))))


def engine_for(db: str | None):
    from experiments.db import open_engine

    return open_engine(db)


def parse_local_time(value: str | None) -> datetime | None:
    """An ISO date/time in the configured time zone (unless it has an offset), as naive UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--as-of: not an ISO date or date-time: {value!r}")
    return to_stored_utc(parsed)


def mask_url(url: str) -> str:
    from experiments.faults import safe_url

    return safe_url(url)


def split_list(value: str | None) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()] if value else []


"""What every command group shares: the consoles, the --db option, errors as one line, the acting user."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from experiments.config import to_stored_utc

out = Console()
err = Console(stderr=True)

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: $RECALL_DATABASE_URL, else the SQLite file recall.db)."),
]


class Lang(str, Enum):
    zh = "zh"
    en = "en"


def fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


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
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def split_list(value: str | None) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()] if value else []


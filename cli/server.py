"""``recall app``: the Streamlit app."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Annotated

import typer

from cli.common import DbOption
from experiments.config import PROJECT_ROOT, database_url


def run_app(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    db: DbOption = None,
) -> None:
    """Open the Streamlit app (builds the demo campaign on first start with an empty database)."""
    env = {**os.environ, "RECALL_DATABASE_URL": database_url(db)}
    command = [sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "app.py"), "--server.port", str(port)]
    raise typer.Exit(subprocess.call(command, env=env))



def register(app: typer.Typer) -> None:
    app.command("app")(run_app)

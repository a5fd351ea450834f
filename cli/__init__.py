"""The ``recall`` command line: one module per command group, above both ``experiments`` and ``analysis``.

design (``experiment``, ``plan``) → launch and send (``assign``, ``sendlist``) → outcomes (``import``)
→ analysis (``report``, ``power``); plus ``check-message``, ``demo``/``simulate``, ``db`` and ``app``.
"""

from __future__ import annotations

import typer

from cli import (
    analysis,
    campaign,
    data,
    db,
    experiment,
    imports,
    messages,
    plan,
    server,
    target,
)

app = typer.Typer(help="Recall Lab: randomized experiments for user-recall (win-back) campaigns.", no_args_is_help=True)
app.add_typer(experiment.app, name="experiment")
app.add_typer(plan.app, name="plan")
campaign.register(app)
app.add_typer(imports.app, name="import")
analysis.register(app)
messages.register(app)
data.register(app)
app.add_typer(db.app, name="db")
server.register(app)
target.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

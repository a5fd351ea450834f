"""The ``recall`` command line: one module per command group, above both ``experiments`` and ``analysis``.

design (``experiment``, ``plan``) → launch and send (``assign``, ``sendlist``) → outcomes (``import``)
→ analysis (``report``, ``power``); plus ``check-message``, ``demo``/``simulate``, ``db`` and ``app``; ``user`` and ``audit`` for a team.
"""

from __future__ import annotations

import typer

from cli import (
    analysis,
    audit,
    campaign,
    data,
    db,
    experiment,
    imports,
    messages,
    plan,
    server,
    users,
    target,
)
from cli.common import DebugOption, FaultReportingGroup

app = typer.Typer(help="Recall Lab: randomized experiments for user-recall (win-back) campaigns.", no_args_is_help=True,
                  cls=FaultReportingGroup)


@app.callback()
def root(debug: DebugOption = False) -> None:
    """Options of every command: a fault ends in one line (FaultReportingGroup); --debug adds the traceback."""


app.add_typer(experiment.app, name="experiment")
app.add_typer(plan.app, name="plan")
campaign.register(app)
app.add_typer(imports.app, name="import")
analysis.register(app)
messages.register(app)
data.register(app)
app.add_typer(db.app, name="db")
server.register(app)
app.add_typer(users.app, name="user")
audit.register(app)
target.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

"""The ``recall`` command line: one module per command group, above both ``experiments`` and ``analysis``.

design (``experiment``, ``plan``) → launch and send (``assign``, ``sendlist``) → outcomes (``import``)
→ analysis (``report``, ``power``); plus ``check-message``, ``demo``/``simulate``, ``db`` and ``app``; ``user`` and ``audit`` for a team.

A command loads only the module that defines it (:data:`COMMANDS`): importing all thirteen and
building every command took 0.06 s of each start (``recall report``'s own work on SQLite is 0.07 s);
``recall --help`` and shell completion load them all.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, MutableMapping

# Before numpy loads: the commands' linear algebra is on matrices of a few covariates or cells, and
# OpenBLAS's worker threads (one per core, started again for SciPy's own copy) only spin while a
# command starts: 0.08 s of CPU of every `recall report`, more of its time on a busy machine. A
# user's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import typer
import typer.main
from typer import _click

from cli.common import DebugOption, FaultReportingGroup

# Every top-level command → the module under cli/ that defines it, in the order of ``recall --help``
# (commands, then groups). A module with ``register(app)`` adds its commands to the root; otherwise
# its ``app`` is the group.
COMMANDS = {
    "assign": "campaign",
    "sendlist": "campaign",
    "report": "analysis",
    "power": "analysis",
    "check-message": "messages",
    "demo": "data",
    "simulate": "data",
    "app": "server",
    "audit": "audit",
    "target": "target",
    "experiment": "experiment",
    "plan": "plan",
    "import": "imports",
    "db": "db",
    "user": "users",
}


def commands_of(module_name: str) -> dict[str, _click.Command]:
    """The click commands a module under cli/ defines, built by Typer as if registered on the root."""
    module = importlib.import_module(f"cli.{module_name}")
    holder = typer.Typer()
    if hasattr(module, "register"):
        module.register(holder)
    else:
        holder.add_typer(module.app, name=next(k for k, v in COMMANDS.items() if v == module_name))
    return dict(typer.main.get_group(holder).commands)


class LazyCommands(MutableMapping[str, _click.Command]):
    """The root's commands, each built on first use from its module (what click's group looks up)."""

    def __init__(self) -> None:
        self.loaded: dict[str, _click.Command] = {}

    def __getitem__(self, name: str) -> _click.Command:
        if name not in self.loaded:
            if name not in COMMANDS:
                raise KeyError(name)
            self.loaded.update(commands_of(COMMANDS[name]))
        return self.loaded[name]

    def __setitem__(self, name: str, command: _click.Command) -> None:
        self.loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self.loaded[name]

    def __iter__(self) -> Iterator[str]:
        yield from COMMANDS
        yield from (name for name in self.loaded if name not in COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS.keys() | self.loaded.keys())


class RecallGroup(FaultReportingGroup):
    """The root group, with its commands loaded on demand."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.commands = LazyCommands()


app = typer.Typer(help="Recall Lab: randomized experiments for user-recall (win-back) campaigns.", no_args_is_help=True,
                  cls=RecallGroup)


@app.callback()
def root(debug: DebugOption = False) -> None:
    """Options of every command: a fault ends in one line (FaultReportingGroup); --debug adds the traceback."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()

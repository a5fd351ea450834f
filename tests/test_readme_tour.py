"""The README's CLI tour runs as written, in order, on a fresh database.

The tour is every fenced ``bash`` block from "## Design an experiment" up to "## Analyse where the data
lives" (create → assign → send lists → import events → report → show, decide, roll out, clone). It
starts where `make app` leaves a newcomer: the demo built. The demo here has 4,000 customers instead
of 100,000 (same campaigns, same design; building 100,000 takes half a minute), which is the one
departure from the README; no command is skipped. Commands run through the CLI (Typer's runner) in a
scratch folder holding a link to ``examples/``, so relative paths work as in a checkout.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from cli import app as cli_app
from experiments.db import session_scope
from experiments.demo import build_demo
from experiments.models import Experiment, Send

ROOT = Path(__file__).resolve().parents[1]
FIRST, LAST = "## Design an experiment", "## Analyse where the data lives"


def tour_commands() -> list[str]:
    """The ``recall`` commands of the tour's bash blocks, in order (comments and blank lines dropped)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index(FIRST):readme.index(LAST)]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def test_the_tour_has_the_documented_steps() -> None:
    commands = tour_commands()
    assert commands[0] == "recall experiment create examples/winback-coupon.toml"
    assert any(c.startswith("recall import events examples/events.csv") for c in commands)
    assert all(c.startswith("recall ") for c in commands), commands
    assert (ROOT / "examples" / "events.csv").exists()


def test_every_command_of_the_tour_runs_in_order(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_demo(engine, customers=4_000)  # what `make app` built (smaller); the clock is the real one, as for the CLI
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for command in tour_commands():
        result = runner.invoke(cli_app, shlex.split(command)[1:])
        assert result.exit_code == 0, f"{command}\n{result.output}"
    with session_scope(engine) as session:
        assert session.scalar(select(Experiment.status).where(Experiment.name == "winback-coupon-2026-12")).value \
            == "running"
        assert session.scalar(select(Experiment.status).where(Experiment.name == "demo-winback-2026")).value \
            == "rolled_out"
        assert session.scalar(select(Experiment.id).where(Experiment.name == "demo-winback-2027")) is not None
        assert session.scalar(select(Send.customer_id).limit(1)) is not None
    assert list((tmp_path / "sendlists" / "2026-12-01").glob("winback-coupon-2026-12__*.csv"))

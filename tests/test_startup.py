"""What ``recall report`` loads: only the command's own modules, and SciPy only when it computes.

Start-up is most of the command (benchmarks/report_startup.py): each check runs the real command in
a fresh interpreter and lists the heavy libraries it imported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete

import cli
from experiments.access import cli_actor
from experiments.importer import import_results
from experiments.models import AnalysisRun

ROOT = Path(__file__).resolve().parents[1]
# Never needed by the report of an experiment whose outcomes are in Recall Lab's own database.
NEVER = ("pandas", "duckdb", "pyarrow", "statsmodels", "sklearn", "altair", "alembic", "rich", "scipy.stats",
         "scipy.optimize", "experiments.source", "experiments.importer", "analysis.bayesian", "analysis.sequential",
         "cli.experiment", "cli.imports", "cli.campaign", "experiments.factorial", "experiments.spec")


def loaded_by(args: list[str]) -> set[str]:
    """The modules among NEVER and scipy.special that ``recall ARGS`` imports (it must succeed)."""
    watched = (*NEVER, "scipy.special")
    code = ("import sys\nfrom cli import app\napp(sys.argv[1:], standalone_mode=False)\n"
            f"print('@@', sorted({{w for w in {watched!r} for m in sys.modules if m == w or m.startswith(w + '.')}}))")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return set(eval(done.stdout.rsplit("@@", 1)[1]))  # noqa: S307 - our own printed list


@pytest.fixture
def imported(engine: Engine, database_url: str, tmp_path: Path) -> str:
    path = tmp_path / "results.csv"
    path.write_text("customer_id,variant,converted,revenue,cohort\n" + "".join(
        f"C{i},{('control', 'a', 'b')[i % 3]},{int(i % 7 == 0)},{(i % 7 == 0) * 50.0},{('x', 'y')[i % 2]}\n"
        for i in range(600)), encoding="utf-8")
    import_results(engine, path, actor=cli_actor(), experiment="startup", variant_column="variant",
                   control="control", metrics=["converted", "revenue"], segments=["cohort"])
    return database_url


def test_a_computed_report_loads_scipy_special_and_nothing_heavier(imported: str, engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(delete(AnalysisRun))
    assert loaded_by(["report", "startup", "--db", imported]) == {"scipy.special"}  # Welch's t and the χ² of the SRM


def test_a_stored_report_is_read_back_without_scipy(imported: str) -> None:
    loaded_by(["report", "startup", "--db", imported])  # computes and stores the run
    assert loaded_by(["report", "startup", "--db", imported]) == set()
    assert loaded_by(["report", "startup", "--format", "json", "--db", imported]) == set()


def test_every_command_is_found_in_the_module_the_table_names() -> None:
    """cli.COMMANDS is what lets a command load one module: each module defines exactly its rows."""
    modules = set(cli.COMMANDS.values())
    for module in modules:
        assert set(cli.commands_of(module)) == {name for name, m in cli.COMMANDS.items() if m == module}, module
    assert {p.stem for p in (ROOT / "cli").glob("*.py")} - {"__init__", "common"} == modules

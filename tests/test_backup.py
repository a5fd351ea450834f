"""Backups and restores bring a database back exactly: the report after a restore equals the one before.

Runs on the test database (SQLite, or PostgreSQL with RECALL_TEST_DATABASE_URL: pg_dump/pg_restore).
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, func, select, text, update
from typer.testing import CliRunner

from analysis.report import build_report
from cli import app
from experiments.access import cli_actor
from experiments.audit import Action, entries, record_now
from experiments.backup import BackupError, back_up, restore
from experiments.db import (
    current_revision,
    downgrade,
    head_revision,
    session_scope,
    table_names,
)
from experiments.importer import import_results
from experiments.models import Experiment, ResultBlock, ResultSum
from experiments.result_tables import read_results
from experiments.store import get_experiment

runner = CliRunner()


@pytest.fixture(autouse=True)
def backup_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "backups"
    monkeypatch.setenv("RECALL_BACKUP_DIR", str(folder))
    return folder


def recall(*args: object):  # noqa: ANN201 - typer.testing.Result
    return runner.invoke(app, [str(a) for a in args])


def results_file(folder: Path, name: str, rows: int = 600, seed: int = 7) -> Path:
    rng = random.Random(seed)
    path = folder / f"{name}.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["customer_id", "arm", "visit", "spend"])
        for i in range(rows):
            arm = rng.choice(["A", "B", "Control"])
            visit = int(rng.random() < (0.3 if arm != "Control" else 0.2))
            writer.writerow([f"{name}-{i:05d}", arm, visit, round(visit * rng.uniform(10, 300), 2)])
    return path


def report(engine: Engine, name: str) -> str:
    """The report as JSON, without the time it was generated, numbers to 12 significant digits (a
    restored table may hand rows to SUM in another order, which moves the last bits of a float)."""
    data = build_report(engine, name).to_dict()
    del data["generated_at"]
    return json.dumps(_rounded(data), sort_keys=True, allow_nan=True)


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def imported(engine: Engine, folder: Path, name: str) -> str:
    import_results(engine, results_file(folder, name), experiment=name, variant_column="arm", control="Control",
                   metrics=["visit", "spend"], id_column="customer_id", actor=cli_actor())
    return report(engine, name)


def test_backup_change_restore_gives_the_same_report(engine: Engine, tmp_path: Path) -> None:
    before = imported(engine, tmp_path, "kept")
    record_now(engine, cli_actor(), Action.SETTINGS, "before the backup")
    backup_file = tmp_path / f"kept.{'sqlite' if engine.dialect.name == 'sqlite' else 'dump'}"
    made = recall("db", "backup", "--out", backup_file)
    assert made.exit_code == 0 and f"backup written to {backup_file}" in made.output, made.output

    # Afterwards: values change, rows go, another experiment arrives.
    with session_scope(engine) as session:
        kept = get_experiment(session, "kept")
        rows = read_results(session.connection(), kept).to_pylist()
        session.execute(delete(ResultBlock).where(ResultBlock.experiment_id == kept.id))
        session.execute(update(ResultSum).values(n=ResultSum.n - 1))
    imported(engine, tmp_path, "later")
    record_now(engine, cli_actor(), Action.SETTINGS, "after the backup")
    assert report(engine, "kept") != before

    refused = recall("db", "restore", backup_file)
    assert refused.exit_code == 1 and "add --yes" in refused.stderr and len(refused.stderr.splitlines()) == 1
    done = recall("db", "restore", backup_file, "--yes")
    assert done.exit_code == 0, done.output
    assert report(engine, "kept") == before
    with session_scope(engine) as session:
        assert read_results(session.connection(), get_experiment(session, "kept")).to_pylist() == rows
        assert session.scalars(select(Experiment.name)).all() == ["kept"]
        # The restored audit log is the backup's, followed by the restore itself.
        log = [(e.action, e.target) for e in entries(session)]
        assert log == [(Action.DB_RESTORE.value, str(backup_file)), (Action.SETTINGS.value, "before the backup"),
                       (Action.IMPORT_RESULTS.value, "kept")]
        replaced = entries(session, limit=1)[0].details["replaced_backup"]
    # What the restore replaced was backed up first, and can itself be restored.
    assert recall("db", "restore", replaced, "--yes").exit_code == 0
    with session_scope(engine) as session:
        assert sorted(session.scalars(select(Experiment.name))) == ["kept", "later"]


def test_downgrade_refuses_without_yes_and_backs_up_first(engine: Engine, tmp_path: Path, backup_folder: Path) -> None:
    before = imported(engine, tmp_path, "kept")
    record_now(engine, cli_actor(), Action.SETTINGS, "before the downgrade")
    refused = recall("db", "downgrade")
    assert refused.exit_code == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert "would drop every table" in refused.stderr and "experiments" in refused.stderr
    assert "add --yes" in refused.stderr and current_revision(engine) == head_revision()

    done = recall("db", "downgrade", "--yes")
    assert done.exit_code == 0, done.output
    assert current_revision(engine) is None and "experiments" not in table_names(engine)
    backup_file = Path(done.output.split("backup written to ")[1].split(" (")[0])
    assert backup_file.is_file() and backup_file.parent == backup_folder

    assert recall("db", "restore", backup_file, "--yes").exit_code == 0
    assert report(engine, "kept") == before
    with session_scope(engine) as session:  # the log as the backup held it, then the restore
        recorded = [(e.action, e.target) for e in entries(session)]
    assert recorded == [(Action.DB_RESTORE.value, str(backup_file)), (Action.SETTINGS.value, "before the downgrade"),
                        (Action.IMPORT_RESULTS.value, "kept")]


def test_a_file_of_the_wrong_kind_is_refused_and_nothing_changes(engine: Engine, tmp_path: Path) -> None:
    imported(engine, tmp_path, "kept")
    wrong = tmp_path / "wrong.bin"
    wrong.write_bytes(b"PGDMP" if engine.dialect.name == "sqlite" else b"SQLite format 3\x00")
    with pytest.raises(BackupError, match="not a (SQLite backup|pg_dump archive)"):
        restore(engine, cli_actor(), wrong)
    missing = recall("db", "restore", tmp_path / "nope.dump", "--yes")
    assert missing.exit_code == 1 and "no such backup file" in missing.stderr
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Experiment)) == 1


def test_a_missing_pg_dump_is_a_clear_error(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("pg_dump is for PostgreSQL")
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without the PostgreSQL client programs
    with pytest.raises(BackupError, match="pg_dump not found on PATH: install the PostgreSQL client"):
        back_up(engine, cli_actor(), tmp_path / "x.dump")
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM audit_log")) == 0


def test_a_failed_backup_drops_nothing(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("pg_dump is for PostgreSQL")
    monkeypatch.setenv("PATH", str(tmp_path))
    refused = recall("db", "downgrade", "--yes")
    assert refused.exit_code == 1 and "pg_dump not found on PATH" in refused.stderr
    assert "nothing was dropped" in refused.stderr and current_revision(engine) == head_revision()


def test_an_upgrade_is_recorded(engine: Engine) -> None:
    downgrade(engine, "0004")  # before the audit log existed
    assert recall("db", "upgrade").exit_code == 0
    with session_scope(engine) as session:
        [entry] = entries(session)
    assert (entry.action, entry.target, entry.details) == (Action.DB_UPGRADE.value, head_revision(),
                                                           {"from_revision": "0004"})

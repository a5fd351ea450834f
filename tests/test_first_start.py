"""First start: ``recall app`` builds the demo in a child process, one committed campaign at a time,
reporting its progress to a file the app reads (benchmarks/first_start.py times the whole start)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from cli.server import build_demo_in_background, database_is_empty, start_demo_build
from experiments.demo import MAIN, build_demo
from experiments.models import Experiment


def test_the_demo_reports_each_committed_campaign(engine: Engine) -> None:
    seen: list[tuple[int, int, int]] = []

    def progress(done: int, total: int) -> None:
        with engine.connect() as connection:  # what a reader sees at that moment
            seen.append((done, total, connection.scalar(select(func.count()).select_from(Experiment))))

    build_demo(engine, customers=1_000, today=datetime(2026, 11, 23, 4, 0), progress=progress)
    assert seen == [(1, 5, 0), (2, 5, 1), (3, 5, 2), (4, 5, 3), (5, 5, 4)]


def test_the_background_build_writes_its_progress(engine: Engine, database_url: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert database_is_empty(engine)
    progress = tmp_path / "progress.json"
    monkeypatch.setenv("RECALL_DEMO_PROGRESS", str(progress))
    monkeypatch.setenv("RECALL_DEMO_CUSTOMERS", "1000")
    build_demo_in_background()
    assert json.loads(progress.read_text()) == {"done": 5, "total": 5}
    assert not database_is_empty(engine)
    with engine.connect() as connection:
        assert connection.scalar(select(Experiment.name).where(Experiment.name == MAIN)) == MAIN


def test_the_child_process_builds_the_demo(engine: Engine, database_url: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECALL_DEMO_CUSTOMERS", "1000")
    progress = tmp_path / "progress.json"
    child = start_demo_build(database_url, progress)
    assert child.wait(timeout=300) == 0
    assert json.loads(progress.read_text()) == {"done": 5, "total": 5}
    assert not database_is_empty(engine)

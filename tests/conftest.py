"""Fixtures: a real, migrated database for every test that needs one.

``RECALL_TEST_DATABASE_URL`` selects the backend (``make test TEST_DB=postgresql+psycopg://...``);
without it each test gets its own SQLite file. Nothing is mocked: the tests run the same SQL the
users' databases run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from analysis.report import Report, build_report
from experiments.db import make_engine, upgrade
from experiments.access import cli_actor
from experiments.importer import import_results

PROJECT_ROOT = Path(__file__).resolve().parents[1]
HILLSTROM = PROJECT_ROOT / "experiments" / "data" / "hillstrom.csv.gz"


def _test_url(tmp_path: Path) -> str:
    return os.environ.get("RECALL_TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'recall-test.db'}"


def _reset_postgres(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))


def fresh_database(folder: Path) -> str:
    """The URL of an empty, migrated test database (PostgreSQL: the schema is dropped first)."""
    url = _test_url(folder)
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        _reset_postgres(engine)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(autouse=True)
def _calendar_of_the_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' data lives in December 2026 whatever the machine's clock says: events dated then are
    not refused as future ones (tests/test_import.py checks the refusal with a clock of its own)."""
    monkeypatch.setenv("RECALL_CLOCK_SKEW_MINUTES", str(2 * 365 * 24 * 60))


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty, migrated database; also the default of the CLI and the app during the test."""
    url = fresh_database(tmp_path)
    monkeypatch.setenv("RECALL_DATABASE_URL", url)
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def hillstrom_path() -> Path:
    """The project's own compressed copy of the public Hillstrom e-mail test (see experiments/data)."""
    return HILLSTROM


@pytest.fixture(scope="session")
def hillstrom_report(hillstrom_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Report:
    """The report of the Hillstrom test imported once into its own database (kept as plain data)."""
    engine = make_engine(fresh_database(tmp_path_factory.mktemp("hillstrom")))
    import_results(engine, hillstrom_path, actor=cli_actor(), experiment="hillstrom", variant_column="segment",
                   control="No E-Mail", metrics=["visit", "conversion", "spend"], covariates=["history", "recency"],
                   segments=["channel", "zip_code", "newbie"])
    report = build_report(engine, "hillstrom")
    engine.dispose()
    return report

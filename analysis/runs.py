"""Stored analysis runs: a report is computed once per state of the data, then read back.

Runs are written by ``recall report``, ``recall demo`` and the demo builder of ``recall app`` (never
by a page: drawing writes nothing). The app reads a run whose data version matches (:func:`lookup`,
read-only) and otherwise computes the report in memory, so a first start or a restart opens on
stored reports instead of recomputing every experiment. The runs of an experiment also show how
its estimates moved as outcomes came in. A run is reused while the data version is unchanged: the
counts and last ids of everything a report reads, and the day (recall quality and monitoring depend
on how much time has passed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Connection, Engine, func, select

from analysis.report import Report, build_report
from analysis.tables import source_of
from experiments.db import session_scope
from experiments.models import (
    AnalysisRun,
    Assignment,
    ContactHold,
    Event,
    Experiment,
    ImportRecord,
    ResultTable,
    Send,
)
from experiments.store import get_experiment, utcnow


def data_version(conn: Connection, now: datetime | None = None) -> str:
    """A fingerprint of the data every report reads; any import, assignment, send or status change moves it."""
    parts = [(now or utcnow()).date().isoformat()]
    counts = []  # one statement, not seven: each is a round trip to a PostgreSQL server
    for column in (Event.id, ImportRecord.id, Experiment.id):
        counts += [select(func.count()).select_from(column.table).scalar_subquery(),
                   select(func.max(column)).scalar_subquery()]
    counts += [select(func.count()).select_from(table).scalar_subquery()
               for table in (Assignment, Send, ResultTable, ContactHold)]
    parts += [str(v) for v in conn.execute(select(*counts)).one()]
    parts += [f"{name}:{status}" for name, status in conn.execute(
        select(Experiment.name, Experiment.status).order_by(Experiment.name))]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def options_key(options: Mapping[str, object]) -> str:
    """How a run's options are stored: build_report's keywords that differ from its defaults, as JSON
    (the defaults, ``{}``, are what the app's pages read)."""
    return json.dumps(dict(options), sort_keys=True, default=str)


def lookup(engine: Engine, names: Sequence[str], version: str, options: Mapping[str, object] | None = None
           ) -> dict[str, Report]:
    """The stored reports of ``names`` for this data version and ``options``, in one query; names
    without such a run are left out. Read-only: what a page may call while it draws."""
    if not names:
        return {}
    with engine.connect() as connection:
        rows = connection.execute(
            select(Experiment.name, AnalysisRun.report_json)
            .join(AnalysisRun, AnalysisRun.experiment_id == Experiment.id)
            .where(Experiment.name.in_(list(names)), AnalysisRun.data_version == version,
                   AnalysisRun.options == options_key(options or {}))
            .order_by(AnalysisRun.id)).all()
    return {name: Report.from_dict(json.loads(text)) for name, text in rows}  # the newest run wins


def stored_report(engine: Engine, name: str, *, version: str | None = None, **options: object) -> Report:
    """The report of ``name`` for ``options`` (build_report's keywords): read back when a run exists for
    the current data version, otherwise computed and stored. ``version`` saves recomputing the data
    version when the caller has just done so (the app, for a page of reports)."""
    key = options_key(options)
    with session_scope(engine) as session:
        experiment = get_experiment(session, name)
        warehouse = source_of(experiment) is not None
        version = version or data_version(session.connection())
        stored = None if warehouse else session.scalar(
            select(AnalysisRun.report_json).where(AnalysisRun.experiment_id == experiment.id,
                                                  AnalysisRun.data_version == version, AnalysisRun.options == key)
            .order_by(AnalysisRun.id.desc()).limit(1))
        experiment_id = experiment.id
    if stored is not None:
        return Report.from_dict(json.loads(stored))
    report = build_report(engine, name, **options)  # type: ignore[arg-type]
    if warehouse:  # outcomes in a warehouse: the data version cannot see them, so no run is kept
        return report
    with session_scope(engine) as session:
        session.add(AnalysisRun(experiment_id=experiment_id, created_at=utcnow(), data_version=version, options=key,
                                report_json=report.to_json(indent=None)))
    return report


def stored_reports(engine: Engine, names: list[str], version: str | None = None) -> dict[str, Report]:
    """The default reports of many experiments: the stored runs of this data version in one query,
    the others computed and stored (what the demo builder and ``recall demo`` write for the app)."""
    if version is None:
        with engine.connect() as connection:
            version = data_version(connection)
    found = lookup(engine, names, version)
    return {name: found.get(name) or stored_report(engine, name, version=version) for name in names}


def history(engine: Engine, name: str) -> list[tuple[datetime, Report]]:
    """Every stored run of ``name`` with the default options, oldest first."""
    key = json.dumps({}, sort_keys=True)
    with session_scope(engine) as session:
        experiment = get_experiment(session, name)
        rows = session.execute(
            select(AnalysisRun.created_at, AnalysisRun.report_json)
            .where(AnalysisRun.experiment_id == experiment.id, AnalysisRun.options == key)
            .order_by(AnalysisRun.id)).all()
    return [(at, Report.from_dict(json.loads(text))) for at, text in rows]

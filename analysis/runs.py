"""Stored analysis runs: a report is computed once per state of the data, then read back.

The app opens on stored reports instead of recomputing every experiment after a restart, and the
runs of an experiment show how its estimates moved as outcomes came in. A run is reused while the
data version is unchanged: the counts and last ids of everything a report reads, and the day (recall
quality and monitoring depend on how much time has passed).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from sqlalchemy import Connection, Engine, func, select

from analysis.report import Report, build_report
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
    for column in (Event.id, ImportRecord.id, Experiment.id):
        parts += [str(v) for v in conn.execute(select(func.count(), func.max(column))).one()]
    for table in (Assignment, Send, ResultTable, ContactHold):
        parts.append(str(conn.scalar(select(func.count()).select_from(table))))
    parts += [f"{name}:{status}" for name, status in conn.execute(
        select(Experiment.name, Experiment.status).order_by(Experiment.name))]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def stored_report(engine: Engine, name: str, *, version: str | None = None, **options: object) -> Report:
    """The report of ``name`` for ``options`` (build_report's keywords): read back when a run exists for
    the current data version, otherwise computed and stored. ``version`` saves recomputing the data
    version when the caller has just done so (the app, for a page of reports)."""
    key = json.dumps(options, sort_keys=True, default=str)
    with session_scope(engine) as session:
        experiment = get_experiment(session, name)
        version = version or data_version(session.connection())
        stored = session.scalar(
            select(AnalysisRun.report_json).where(AnalysisRun.experiment_id == experiment.id,
                                                  AnalysisRun.data_version == version, AnalysisRun.options == key)
            .order_by(AnalysisRun.id.desc()).limit(1))
        experiment_id = experiment.id
    if stored is not None:
        return Report.from_dict(json.loads(stored))
    report = build_report(engine, name, **options)  # type: ignore[arg-type]
    with session_scope(engine) as session:
        session.add(AnalysisRun(experiment_id=experiment_id, created_at=utcnow(), data_version=version, options=key,
                                report_json=report.to_json(indent=None)))
    return report


def stored_reports(engine: Engine, names: list[str], version: str | None = None) -> dict[str, Report]:
    """The default reports of many experiments: the stored runs of this data version in one query,
    the others computed and stored (what a page listing every campaign needs)."""
    key = json.dumps({}, sort_keys=True)
    with session_scope(engine) as session:
        version = version or data_version(session.connection())
        rows = session.execute(
            select(Experiment.name, AnalysisRun.report_json)
            .join(AnalysisRun, AnalysisRun.experiment_id == Experiment.id)
            .where(Experiment.name.in_(names), AnalysisRun.data_version == version, AnalysisRun.options == key)
        ).all()
    found = {name: Report.from_dict(json.loads(text)) for name, text in rows}
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

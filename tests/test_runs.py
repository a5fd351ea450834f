"""Stored analysis runs: reports round-trip through JSON and are reused until the data changes."""

from __future__ import annotations

import math
from pathlib import Path

from sqlalchemy import Engine, func, select

from analysis.report import Report, build_report
from analysis.runs import history, stored_report
from experiments.db import session_scope
from experiments.access import cli_actor
from experiments.importer import import_events
from experiments.models import AnalysisRun
from tests.helpers import AS_OF, add_customers, example_spec, store_spec

NAME = "winback-coupon-2026-12"


def same(a: object, b: object) -> bool:
    """Equality where nan equals nan (undefined numbers survive the JSON round trip as nan)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if hasattr(a, "__dataclass_fields__"):
        return type(a) is type(b) and all(same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return a == b


def test_a_report_round_trips_through_json(hillstrom_report: Report) -> None:
    import json

    back = Report.from_dict(json.loads(hillstrom_report.to_json()))
    assert same(back, hillstrom_report)
    assert isinstance(back.comparisons[0].abs_ci, tuple) and back.srm.p_value == hillstrom_report.srm.p_value


def runs(engine: Engine) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(AnalysisRun))


def test_runs_are_reused_until_the_data_changes(engine: Engine, tmp_path: Path) -> None:
    from experiments.assignment import assign

    add_customers(engine, [f"C{i:03d}" for i in range(200)])
    store_spec(engine, example_spec())
    assign(engine, NAME, as_of=AS_OF)
    first = stored_report(engine, NAME)
    assert runs(engine) == 1
    assert same(stored_report(engine, NAME), first) and runs(engine) == 1  # read back, not recomputed
    stored_report(engine, NAME, sequential=True)
    assert runs(engine) == 2  # other options, another run

    events = tmp_path / "events.csv"
    events.write_text("customer_id,event_type,occurred_at,value\nC001,order,2026-12-02 12:00,50\n", encoding="utf-8")
    import_events(engine, events, actor=cli_actor())
    after = stored_report(engine, NAME)
    assert runs(engine) == 3
    fresh = build_report(engine, NAME)
    assert [c.variant_mean for c in after.comparisons] == [c.variant_mean for c in fresh.comparisons]
    kept = history(engine, NAME)
    assert len(kept) == 2 and same(kept[0][1].comparisons, first.comparisons)
    assert not same(kept[1][1].comparisons, first.comparisons)  # the estimates moved with the new order

"""Monitoring a running test day by day: the always-valid interval as each daily look saw it.

A confidence sequence may be looked at after every day without inflating the error rate, so the
path of the interval over the days is the honest picture of a running test: the sufficient
statistics with the events known at the end of each day, and
:func:`analysis.sequential.confidence_sequence` turns them into an interval per variant.

Every day's statistics come from one statement (:func:`daily_statistics`), not one aggregate per day:
a customer's outcome as of the end of a day changes only on the days they have events, so the
database sums, per variant and day, how much each customer's x, x² and x³ grew that day, and the
running sums over the days are each day's Σx, Σx², Σx³.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import Connection, and_, case, func, literal, null, or_, select, union_all
from sqlalchemy.sql import ColumnElement

from analysis.aggregates import (CUSTOMER_METRICS, EVENT_COUNTS, METRIC_PARTS, event_bounds, event_count, id_ranges,
                                 outcome, window_events, within)
from analysis.sequential import confidence_sequence
from analysis.sufficient import SampleStats
from analysis.tables import Tables, open_tables
from experiments.dialects import as_number
from experiments.models import Experiment, ExperimentSource


@dataclass(frozen=True)
class Look:
    """One variant on one day since launch."""

    day: int
    variant: str
    abs_uplift: float
    ci_lo: float
    ci_hi: float
    may_act: bool


def daily_looks(conn: Connection, experiment: Experiment, metric: str, now: datetime, alpha: float = 0.05
                ) -> list[Look]:
    """The confidence sequence of ``metric`` for every contacted variant at the end of each day so far
    (at most the attribution window). Empty for imported results or before the first full day."""
    if experiment.source != ExperimentSource.DESIGNED or experiment.launched_at is None:
        return []
    days = min((now - experiment.launched_at).days, experiment.attribution_days)
    if days < 1:
        return []
    by_day = daily_statistics(conn, experiment, metric, days)
    planned = max(sum(stats.n for stats in by_day[0].values()), 2)
    looks = []
    for day, arms in enumerate(by_day, start=1):
        control = arms[experiment.control.id]
        for v in experiment.variants:
            if v.is_control:
                continue
            cs = confidence_sequence(control, arms[v.id], alpha=alpha, planned_n=planned)
            looks.append(Look(day, v.name, cs.abs_uplift, cs.ci_lo, cs.ci_hi, bool(cs.ci_lo > 0 or cs.ci_hi < 0)))
    return looks


def daily_statistics(conn: Connection, experiment: Experiment, metric: str, days: int
                     ) -> list[dict[int, SampleStats]]:
    """Per look (day 1 … ``days``) and variant id: the statistics of ``metric`` that
    ``arm_statistics(conn, experiment, until=launched_at + day days)`` gives, from one statement.

    As there: every assigned customer counts in n on every day, and a customer's outcome counts the
    events inside [assigned_at, assigned_at + window) that occurred before the end of the day.
    """
    if metric not in METRIC_PARTS:
        raise KeyError(f"no daily looks of {metric!r}: a designed experiment's per-customer metrics are "
                       f"{', '.join(CUSTOMER_METRICS)}")
    assert experiment.launched_at is not None and days >= 1
    ends = [experiment.launched_at + timedelta(days=day) for day in range(1, days + 1)]
    n = {v.id: 0 for v in experiment.variants}
    sums = {v.id: np.zeros((3, days)) for v in experiment.variants}
    with open_tables(conn, experiment) as (source, tables):
        bounds, assigned = event_bounds(source, tables, experiment.attribution_days)
        for ids in id_ranges(source, tables, assigned):
            for key, day, count, *powers in source.execute(_increments(tables, experiment, metric, ends, bounds, ids)):
                variant_id = tables.variant_id(key)
                if day == 0:
                    n[variant_id] += int(count)
                else:
                    sums[variant_id][:, int(day) - 1] += [float(p or 0) for p in powers]
    running = {v: np.cumsum(s, axis=1) for v, s in sums.items()}
    return [{v: SampleStats(n[v], *(float(running[v][p, d]) for p in range(3))) if n[v] else SampleStats(0, 0.0, 0.0)
             for v in n} for d in range(days)]


def _increments(tables: Tables, experiment: Experiment, metric: str, ends: list[datetime],
                bounds: tuple[datetime, datetime] | None, ids: tuple):  # noqa: ANN202 - a UNION ALL
    """Rows (variant, 0, n, NULL…) and (variant, day, NULL, ΣΔx, ΣΔx², ΣΔx³): what the customers'
    x, x² and x³ grew by on that day, summed per variant."""
    a, e = tables.assignments, tables.events
    counts, is_flag = METRIC_PARTS[metric]
    # The look a day's events are first seen by: the same comparisons with each day's end as
    # arm_statistics(until=…) makes, so boundaries (and SQLite's datetime text) fall the same way.
    day = case(*[(e.c.occurred_at < literal(end), i) for i, end in enumerate(ends[:-1], start=1)],
               else_=len(ends)) if len(ends) > 1 else literal(len(ends))
    # only the events the metric is made of
    in_window = and_(window_events(tables, experiment.attribution_days, ends[-1], bounds, ids),
                     or_(*[tables.event_is(EVENT_COUNTS[c][0]) for c in counts]))
    events = select(a.c.customer_id, a.c.variant, day.label("day"), e.c.event_type, e.c.value
                    ).select_from(a.join(e, in_window)).subquery("window_events")
    # Keyed like designed_cells' outcomes: one customer, their variant riding along.
    per_day = (select(events.c.customer_id, func.max(events.c.variant).label("variant"), events.c.day,
                      *[event_count(tables, c, events.c.event_type, events.c.value).label(c) for c in counts])
               .group_by(events.c.customer_id, events.c.day).subquery("customer_days"))
    d = per_day.c
    so_far = (select(d.variant, d.day, *[d[c].label(c) for c in counts],
                     *[func.sum(d[c]).over(partition_by=d.customer_id, order_by=d.day).label(f"{c}_so_far")
                       for c in counts])
              .subquery("customer_so_far"))
    s = so_far.c
    now = [s[f"{c}_so_far"] for c in counts]
    before = [s[f"{c}_so_far"] - s[c] for c in counts]

    def value(parts: list[ColumnElement]) -> ColumnElement:
        return as_number(outcome(parts, is_flag))

    powers: list[Callable[[ColumnElement], ColumnElement]] = [lambda x: x, lambda x: x * x, lambda x: x * x * x]
    growth = [func.sum(p(value(now)) - p(value(before))) for p in powers]
    returners = select(s.variant.label("variant"), s.day.label("day"), null().label("n"),
                       *[g.label(f"s{i}") for i, g in enumerate(growth, start=1)]).group_by(s.variant, s.day)
    everyone = (select(a.c.variant.label("variant"), literal(0).label("day"), func.count().label("n"),
                       *[null().label(f"s{i}") for i in range(1, 4)])
                .where(*within(a.c.customer_id, ids)).group_by(a.c.variant))
    return union_all(everyone, returners)

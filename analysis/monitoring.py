"""Monitoring a running test day by day: the always-valid interval as each daily look saw it.

A confidence sequence may be looked at after every day without inflating the error rate, so the
path of the interval over the days is the honest picture of a running test: the database recomputes
the sufficient statistics with the events known at the end of each day, and
:func:`analysis.sequential.confidence_sequence` turns them into an interval per variant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from analysis.aggregates import arm_statistics
from analysis.sequential import confidence_sequence
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
    looks = []
    for day in range(1, days + 1):
        arms = arm_statistics(conn, experiment, until=experiment.launched_at + timedelta(days=day))
        planned = max(sum(arm.n for arm in arms.values()), 2)
        control = arms[experiment.control.id].metrics[metric]
        for v in experiment.variants:
            if v.is_control:
                continue
            cs = confidence_sequence(control, arms[v.id].metrics[metric], alpha=alpha, planned_n=planned)
            looks.append(Look(day, v.name, cs.abs_uplift, cs.ci_lo, cs.ci_hi, bool(cs.ci_lo > 0 or cs.ci_hi < 0)))
    return looks

"""Recall quality: did the coupon buy one visit, or a customer?

For customers who returned inside the attribution window, what happened next: were they active
again 1-7 and 1-30 days after the return (retention), how many more orders did they place and
how much did they spend in those 30 days. Returned customers of each contacted variant are compared
with the customers of the control who returned by themselves. Each measure only counts customers
whose follow-up period has fully passed, so a running test is never judged on half a month.

The database computes the per-customer measures and per-variant sums; Python runs the usual tests
(:func:`analysis.frequentist.compare`) on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Numeric, and_, case, cast, func, literal, select
from sqlalchemy.orm import aliased

from experiments.dialects import add_days
from analysis.frequentist import compare
from analysis.sufficient import SampleStats
from experiments.models import Assignment, Event, EventType, Experiment, MetricKind

RETURN_EVENTS = (EventType.VISIT, EventType.ORDER)
# measure → (follow-up days, kind)
MEASURES: dict[str, tuple[int, MetricKind]] = {
    "retained_7d": (7, MetricKind.BINARY),
    "retained_30d": (30, MetricKind.BINARY),
    "repeat_orders_30d": (30, MetricKind.CONTINUOUS),
    "spend_30d": (30, MetricKind.CONTINUOUS),
}
FOLLOW_UP_DAYS = max(days for days, _ in MEASURES.values())


@dataclass(frozen=True)
class QualityComparison:
    """Returned customers of one variant against the control's natural returners on one measure.

    ``n`` and ``control_n`` count the returners whose follow-up period has passed.
    """

    variant: str
    measure: str
    kind: str
    returned: int
    control_returned: int
    n: int
    control_n: int
    control_mean: float
    variant_mean: float
    abs_uplift: float
    abs_ci: tuple[float, float]
    p_value: float


def verdict(comparisons: list[QualityComparison], variant: str) -> str:
    """What the variant's returners are worth, from 30-day retention against natural returners:
    "customer" when the interval lies above 0 (they stay better than customers who came back by
    themselves), "one_visit" when it lies below 0, "unproven" when it includes 0, "too_early"
    before any returner's follow-up has passed. Never a claim the interval does not support."""
    c = next((c for c in comparisons if c.variant == variant and c.measure == "retained_30d"), None)
    if c is None or not all(math.isfinite(x) for x in (c.p_value, *c.abs_ci)):
        return "too_early"
    if c.abs_ci[0] > 0:
        return "customer"
    return "one_visit" if c.abs_ci[1] < 0 else "unproven"


def _returns(experiment: Experiment):  # noqa: ANN202 - a subquery
    """Each assigned customer's first return inside the attribution window."""
    return (
        select(Assignment.variant_id, Assignment.customer_id, func.min(Event.occurred_at).label("returned_at"))
        .join(Event, and_(
            Event.customer_id == Assignment.customer_id,
            Event.event_type.in_(RETURN_EVENTS),
            Event.occurred_at >= Assignment.assigned_at,
            Event.occurred_at < add_days(Assignment.assigned_at, experiment.attribution_days),
        ))
        .where(Assignment.experiment_id == experiment.id)
        .group_by(Assignment.variant_id, Assignment.customer_id)
        .subquery("returns")
    )


def _per_customer(experiment: Experiment, as_of: datetime):  # noqa: ANN202 - a subquery
    returns = _returns(experiment)
    later = aliased(Event)
    start = add_days(returns.c.returned_at, 1)

    def within(days: int):  # noqa: ANN202
        return and_(later.occurred_at >= start, later.occurred_at < add_days(returns.c.returned_at, days))

    def mature(days: int):  # noqa: ANN202
        return case((add_days(returns.c.returned_at, days) <= literal(as_of), 1), else_=0)

    active = later.event_type.in_(RETURN_EVENTS)
    order = later.event_type == EventType.ORDER
    return (
        select(
            returns.c.variant_id,
            returns.c.customer_id,
            func.max(mature(7)).label("mature_7"),
            func.max(mature(30)).label("mature_30"),
            func.max(case((and_(active, within(7)), 1), else_=0)).label("retained_7d"),
            func.max(case((and_(active, within(30)), 1), else_=0)).label("retained_30d"),
            func.sum(case((and_(order, within(30)), 1), else_=0)).label("repeat_orders_30d"),
            func.sum(case((and_(order, within(30)), later.value), else_=0)).label("spend_30d"),
        )
        .select_from(returns)
        # Only the 30 days every measure looks at: the rest of a customer's history never counts.
        .outerjoin(later, and_(later.customer_id == returns.c.customer_id, later.occurred_at >= start,
                               later.occurred_at < add_days(returns.c.returned_at, FOLLOW_UP_DAYS)))
        .group_by(returns.c.variant_id, returns.c.customer_id)
        .subquery("quality")
    )


def quality_statistics(conn: Connection, experiment: Experiment, as_of: datetime
                       ) -> dict[int, tuple[int, dict[str, SampleStats]]]:
    """Per variant id: returned customers, and the sufficient statistics of each measure among
    those whose follow-up has passed by ``as_of``."""
    q = _per_customer(experiment, as_of)
    columns = [func.count().label("returned")]
    for name, (days, _) in MEASURES.items():
        m = q.c[f"mature_{days}"]
        x = cast(q.c[name], Numeric(18, 4))
        columns += [func.sum(m).label(f"{name}__n"), func.sum(m * x).label(f"{name}__sum"),
                    func.sum(m * x * x).label(f"{name}__sum_sq")]
    rows = conn.execute(select(q.c.variant_id, *columns).group_by(q.c.variant_id)).mappings()
    return {
        row["variant_id"]: (int(row["returned"]), {
            name: SampleStats(int(row[f"{name}__n"] or 0), float(row[f"{name}__sum"] or 0),
                              float(row[f"{name}__sum_sq"] or 0))
            for name in MEASURES
        })
        for row in rows
    }


def recall_quality(conn: Connection, experiment: Experiment, as_of: datetime, alpha: float = 0.05
                   ) -> list[QualityComparison]:
    """Every contacted variant's returners against the control's natural returners, per measure."""
    stats = quality_statistics(conn, experiment, as_of)
    empty = (0, {name: SampleStats(0, 0.0, 0.0) for name in MEASURES})
    control_returned, control = stats.get(experiment.control.id, empty)
    out = []
    for variant in experiment.variants:
        if variant.is_control:
            continue
        returned, measures = stats.get(variant.id, empty)
        for name, (_, kind) in MEASURES.items():
            e = compare(control[name], measures[name], kind, alpha=alpha)
            out.append(QualityComparison(
                variant=variant.name, measure=name, kind=kind.value, returned=returned,
                control_returned=control_returned, n=measures[name].n, control_n=control[name].n,
                control_mean=e.control_mean, variant_mean=e.variant_mean, abs_uplift=e.abs_uplift,
                abs_ci=e.abs_ci, p_value=e.p_value,
            ))
    return out

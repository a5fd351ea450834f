"""The funnel of a running campaign, per variant: sent → delivered → clicked → redeemed → returned.

Counted in the database (one aggregate query, one row per variant): a customer counts at a stage when
they were sent at least one touch of the experiment and, for the later stages, have an event of that
kind inside their attribution window [assigned_at, assigned_at + attribution_days). "Returned" is a
visit or an order, as in the report's ``returned`` metric. Customers of the no-contact holdout are
never sent anything, so only contacted variants appear.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, and_, case, func, select

from experiments.dialects import add_days
from experiments.models import Assignment, Event, EventType, Experiment, Send, Variant

STAGES = ("sent", "delivered", "clicked", "redeemed", "returned")


@dataclass(frozen=True)
class FunnelRow:
    """Customers of one variant at each stage (each stage a subset of ``sent``)."""

    variant: str
    sent: int
    delivered: int
    clicked: int
    redeemed: int
    returned: int

    def stages(self) -> dict[str, int]:
        return {stage: getattr(self, stage) for stage in STAGES}


def funnel(conn: Connection, experiment: Experiment) -> list[FunnelRow]:
    """One :class:`FunnelRow` per variant that has sends, in the design's order."""
    sent = (select(Send.customer_id).where(Send.experiment_id == experiment.id)
            .group_by(Send.customer_id).subquery("sent"))
    in_window = and_(
        Event.customer_id == Assignment.customer_id,
        Event.occurred_at >= Assignment.assigned_at,
        Event.occurred_at < add_days(Assignment.assigned_at, experiment.attribution_days),
    )

    def reached(*kinds: EventType):  # noqa: ANN202 - a SQL expression
        return func.max(case((Event.event_type.in_(kinds), 1), else_=0))

    per_customer = (
        select(Assignment.variant_id,
               reached(EventType.DELIVERED).label("delivered"),
               reached(EventType.CLICK).label("clicked"),
               reached(EventType.COUPON_REDEEMED).label("redeemed"),
               reached(EventType.VISIT, EventType.ORDER).label("returned"))
        .select_from(Assignment)
        .join(sent, sent.c.customer_id == Assignment.customer_id)
        .outerjoin(Event, in_window)
        .where(Assignment.experiment_id == experiment.id)
        .group_by(Assignment.variant_id, Assignment.customer_id)
        .subquery("per_customer")
    )
    c = per_customer.c
    rows = conn.execute(
        select(Variant.name, func.count(), func.sum(c.delivered), func.sum(c.clicked), func.sum(c.redeemed),
               func.sum(c.returned))
        .select_from(per_customer)
        .join(Variant, Variant.id == c.variant_id)
        .group_by(Variant.name, Variant.position)
        .order_by(Variant.position)
    ).all()
    return [FunnelRow(name, *(int(x or 0) for x in counts)) for name, *counts in rows]

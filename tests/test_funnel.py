"""The funnel (analysis/funnel.py) against the same counts done by hand in pandas on the raw rows."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
from sqlalchemy import Engine, select

from analysis.funnel import funnel
from experiments.db import session_scope
from experiments.demo import MAIN, build_demo
from experiments.models import Assignment, Event, Send, Variant
from experiments.store import get_experiment
from tests.test_app import TODAY


def by_hand(engine: Engine, experiment_id: int, days: int) -> dict[str, tuple[int, ...]]:
    with engine.connect() as c:
        a = pd.read_sql(select(Assignment.customer_id, Assignment.assigned_at, Variant.name.label("variant"))
                        .join(Variant, Variant.id == Assignment.variant_id)
                        .where(Assignment.experiment_id == experiment_id), c)
        sent = set(pd.read_sql(select(Send.customer_id).where(Send.experiment_id == experiment_id), c).customer_id)
        e = pd.read_sql(select(Event.customer_id, Event.event_type, Event.occurred_at), c)
    e["event_type"] = e.event_type.map(lambda k: getattr(k, "value", k))
    a = a[a.customer_id.isin(sent)]
    joined = a.merge(e, on="customer_id")
    joined = joined[(joined.occurred_at >= joined.assigned_at)
                    & (joined.occurred_at < joined.assigned_at + timedelta(days=days))]
    out = {}
    for variant, group in a.groupby("variant"):
        mine = joined[joined.variant == variant]

        def who(*kinds: str) -> int:
            return mine[mine.event_type.isin(kinds)].customer_id.nunique()  # noqa: B023
        out[variant] = (len(group), who("delivered"), who("click"), who("coupon_redeemed"), who("visit", "order"))
    return out


def test_the_funnel_counts_what_pandas_counts_on_the_raw_rows(engine: Engine) -> None:
    build_demo(engine, customers=1_500, today=TODAY)
    with session_scope(engine) as session:
        experiment = get_experiment(session, MAIN)
        rows = funnel(session.connection(), experiment)
        expected = by_hand(engine, experiment.id, experiment.attribution_days)
    assert len(rows) == 8 and "holdout" not in {r.variant for r in rows}
    assert {r.variant: (r.sent, r.delivered, r.clicked, r.redeemed, r.returned) for r in rows} == expected
    assert all(r.returned > 0 and r.clicked > 0 for r in rows)

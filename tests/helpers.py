"""Small builders shared by tests: customers at known lifecycle stages and a stored spec."""

from __future__ import annotations

import tomllib
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert

from experiments.db import session_scope
from experiments.models import Customer
from experiments.spec import ExperimentSpec, parse_spec
from experiments.store import create_experiment

EXAMPLE_SPEC = Path(__file__).resolve().parents[1] / "examples" / "winback-coupon.toml"
AS_OF = datetime(2026, 11, 30, 16, 0)  # 2026-12-01 00:00 in Asia/Shanghai


def example_spec(**changes) -> ExperimentSpec:
    data = tomllib.loads(EXAMPLE_SPEC.read_text(encoding="utf-8"))
    data.update(changes)
    return parse_spec(data)


def add_customers(engine: Engine, ids: list[str], inactive_days: int = 60, as_of: datetime = AS_OF) -> None:
    """Customers last active ``inactive_days`` before ``as_of`` (60 days: the lapsed_1_3m cohort)."""
    rows = [
        dict(customer_id=c, signup_at=as_of - timedelta(days=400), first_order_at=as_of - timedelta(days=390),
             last_active_at=as_of - timedelta(days=inactive_days), orders_before=1, spend_before=0)
        for c in ids
    ]
    with session_scope(engine) as session:
        session.execute(insert(Customer), rows)


def store_spec(engine: Engine, spec: ExperimentSpec) -> None:
    with session_scope(engine) as session:
        create_experiment(session, spec)

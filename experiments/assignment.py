"""Deterministic assignment: sha256(salt:customer_id) picks a bucket, buckets map to variants.

The hash makes the split reproducible on any machine and database and independent of the order
customers arrive in; only customers not yet assigned are ever written, so nobody moves.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import accumulate

from sqlalchemy import Engine, exists, insert, select

from experiments.cohorts import cohort_filter
from experiments.models import Assignment, Customer, ExperimentStatus
from experiments.db import session_scope
from experiments.store import get_experiment, utcnow

BUCKETS = 10_000
CHUNK = 20_000


def bucket(salt: str, customer_id: str) -> int:
    """The customer's bucket in [0, BUCKETS): the first 8 bytes of sha256("salt:id"), big-endian."""
    digest = hashlib.sha256(f"{salt}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def bucket_bounds(shares: Sequence[float]) -> list[int]:
    """Upper bucket bound of each variant, in spec order (the last is always BUCKETS)."""
    bounds = [round(c * BUCKETS) for c in accumulate(shares)]
    bounds[-1] = BUCKETS
    return bounds


def variant_index(bucket_no: int, bounds: Sequence[int]) -> int:
    return bisect_right(bounds, bucket_no)


@dataclass(frozen=True)
class AssignmentSummary:
    experiment: str
    newly_assigned: int
    per_variant: dict[str, int]


def assign(engine: Engine, name: str, as_of: datetime | None = None) -> AssignmentSummary:
    """Assign every target customer not yet assigned; launch the experiment (its design locks).

    ``as_of`` (naive UTC) is the reference time for the cohort and the start of each new
    customer's attribution window; it defaults to now.
    """
    as_of = as_of or utcnow()
    with session_scope(engine) as session:
        experiment = get_experiment(session, name)
        variants = experiment.variants
        bounds = bucket_bounds([v.share for v in variants])
        already = exists().where(
            Assignment.experiment_id == experiment.id, Assignment.customer_id == Customer.customer_id
        )
        targets = session.execute(
            select(Customer.customer_id)
            .where(cohort_filter(experiment.cohort, as_of), ~already)
            .order_by(Customer.customer_id)
            .execution_options(yield_per=CHUNK)
        ).scalars()
        counts = {v.name: 0 for v in variants}
        rows: list[dict] = []
        for customer_id in targets:
            b = bucket(experiment.salt, customer_id)
            v = variants[variant_index(b, bounds)]
            counts[v.name] += 1
            rows.append(
                dict(experiment_id=experiment.id, customer_id=customer_id, variant_id=v.id, bucket=b, assigned_at=as_of)
            )
            if len(rows) >= CHUNK:
                session.execute(insert(Assignment), rows)
                rows = []
        if rows:
            session.execute(insert(Assignment), rows)
        if experiment.status == ExperimentStatus.DRAFT:
            experiment.status = ExperimentStatus.RUNNING
            experiment.launched_at = utcnow()
        return AssignmentSummary(experiment.name, sum(counts.values()), counts)

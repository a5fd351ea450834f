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

from sqlalchemy import Engine, exists, func, insert, select, true
from sqlalchemy.orm import aliased

from experiments.cohorts import cohort_filter
from experiments.db import session_scope
from experiments.filters import compile_filter
from experiments.models import Assignment, Customer, Experiment, ExperimentStatus
from experiments.policy import ContactPolicy
from experiments.store import get_experiment, stored_spec, utcnow

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
    in_other_experiment: int = 0
    in_global_holdout: int = 0


def in_global_holdout(policy: ContactPolicy, customer_id: str) -> bool:
    """A stable share of all customers that no campaign ever contacts (the long-run natural rate)."""
    return bucket(policy.global_holdout_salt, customer_id) < round(policy.global_holdout_share * BUCKETS)


def assign(engine: Engine, name: str, as_of: datetime | None = None, policy: ContactPolicy | None = None
           ) -> AssignmentSummary:
    """Assign every target customer not yet assigned; launch the experiment (its design locks).

    ``as_of`` (naive UTC) is the reference time for the cohort and the start of each new
    customer's attribution window; it defaults to now. Customers in another running experiment of
    the same layer, and those in the global holdout, are left out (see :mod:`experiments.policy`).
    """
    as_of = as_of or utcnow()
    policy = policy or ContactPolicy.from_env()
    with session_scope(engine) as session:
        experiment = get_experiment(session, name)
        variants = experiment.variants
        bounds = bucket_bounds([v.share for v in variants])
        already = exists().where(
            Assignment.experiment_id == experiment.id, Assignment.customer_id == Customer.customer_id
        )
        other = aliased(Experiment)
        in_other = exists().where(
            Assignment.customer_id == Customer.customer_id,
            Assignment.experiment_id == other.id,
            other.id != experiment.id,
            other.layer == experiment.layer,
            other.status == ExperimentStatus.RUNNING,
        )
        spec = stored_spec(experiment)
        custom = compile_filter(spec.filter, as_of) if spec else true()
        eligible = (cohort_filter(experiment.cohort, as_of), custom, ~already)
        in_other_experiment = session.scalar(select(func.count()).select_from(Customer).where(*eligible, in_other))
        targets = session.execute(
            select(Customer.customer_id)
            .where(*eligible, ~in_other)
            .order_by(Customer.customer_id)
            .execution_options(yield_per=CHUNK)
        ).scalars()
        counts = {v.name: 0 for v in variants}
        held_out = 0
        rows: list[dict] = []
        for customer_id in targets:
            if policy.global_holdout_share and in_global_holdout(policy, customer_id):
                held_out += 1
                continue
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
            experiment.launched_at = as_of
        return AssignmentSummary(experiment.name, sum(counts.values()), counts, in_other_experiment or 0, held_out)

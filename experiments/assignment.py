"""Deterministic assignment: sha256(salt:customer_id) picks a bucket, buckets map to variants.

The hash makes the split reproducible on any machine and database and independent of the order
customers arrive in; only customers not yet assigned are ever written, so nobody moves.

Assignment streams: target customers are read in chunks of ``CHUNK`` and each chunk is written with
:func:`experiments.db.bulk_insert` (COPY on PostgreSQL), so memory stays bounded whatever the
number of customers.
"""

from __future__ import annotations

import hashlib
import struct
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import accumulate

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy import Engine, exists, func, select, true
from sqlalchemy.orm import aliased

from experiments.cohorts import cohort_filter
from experiments.db import bulk_insert_tuples, foreign_keys_checked_once, session_scope
from experiments.filters import compile_filter
from experiments.models import Assignment, Customer, Experiment, ExperimentStatus
from experiments.policy import ContactPolicy
from experiments.store import get_experiment, stored_spec, utcnow

BUCKETS = 10_000
ASSIGNMENT_COLUMNS = ("experiment_id", "customer_id", "variant_id", "bucket", "assigned_at")
CHUNK = 50_000
_FIRST_8_BYTES = struct.Struct(">Q").unpack_from


def bucket(salt: str, customer_id: str) -> int:
    """The customer's bucket in [0, BUCKETS): the first 8 bytes of sha256("salt:id"), big-endian."""
    return buckets(salt, [customer_id])[0]


def buckets(salt: str, customer_ids: Iterable[str]) -> list[int]:
    """:func:`bucket` of many customers at once (the one implementation of the hash).

    The hash state of ``"salt:"`` is computed once and copied for each customer id, about twice as
    fast as hashing ``"salt:id"`` whole.
    """
    salted = hashlib.sha256(f"{salt}:".encode()).copy
    first_8_bytes = _FIRST_8_BYTES
    out: list[int] = []
    append = out.append
    for customer_id in customer_ids:
        h = salted()
        h.update(customer_id.encode())
        append(first_8_bytes(h.digest())[0] % BUCKETS)
    return out


def bucket_bounds(shares: Sequence[float]) -> list[int]:
    """Upper bucket bound of each variant, in spec order (the last is always BUCKETS)."""
    bounds = [round(c * BUCKETS) for c in accumulate(shares)]
    bounds[-1] = BUCKETS
    return bounds


def variant_index(bucket_no: int, bounds: Sequence[int]) -> int:
    return bisect_right(bounds, bucket_no)


def variant_table(bounds: Sequence[int]) -> list[int]:
    """``variant_index`` of every bucket, as a list indexed by bucket number (a lookup, not a search)."""
    return [variant_index(b, bounds) for b in range(BUCKETS)]


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


def assign(engine: Engine, name: str, as_of: datetime | None = None, policy: ContactPolicy | None = None,
           *, progress: bool = False) -> AssignmentSummary:
    """Assign every target customer not yet assigned; launch the experiment (its design locks).

    ``as_of`` (naive UTC) is the reference time for the cohort and the start of each new
    customer's attribution window; it defaults to now. Customers in another running experiment of
    the same layer, and those in the global holdout, are left out (see :mod:`experiments.policy`).
    Customers stream in chunks of ``CHUNK`` (bounded memory), each chunk written in one bulk insert
    (COPY on PostgreSQL); ``progress`` shows a progress bar on the terminal.

    An experiment whose spec has a ``[source]`` is refused: its assignments live in the team's
    warehouse, where they were made, and Recall Lab only reads them.
    """
    as_of = as_of or utcnow()
    policy = policy or ContactPolicy.from_env()
    with session_scope(engine) as session:
        experiment = get_experiment(session, name)
        spec = stored_spec(experiment)
        if spec is not None and spec.source is not None:
            raise ValueError(
                f"experiment {experiment.name!r} reads its assignments from the team's warehouse ([source] in its "
                "spec): Recall Lab does not assign it; assign it where the warehouse's assignments are made"
            )
        variants = experiment.variants
        index_of = variant_table(bucket_bounds([v.share for v in variants]))
        variant_of = [variants[i].id for i in index_of]  # plain ints: no ORM attribute access per row
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
        custom = compile_filter(spec.filter, as_of) if spec else true()
        eligible = (cohort_filter(experiment.cohort, as_of), custom, ~already)
        in_other_experiment = session.scalar(select(func.count()).select_from(Customer).where(*eligible, in_other))
        total = session.scalar(select(func.count()).select_from(Customer).where(*eligible, ~in_other)) or 0
        per_bucket: Counter[int] = Counter()
        held_out = 0
        holdout_bound = round(policy.global_holdout_share * BUCKETS) if policy.global_holdout_share else 0
        experiment_id, salt = experiment.id, experiment.salt
        with foreign_keys_checked_once(session, Assignment, total), progress_bar(progress) as bar:
            task = bar.add_task(f"assigning {experiment.name}", total=total)
            # Core, not ORM: plain strings streamed from a server-side cursor, CHUNK at a time.
            targets = session.connection().execute(
                select(Customer.customer_id)
                .where(*eligible, ~in_other)
                .order_by(Customer.customer_id)
                .execution_options(yield_per=CHUNK)
            )
            for ids in targets.scalars().partitions():
                n = len(ids)
                if holdout_bound:
                    ids = [c for c, b in zip(ids, buckets(policy.global_holdout_salt, ids)) if b >= holdout_bound]
                    held_out += n - len(ids)
                chunk_buckets = buckets(salt, ids)
                bulk_insert_tuples(session, Assignment, ASSIGNMENT_COLUMNS, [
                    (experiment_id, customer_id, variant_of[b], b, as_of) for customer_id, b in zip(ids, chunk_buckets)
                ])
                per_bucket.update(chunk_buckets)
                bar.advance(task, n)
            targets.close()
        counts = {v.name: 0 for v in variants}
        for b, n in per_bucket.items():
            counts[variants[index_of[b]].name] += n
        if experiment.status == ExperimentStatus.DRAFT:
            experiment.status = ExperimentStatus.RUNNING
            experiment.launched_at = as_of
        return AssignmentSummary(experiment.name, sum(counts.values()), counts, in_other_experiment or 0, held_out)


def progress_bar(enabled: bool) -> Progress:
    """A rich progress bar on stderr (bar, count, rate, elapsed); does nothing unless ``enabled``."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
        TimeElapsedColumn(), console=Console(stderr=True), disable=not enabled,
    )

"""Assignment: deterministic, reproducible, stable as customers are added, launch locks the design."""

from __future__ import annotations

import hashlib

import pytest
from scipy import stats
from sqlalchemy import String, column, create_engine, select, table, text

from experiments.assignment import BUCKETS, assign, bucket, bucket_bounds, variant_index
from experiments.db import session_scope
from experiments.dialects import hash_bucket
from experiments.models import Assignment, Customer, ExperimentStatus, Variant
from experiments.store import DesignLocked, create_experiment, get_experiment
from tests.helpers import AS_OF, add_customers, example_spec, store_spec

NAME = "winback-coupon-2026-12"


def stored_assignments(engine) -> dict[str, str]:  # noqa: ANN001
    with session_scope(engine) as session:
        rows = session.execute(
            select(Assignment.customer_id, Variant.name).join(Variant, Variant.id == Assignment.variant_id)
        ).all()
    return dict(rows)


def test_bucket_is_sha256_of_salt_and_id() -> None:
    # Pinned: changing the hash would silently re-randomize every running experiment.
    assert [bucket("winback", f"C{i}") for i in range(5)] == [8589, 366, 2091, 2875, 5796]
    digest = hashlib.sha256(b"winback:C0").digest()
    assert bucket("winback", "C0") == int.from_bytes(digest[:8], "big") % BUCKETS


# Ids that stress the SQL spellings: non-ASCII, the longest allowed, empty, quotes, every hash sign.
HASH_IDS = [f"C{i}" for i in range(500)] + ["客户-001", "x" * 64, "", "o'brien", "a:b", "١٢٣"]


@pytest.mark.parametrize("salt", ["winback", "春节召回-2027", "it's"])
def test_the_database_hashes_like_python(engine, salt: str) -> None:  # noqa: ANN001
    # Assignment hashes in SQL; any difference from bucket() would re-randomize customers.
    add_customers(engine, HASH_IDS)
    query = select(Customer.customer_id, hash_bucket(salt, Customer.customer_id, BUCKETS))
    with engine.connect() as connection:
        assert dict(connection.execute(query).all()) == {c: bucket(salt, c) for c in HASH_IDS}


def test_duckdb_hashes_like_python() -> None:
    ids = table("ids", column("c", String))
    duckdb_engine = create_engine("duckdb:///:memory:")
    with duckdb_engine.begin() as connection:
        connection.execute(text("CREATE TABLE ids (c VARCHAR)"))
        connection.execute(ids.insert(), [{"c": c} for c in HASH_IDS])
        hashed = dict(connection.execute(select(ids.c.c, hash_bucket("winback", ids.c.c, BUCKETS))).all())
    duckdb_engine.dispose()
    assert hashed == {c: bucket("winback", c) for c in HASH_IDS}


def test_bucket_bounds_follow_shares() -> None:
    bounds = bucket_bounds([0.1, 0.45, 0.45])
    assert bounds == [1000, 5500, 10_000]
    assert [variant_index(b, bounds) for b in (0, 999, 1000, 5499, 5500, 9999)] == [0, 0, 1, 1, 2, 2]


def test_split_matches_shares() -> None:
    bounds = bucket_bounds([0.1, 0.45, 0.45])
    counts = [0, 0, 0]
    for i in range(60_000):
        counts[variant_index(bucket("split-check", f"U{i}"), bounds)] += 1
    _, p = stats.chisquare(counts, [6_000, 27_000, 27_000])
    assert p > 0.001


def test_assignment_is_stored_deterministic_and_launches(engine) -> None:  # noqa: ANN001
    ids = [f"C{i:05d}" for i in range(2_000)]
    add_customers(engine, ids)
    store_spec(engine, example_spec())
    summary = assign(engine, NAME, as_of=AS_OF)
    assert summary.newly_assigned == 2_000 and sum(summary.per_variant.values()) == 2_000

    stored = stored_assignments(engine)
    names = [v.name for v in example_spec().variants]
    bounds = bucket_bounds([v.share for v in example_spec().variants])
    expected = {c: names[variant_index(bucket(NAME, c), bounds)] for c in ids}
    assert stored == expected  # the same pure function on any machine or database
    with session_scope(engine) as session:
        experiment = get_experiment(session, NAME)
        assert experiment.status == ExperimentStatus.RUNNING and experiment.launched_at is not None


def test_customers_added_later_never_move_earlier_ones(engine) -> None:  # noqa: ANN001
    add_customers(engine, [f"C{i:05d}" for i in range(1_000)])
    store_spec(engine, example_spec())
    assign(engine, NAME, as_of=AS_OF)
    before = stored_assignments(engine)

    add_customers(engine, [f"D{i:05d}" for i in range(500)])
    again = assign(engine, NAME, as_of=AS_OF)
    after = stored_assignments(engine)
    assert again.newly_assigned == 500
    assert {c: after[c] for c in before} == before
    assert len(after) == 1_500
    assert assign(engine, NAME, as_of=AS_OF).newly_assigned == 0


def test_only_the_target_cohort_is_assigned(engine) -> None:  # noqa: ANN001
    add_customers(engine, [f"L{i}" for i in range(30)], inactive_days=60)  # lapsed_1_3m
    add_customers(engine, [f"S{i}" for i in range(20)], inactive_days=120)  # silent_3m
    add_customers(engine, [f"A{i}" for i in range(10)], inactive_days=2)  # active
    store_spec(engine, example_spec())
    assert assign(engine, NAME, as_of=AS_OF).newly_assigned == 30
    assert all(c.startswith("L") for c in stored_assignments(engine))


def test_launched_design_is_locked(engine) -> None:  # noqa: ANN001
    add_customers(engine, ["C1", "C2"])
    store_spec(engine, example_spec())
    store_spec(engine, example_spec())  # the same spec again is a no-op
    changed = example_spec(attribution_days=7)
    store_spec(engine, changed)  # a draft may still be edited
    assign(engine, NAME, as_of=AS_OF)
    with pytest.raises(DesignLocked, match="running"), session_scope(engine) as session:
        create_experiment(session, example_spec(attribution_days=21))
    with session_scope(engine) as session:
        assert get_experiment(session, NAME).attribution_days == 7

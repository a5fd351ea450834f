"""assignments: drop the (experiment_id, variant_id) index

Every read of an experiment's assignments goes through the primary key (experiment_id, customer_id);
the extra index only served per-variant counts, which read the experiment's rows either way, and it
cost about a quarter of the time of storing a large assignment (10M customers on PostgreSQL: about
50 s with it, 39 s without; benchmarks/warehouse.py).

Revision ID: 0004
Revises: 0003
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_assignments_experiment_variant", table_name="assignments")


def downgrade() -> None:
    op.create_index("ix_assignments_experiment_variant", "assignments", ["experiment_id", "variant_id"])

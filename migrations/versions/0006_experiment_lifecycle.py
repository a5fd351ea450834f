"""the experiment lifecycle: stopped, decided (ship a variant or no-go, why, by whom), rolled out

Revision ID: 0006
Revises: 0005
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# experiments.status is a VARCHAR(16) without a CHECK (native_enum=False): "rolled_out" needs no DDL.


def upgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("stopped_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("decision", sa.Enum("ship", "no_go", name="experiment_decision",
                                                       native_enum=False, length=16), nullable=True))
        batch.add_column(sa.Column("decided_variant", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("decision_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("decided_by", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("decided_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("rolled_out_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        for column in ("rolled_out_at", "decided_at", "decided_by", "decision_reason", "decided_variant",
                       "decision", "stopped_at"):
            batch.drop_column(column)

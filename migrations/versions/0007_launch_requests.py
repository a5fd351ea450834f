"""launch_requests: launches waiting for a second person's approval (RECALL_LAUNCH_APPROVAL=1)

Revision ID: 0007
Revises: 0006
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "launch_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("audience", sa.Integer(), nullable=False),
        sa.Column("approved_by", sa.String(length=128), nullable=True),
        sa.Column("approved_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"],
                                name=op.f("fk_launch_requests_experiment_id_experiments"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_launch_requests")),
    )
    op.create_index(op.f("ix_launch_requests_experiment_id"), "launch_requests", ["experiment_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_launch_requests_experiment_id"), table_name="launch_requests")
    op.drop_table("launch_requests")

"""experiment_notes: analysts' notes on an experiment's results (the Results page)

Revision ID: 0009
Revises: 0008
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "experiment_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"],
                                name=op.f("fk_experiment_notes_experiment_id_experiments"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_notes")),
    )
    op.create_index(op.f("ix_experiment_notes_experiment_id"), "experiment_notes", ["experiment_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_experiment_notes_experiment_id"), table_name="experiment_notes")
    op.drop_table("experiment_notes")

"""targeting_models and target_scores: stored uplift models, and a targeted experiment's launch scores

Revision ID: 0010
Revises: 0009
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "targeting_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=True),
        sa.Column("experiment_name", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.Column("learner", sa.String(length=32), nullable=False),
        sa.Column("features", sa.Text(), nullable=False),
        sa.Column("evaluation", sa.Text(), nullable=False),
        sa.Column("estimator", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"],
                                name=op.f("fk_targeting_models_experiment_id_experiments"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_targeting_models")),
        sa.UniqueConstraint("name", name=op.f("uq_targeting_models_name")),
    )
    op.create_table(
        "target_scores",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("uplift", sa.Float(), nullable=False),
        sa.Column("targeting_policy", sa.Boolean(), nullable=False),
        sa.Column("targeted", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"],
                                name=op.f("fk_target_scores_experiment_id_experiments"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("experiment_id", "customer_id", name=op.f("pk_target_scores")),
    )


def downgrade() -> None:
    op.drop_table("target_scores")
    op.drop_table("targeting_models")

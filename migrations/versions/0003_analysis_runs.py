"""analysis runs: stored reports

Revision ID: 0003
Revises: 0002
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "analysis_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("data_version", sa.String(length=64), nullable=False),
        sa.Column("options", sa.String(length=256), nullable=False),
        sa.Column("report_json", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"],
                                name=op.f("fk_analysis_runs_experiment_id_experiments"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analysis_runs")),
    )
    op.create_index("ix_analysis_runs_lookup", "analysis_runs", ["experiment_id", "data_version", "options"])


def downgrade() -> None:
    op.drop_index("ix_analysis_runs_lookup", table_name="analysis_runs")
    op.drop_table("analysis_runs")

"""contact policy: experiment layers for mutual exclusion, held-back contacts, customer indexes

Revision ID: 0002
Revises: 0001
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("layer", sa.String(length=64), server_default="recall", nullable=False))
    op.create_table(
        "contact_holds",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("held_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"],
                                name=op.f("fk_contact_holds_experiment_id_experiments"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["variant_id"], ["variants.id"],
                                name=op.f("fk_contact_holds_variant_id_variants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("experiment_id", "customer_id", "step", name=op.f("pk_contact_holds")),
    )
    # Policy checks look a customer up across experiments: index assignments and sends by customer.
    op.create_index("ix_assignments_customer", "assignments", ["customer_id"])
    op.create_index("ix_sends_customer_time", "sends", ["customer_id", "scheduled_at"])


def downgrade() -> None:
    op.drop_index("ix_sends_customer_time", table_name="sends")
    op.drop_index("ix_assignments_customer", table_name="assignments")
    op.drop_table("contact_holds")
    with op.batch_alter_table("experiments") as batch:
        batch.drop_column("layer")

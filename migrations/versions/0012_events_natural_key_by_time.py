"""events: the natural key ordered (customer_id, occurred_at, event_type, value); no customer-time index

Every read of events goes by customer and time (the attribution window, the opt-out and cap probes,
an import's look-up of stored events): the natural key led by (customer_id, occurred_at) serves them
all, so ix_events_customer_time only cost one more B-tree per imported event (10M events: about a
third of the INSERT's time on both databases; benchmarks/imports.py). The key's columns are the same:
what it accepts and refuses does not change.

Revision ID: 0012
Revises: 0011
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_index("ix_events_customer_time")
        batch.drop_constraint("uq_events_natural_key", type_="unique")
        batch.create_unique_constraint("uq_events_natural_key", ["customer_id", "occurred_at", "event_type", "value"])


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_constraint("uq_events_natural_key", type_="unique")
        batch.create_unique_constraint("uq_events_natural_key", ["customer_id", "event_type", "occurred_at", "value"])
        batch.create_index("ix_events_customer_time", ["customer_id", "occurred_at"])

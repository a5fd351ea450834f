"""sends: no rendered message per row, no (experiment_id, variant_id) index, clustered on its key on SQLite

A send's message follows from what the row already holds (the experiment's frozen spec gives the
step's template, the variant its coupon, ``scheduled_at`` the date, and the customer id), and the
send list file carries it with its sha256 in the audit log: storing it again per row was most of
the bytes written by ``recall sendlist`` (a million sends: ~120 MB of text). Every read of an
experiment's sends goes through the primary key (experiment_id, customer_id, step); the variant index
served nothing but cost a third B-tree per insert. On SQLite the table is rebuilt WITHOUT ROWID, so
the primary key is the table itself rather than an index beside it (benchmarks/sendlist.py).

Revision ID: 0011
Revises: 0010
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_sends_experiment_variant", table_name="sends")
    with op.batch_alter_table("sends", recreate="auto", table_kwargs={"sqlite_with_rowid": False}) as batch:
        batch.drop_column("message")


def downgrade() -> None:
    with op.batch_alter_table("sends", recreate="auto", table_kwargs={"sqlite_with_rowid": True}) as batch:
        batch.add_column(sa.Column("message", sa.Text(), nullable=False, server_default=""))
    op.create_index("ix_sends_experiment_variant", "sends", ["experiment_id", "variant_id"])

"""imported results: Parquet blocks inside the database (result_blocks) instead of one wide table per experiment

Each imported experiment's ``results_<experiment id>`` table (one row per customer: customer_id,
variant label, v<position> per metric or covariate, s<i> per segment) becomes rows of
``result_blocks``: (experiment_id, seq, rows, data), ``data`` a Parquet file of up to 262,144 of its
customers with the same columns (labels and segments dictionary-encoded, LZ4); see
experiments/result_tables.py. The wide tables are read a block at a time (memory bounded by a block,
whatever the experiment's size) and dropped, as are tables left from experiments deleted since; the
registry ``result_tables`` keeps the segment names and row counts but no longer a table name.
``result_sums`` is unchanged. On PostgreSQL the blocks are stored uncompressed by the server (they are
compressed already). Downgrade makes the wide tables again from the blocks.

Written out here (not through experiments.result_tables) so the migration stays what it was when the
application changes.

Revision ID: 0013
Revises: 0012
"""
import json
import re
from collections.abc import Iterator, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROWS_PER_BLOCK = 1 << 18
WIDE = re.compile(r"^results_\d+$")


def _block(names: list[str], rows: Sequence[Sequence]) -> bytes:
    """Rows of a wide table as one stored block: Parquet, labels and segments dictionary-encoded, LZ4."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    arrays = []
    for name, values in zip(names, zip(*rows, strict=True), strict=True):
        if name == "customer_id":
            arrays.append(pa.array(values, pa.string()))
        elif name == "variant" or name.startswith("s"):
            arrays.append(pc.dictionary_encode(pa.array(values, pa.string())))
        else:
            arrays.append(pa.array(values, pa.float64()))
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(arrays, names=names), sink, compression="lz4",
                   use_dictionary=[n for n in names if n == "variant" or n.startswith("s")], write_statistics=False)
    return sink.getvalue().to_pybytes()


def _partitions(connection: sa.Connection, table: sa.Table) -> Iterator[Sequence[sa.Row]]:
    """The table's rows, ROWS_PER_BLOCK at a time (a server-side cursor on PostgreSQL)."""
    result = connection.execute(sa.select(table).execution_options(yield_per=ROWS_PER_BLOCK))
    yield from result.partitions(ROWS_PER_BLOCK)


def upgrade() -> None:
    blocks = op.create_table(
        "result_blocks",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"],
                                name=op.f("fk_result_blocks_experiment_id_experiments"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("experiment_id", "seq", name=op.f("pk_result_blocks")),
    )
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        # A block is compressed already: PostgreSQL's own compression of large values (pglz) found nothing to
        # gain and took 1 s per 28 MB stored, against 0.18 s stored as is.
        op.execute("ALTER TABLE result_blocks ALTER COLUMN data SET STORAGE EXTERNAL")
    registered = dict(connection.execute(sa.text("SELECT experiment_id, table_name FROM result_tables")).all())
    for experiment_id, name in sorted(registered.items()):
        wide = sa.Table(name, sa.MetaData(), autoload_with=connection)
        names = [column.name for column in wide.columns]
        for seq, rows in enumerate(_partitions(connection, wide)):
            connection.execute(sa.insert(blocks).values(experiment_id=experiment_id, seq=seq, rows=len(rows),
                                                        data=_block(names, rows)))
    for name in sa.inspect(connection).get_table_names():
        if WIDE.match(name):  # registered (converted above), or left from an experiment deleted since
            op.drop_table(name)
    with op.batch_alter_table("result_tables") as batch:
        batch.drop_column("table_name")


def downgrade() -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with op.batch_alter_table("result_tables") as batch:
        batch.add_column(sa.Column("table_name", sa.String(length=64), nullable=True))
    connection = op.get_bind()
    registered = connection.execute(sa.text("SELECT experiment_id, segments FROM result_tables")).all()
    for experiment_id, segments in registered:
        name = f"results_{experiment_id}"
        positions = connection.scalars(sa.text("SELECT position FROM metrics WHERE experiment_id = :e ORDER BY position"),
                                       {"e": experiment_id}).all()
        wide = op.create_table(name, sa.Column("customer_id", sa.String(64), nullable=False),
                               sa.Column("variant", sa.String(128), nullable=False),
                               *[sa.Column(f"v{p}", sa.Float(), nullable=False) for p in positions],
                               *[sa.Column(f"s{i}", sa.String(128), nullable=False)
                                 for i in range(len(json.loads(segments)))])
        seqs = connection.scalars(sa.text("SELECT seq FROM result_blocks WHERE experiment_id = :e ORDER BY seq"),
                                  {"e": experiment_id}).all()
        for seq in seqs:  # a block at a time
            data = connection.scalar(sa.text("SELECT data FROM result_blocks WHERE experiment_id = :e AND seq = :s"),
                                     {"e": experiment_id, "s": seq})
            rows = pq.read_table(pa.BufferReader(data), columns=[c.name for c in wide.columns]).to_pylist()
            if rows:
                connection.execute(sa.insert(wide), rows)
        connection.execute(sa.text("UPDATE result_tables SET table_name = :t WHERE experiment_id = :e"),
                           {"t": name, "e": experiment_id})
    with op.batch_alter_table("result_tables") as batch:
        batch.alter_column("table_name", existing_type=sa.String(length=64), nullable=False)
    op.drop_table("result_blocks")

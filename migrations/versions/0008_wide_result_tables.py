"""imported results: one wide table per imported experiment (and its sums) instead of metric_values/segment_values

Each imported experiment's per-customer results move to ``results_<experiment id>`` (one row per
customer: customer_id, variant label, one column per metric or covariate, one per segment; see
experiments/result_tables.py), registered in ``result_tables``, with its sufficient statistics per
variant and per variant × segment value in ``result_sums`` (computed here in SQL; an import sums them
while it reads); its assignments rows (bucket -1), which only carried the variant, are dropped. The
long tables go. Downgrade moves the data back.

Written out here in SQL (not through experiments.result_tables) so the migration stays what it was
when the application changes.

Revision ID: 0008
Revises: 0007
"""
import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _long_tables() -> None:
    op.create_table(
        "metric_values",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"],
                                name=op.f("fk_metric_values_experiment_id_experiments"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("experiment_id", "customer_id", "metric", name=op.f("pk_metric_values")),
    )
    op.create_table(
        "segment_values",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"],
                                name=op.f("fk_segment_values_experiment_id_experiments"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("experiment_id", "customer_id", "segment", name=op.f("pk_segment_values")),
    )


def _metrics(connection: sa.Connection, experiment_id: int) -> list[tuple[str, int]]:
    return connection.execute(sa.text("SELECT name, position FROM metrics WHERE experiment_id = :e ORDER BY position"),
                              {"e": experiment_id}).all()


def _sums(connection: sa.Connection, experiment_id: int, name: str, values: list[str], segments: list[str]) -> None:
    """n, Σx, Σx², Σx³ and Σx·y per variant and per variant × segment value (experiments.result_tables)."""
    terms = [(v, v) for v in values] + [(f"{v}*{v}", f"{v}*{v}") for v in values]
    terms += [(f"{v}*{v}*{v}", f"{v}*{v}*{v}") for v in values]
    terms += [(f"{a}*{b}", f"{a}*{b}") for i, a in enumerate(values) for b in values[i + 1:]]
    sums = ", ".join(f"SUM({expression})" for _, expression in terms)
    for dimension, column in [("", None), *[(s, f"s{i}") for i, s in enumerate(segments)]]:
        label, keys = (column, f"variant, {column}") if column else ("''", "variant")
        rows = connection.execute(sa.text(
            f"SELECT variant, {label}, COUNT(*), {sums} FROM {name} GROUP BY {keys}")).all()
        for variant, value, n, *totals in rows:
            connection.execute(sa.text(
                "INSERT INTO result_sums (experiment_id, variant, dimension, value, n, sums) "
                "VALUES (:e, :variant, :dimension, :value, :n, :sums)"),
                {"e": experiment_id, "variant": variant, "dimension": dimension, "value": value, "n": n,
                 "sums": json.dumps({key: float(t or 0) for (key, _), t in zip(terms, totals, strict=True)})})


def upgrade() -> None:
    op.create_table(
        "result_tables",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("segments", sa.Text(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"],
                                name=op.f("fk_result_tables_experiment_id_experiments"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("experiment_id", name=op.f("pk_result_tables")),
    )
    op.create_table(
        "result_sums",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(length=128), nullable=False),
        sa.Column("dimension", sa.String(length=128), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("sums", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"],
                                name=op.f("fk_result_sums_experiment_id_experiments"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("experiment_id", "variant", "dimension", "value", name=op.f("pk_result_sums")),
    )
    connection = op.get_bind()
    imported = connection.scalars(sa.text("SELECT id FROM experiments WHERE source = 'imported' ORDER BY id")).all()
    for experiment_id in imported:
        metrics = _metrics(connection, experiment_id)
        segments = connection.scalars(sa.text(
            "SELECT DISTINCT segment FROM segment_values WHERE experiment_id = :e ORDER BY segment"),
            {"e": experiment_id}).all()
        name = f"results_{experiment_id}"
        op.create_table(name, sa.Column("customer_id", sa.String(64), nullable=False),
                        sa.Column("variant", sa.String(128), nullable=False),
                        *[sa.Column(f"v{p}", sa.Float(), nullable=False) for _, p in metrics],
                        *[sa.Column(f"s{i}", sa.String(128), nullable=False) for i in range(len(segments))])
        values = [f"(SELECT m.value FROM metric_values m WHERE m.experiment_id = a.experiment_id "
                  f"AND m.customer_id = a.customer_id AND m.metric = :m{p})" for _, p in metrics]
        labels = [f"(SELECT s.value FROM segment_values s WHERE s.experiment_id = a.experiment_id "
                  f"AND s.customer_id = a.customer_id AND s.segment = :s{i})" for i in range(len(segments))]
        columns = ["customer_id", "variant", *[f"v{p}" for _, p in metrics], *[f"s{i}" for i in range(len(segments))]]
        connection.execute(sa.text(
            f"INSERT INTO {name} ({', '.join(columns)}) SELECT a.customer_id, v.name, {', '.join([*values, *labels])} "
            "FROM assignments a JOIN variants v ON v.id = a.variant_id WHERE a.experiment_id = :e"),
            {"e": experiment_id, **{f"m{p}": n for n, p in metrics}, **{f"s{i}": s for i, s in enumerate(segments)}})
        rows = connection.scalar(sa.text(f"SELECT count(*) FROM {name}"))
        connection.execute(sa.text("INSERT INTO result_tables (experiment_id, table_name, segments, rows) "
                                   "VALUES (:e, :t, :s, :r)"),
                           {"e": experiment_id, "t": name, "s": json.dumps(segments), "r": rows})
        _sums(connection, experiment_id, name, [f"v{p}" for _, p in metrics], segments)
        connection.execute(sa.text("DELETE FROM assignments WHERE experiment_id = :e"), {"e": experiment_id})
    op.drop_table("segment_values")
    op.drop_table("metric_values")


def downgrade() -> None:
    _long_tables()
    connection = op.get_bind()
    registered = connection.execute(sa.text("SELECT experiment_id, table_name, segments FROM result_tables")).all()
    for experiment_id, name, segments in registered:
        connection.execute(sa.text(
            f"INSERT INTO assignments (experiment_id, customer_id, variant_id, bucket, assigned_at) "
            f"SELECT :e, r.customer_id, v.id, -1, x.created_at FROM {name} r "
            "JOIN variants v ON v.experiment_id = :e AND v.name = r.variant JOIN experiments x ON x.id = :e"),
            {"e": experiment_id})
        for metric, position in _metrics(connection, experiment_id):
            connection.execute(sa.text(f"INSERT INTO metric_values (experiment_id, customer_id, metric, value) "
                                       f"SELECT :e, customer_id, :m, v{position} FROM {name}"),
                               {"e": experiment_id, "m": metric})
        for i, segment in enumerate(json.loads(segments)):
            connection.execute(sa.text(f"INSERT INTO segment_values (experiment_id, customer_id, segment, value) "
                                       f"SELECT :e, customer_id, :s, s{i} FROM {name}"),
                               {"e": experiment_id, "s": segment})
        op.drop_table(name)
    op.drop_table("result_sums")
    op.drop_table("result_tables")

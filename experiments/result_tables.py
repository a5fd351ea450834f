"""Where imported results live: one wide table per imported experiment, one row per customer.

``results_<experiment id>`` has the columns ``customer_id``, ``variant`` (the label as in the file),
``v<position>`` for each metric or covariate (the position of its :class:`MetricDefinition`) and
``s<i>`` for each segment column (named, in order, by the experiment's :class:`ResultTable` row).

Alongside, ``result_sums`` keeps the sufficient statistics a report needs (n, Σx, Σx², Σx³ of every
value and Σx·y of every pair, per variant and per variant × segment value), summed by pyarrow while the
import reads the file: results never change once imported, so a report reads a few rows instead of
scanning millions (the capped statistics of a skewed metric, which depend on the cap asked for, are
the one aggregate still computed from the table, in SQL).

Why wide, and why its own table (README, "Importing results", has the measurements): a report needs
sums per variant (and segment) of each value, its square and cross products; one row per customer
gives them in one scan with no join, where the former long format (one row per customer *per metric*
and per segment, 5 rows per customer for a typical file) had to be joined back together. A table of
its own is created by the import in its own transaction, so loading it locks nothing any reader uses
(issue 11, item 9), needs no per-row foreign-key check and no index, and publishes with the
experiment at commit. These tables are made by the import, not by Alembic: tests/test_migrations.py
leaves tables named like this out of the model comparison on purpose.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Column, Connection, Float, MetaData, String, Table, insert, select

from experiments.identifiers import MAX_ID_LENGTH
from experiments.models import Experiment, MetricRole, ResultSum, ResultTable

if TYPE_CHECKING:
    import pyarrow as pa

NAME = re.compile(r"^results_\d+$")  # what tests/test_migrations.py leaves out of the model comparison
MAX_LABEL_LENGTH = 128
# A label held by fewer customers than both of these is named in a warning at import, and the report's SRM
# check counts the experiment as a mismatch: most likely a typo ('Contrl'), not an arm of the test.
SMALL_ARM_CUSTOMERS = 10
SMALL_ARM_SHARE = 0.01


def is_small_arm(customers: int, total: int) -> bool:
    return customers < SMALL_ARM_CUSTOMERS and customers < SMALL_ARM_SHARE * total


def table_name(experiment_id: int) -> str:
    return f"results_{experiment_id}"


def value_column(position: int) -> str:
    return f"v{position}"


def segment_column(index: int) -> str:
    return f"s{index}"


def results_table(name: str, positions: list[int], segments: int) -> Table:
    """The table's shape: no key and no index (the import checks that no customer appears twice, and
    every read is a whole-table aggregate)."""
    return Table(
        name, MetaData(),
        Column("customer_id", String(MAX_ID_LENGTH), nullable=False),
        Column("variant", String(MAX_LABEL_LENGTH), nullable=False),
        *[Column(value_column(p), Float, nullable=False) for p in positions],
        *[Column(segment_column(i), String(MAX_LABEL_LENGTH), nullable=False) for i in range(segments)],
    )


@dataclass(frozen=True)
class StoredResults:
    """An imported experiment's results table and what its columns mean."""

    table: Table
    values: dict[str, str]  # metric or covariate name → column
    segments: dict[str, str]  # segment dimension → column
    variant_ids: dict[str, int]  # label → Variant.id

    def value(self, name: str):  # noqa: ANN201 - a column
        return self.table.c[self.values[name]]


def stored_results(conn: Connection, experiment: Experiment) -> StoredResults:
    """The results table of an imported experiment."""
    registered = conn.execute(select(ResultTable.table_name, ResultTable.segments)
                              .where(ResultTable.experiment_id == experiment.id)).one()
    segments = json.loads(registered.segments)
    positions = {m.name: m.position for m in experiment.metrics
                 if m.role in (MetricRole.METRIC, MetricRole.COVARIATE)}
    table = results_table(registered.table_name, sorted(positions.values()), len(segments))
    return StoredResults(table, {name: value_column(p) for name, p in positions.items()},
                         {name: segment_column(i) for i, name in enumerate(segments)},
                         {v.name: v.id for v in experiment.variants})


def sum_terms(columns: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    """The sums kept per cell, as (key, factors): each value, its square and cube, each pair's product."""
    terms = []
    for c in columns:
        terms += [(c, (c,)), (f"{c}*{c}", (c, c)), (f"{c}*{c}*{c}", (c, c, c))]
    terms += [(f"{a}*{b}", (a, b)) for i, a in enumerate(columns) for b in columns[i + 1:]]
    return terms


@dataclass
class CellSums:
    """Sufficient statistics summed batch by batch: per (variant, dimension, value) → [n, Σ of each term].
    Dimension "" (value "") is the variant's total."""

    values: list[str]  # value columns
    segments: dict[str, str]  # segment column → dimension name
    cells: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)

    def add(self, variant: pa.Array, values: dict[str, pa.Array], segments: dict[str, pa.Array]) -> None:
        import pyarrow as pa  # only imports need pyarrow: reports read the stored sums
        import pyarrow.compute as pc

        terms = sum_terms(self.values)
        columns = {"variant": variant, **segments}
        for i, (_, factors) in enumerate(terms):
            product = values[factors[0]]
            for factor in factors[1:]:
                product = pc.multiply(product, values[factor])
            columns[f"t{i}"] = product
        batch = pa.table(columns)
        aggregates = [("variant", "count")] + [(f"t{i}", "sum") for i in range(len(terms))]
        for keys, dimension in ([["variant"], ""], *[[["variant", c], d] for c, d in self.segments.items()]):
            for row in batch.group_by(keys, use_threads=False).aggregate(aggregates).to_pylist():
                key = (row["variant"], dimension, row[keys[1]] if dimension else "")
                cell = self.cells.setdefault(key, [0.0] * (len(terms) + 1))
                cell[0] += row["variant_count"]
                for i in range(len(terms)):
                    cell[i + 1] += row[f"t{i}_sum"]

    def rows(self, experiment_id: int) -> list[dict]:
        keys = [key for key, _ in sum_terms(self.values)]
        return [dict(experiment_id=experiment_id, variant=variant, dimension=dimension, value=value, n=int(cell[0]),
                     sums=json.dumps(dict(zip(keys, cell[1:], strict=True))))
                for (variant, dimension, value), cell in sorted(self.cells.items())]


def store_sums(connection: Connection, experiment_id: int, sums: CellSums) -> None:
    connection.execute(insert(ResultSum), sums.rows(experiment_id))


@dataclass(frozen=True)
class Cell:
    """One row of ``result_sums`` read back, its sums keyed by the factors' names (metrics, covariates)."""

    n: int
    sums: dict[tuple[str, ...], float]

    def sum(self, *names: str) -> float:
        """Σ of the product of ``names``: ``sum("x")`` = Σx, ``sum("x", "x")`` = Σx², ``sum("x", "y")`` = Σx·y."""
        return self.sums[names] if names in self.sums else self.sums[names[::-1]]


def stored_sums(conn: Connection, experiment: Experiment) -> dict[tuple[int, str, str], Cell]:
    """(variant id, dimension, value) → the cell's sums; dimension "" holds the variant's total."""
    stored = stored_results(conn, experiment)
    names = {column: name for name, column in stored.values.items()}
    rows = conn.execute(select(ResultSum.variant, ResultSum.dimension, ResultSum.value, ResultSum.n, ResultSum.sums)
                        .where(ResultSum.experiment_id == experiment.id))
    return {(stored.variant_ids[variant], dimension, value):
            Cell(n, {tuple(names[c] for c in key.split("*")): total for key, total in json.loads(sums).items()})
            for variant, dimension, value, n, sums in rows}


def customers_per_variant(conn: Connection, experiment: Experiment) -> dict[int, int]:
    """Customers of each variant id of an imported experiment (they have no assignments)."""
    return {variant_id: cell.n for (variant_id, dimension, _), cell in stored_sums(conn, experiment).items()
            if not dimension}

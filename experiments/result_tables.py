"""Where imported results live: one wide table per imported experiment, one row per customer.

``results_<experiment id>`` has the columns ``customer_id``, ``variant`` (the label as in the file),
``v<position>`` for each metric or covariate (the position of its :class:`MetricDefinition`) and
``s<i>`` for each segment column (named, in order, by the experiment's :class:`ResultTable` row).

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
from dataclasses import dataclass

from sqlalchemy import Column, Connection, Float, MetaData, String, Table, select

from experiments.identifiers import MAX_ID_LENGTH
from experiments.models import Experiment, MetricRole, ResultTable

NAME = re.compile(r"^results_\d+$")  # what tests/test_migrations.py leaves out of the model comparison
MAX_LABEL_LENGTH = 128


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

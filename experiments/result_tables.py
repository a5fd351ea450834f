"""Where imported results live: Parquet blocks of the per-customer rows, inside Recall Lab's own database.

An imported experiment's rows are stored in ``result_blocks``, one row per block of up to
:data:`ROWS_PER_BLOCK` customers, each block a Parquet file with the columns ``customer_id``,
``variant`` (the label as in the file), ``v<position>`` for each metric or covariate (the position of
its :class:`MetricDefinition`) and ``s<i>`` for each segment column (named, in order, by the
experiment's :class:`ResultTable` row). :func:`read_results` reads them back as one Arrow table, its
columns named by what they mean: the one place that knows the layout.

Alongside, ``result_sums`` keeps the sufficient statistics a report needs (n, Σx, Σx², Σx³ of every
value and Σx·y of every pair, per variant and per variant × segment value), summed while the import
reads the file: results never change once imported, so a report reads a few rows instead of scanning
millions. What still needs the rows (the capped statistics of a skewed metric, which depend on the cap
asked for; targeting) reads the blocks.

Why blocks (README, "What a results file may hold, and how it is stored", has the measurements): the
former wide table per experiment (``results_<id>``, one SQL row per customer) cost about 1.5 s of a
2M-customer import on SQLite binding 12M values one by one through sqlite3, and a COPY on PostgreSQL;
nothing reads those rows one by one or by customer. A block is written by pyarrow in C++ (0.16 s for
2M rows of 6 columns, 27 MB with LZ4; labels and segments dictionary-encoded, so they cost next to
nothing) and stored as one value, so the database writes a few large values instead of millions of
rows; reading every block back takes 0.2 s (a value and its variant, 0.1 s). Inside the database,
not files beside it: the import stays one transaction (blocks are published with the experiment at
commit, and a failed import leaves none), a backup holds everything, and a PostgreSQL server needs no
file system shared with the app. No index but the key, no per-row check: the import checks that no
customer appears twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Connection, insert, select

from experiments.models import Experiment, MetricRole, ResultBlock, ResultSum, ResultTable

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

# Customers per stored block: memory while importing or converting is bounded by a block (about 15 MB of
# Arrow data here), and larger blocks would gain little (the per-block cost is a statement and a footer).
ROWS_PER_BLOCK = 1 << 18
# LZ4: as fast to write as no compression (0.16 s for 2M rows) at a third of the size; zstd halves the size
# again but costs 0.07 s more per 2M rows, which the smaller write does not win back.
COMPRESSION = "lz4"
MAX_LABEL_LENGTH = 128
# A label held by fewer customers than both of these is named in a warning at import, and the report's SRM
# check counts the experiment as a mismatch: most likely a typo ('Contrl'), not an arm of the test.
SMALL_ARM_CUSTOMERS = 10
SMALL_ARM_SHARE = 0.01


def is_small_arm(customers: int, total: int) -> bool:
    return customers < SMALL_ARM_CUSTOMERS and customers < SMALL_ARM_SHARE * total


def value_column(position: int) -> str:
    return f"v{position}"


def segment_column(index: int) -> str:
    return f"s{index}"


@dataclass(frozen=True)
class StoredResults:
    """What the stored columns of an imported experiment mean."""

    values: dict[str, str]  # metric or covariate name → column
    segments: dict[str, str]  # segment dimension → column
    variant_ids: dict[str, int]  # label → Variant.id

    @property
    def columns(self) -> dict[str, str]:
        """Every stored column by its meaning: customer_id, variant, each value and each segment by name."""
        return {"customer_id": "customer_id", "variant": "variant", **self.values, **self.segments}


def stored_results(conn: Connection, experiment: Experiment) -> StoredResults:
    """The stored columns of an imported experiment."""
    segments = json.loads(conn.scalar(select(ResultTable.segments).where(ResultTable.experiment_id == experiment.id)))
    positions = {m.name: m.position for m in experiment.metrics
                 if m.role in (MetricRole.METRIC, MetricRole.COVARIATE)}
    return StoredResults({name: value_column(p) for name, p in positions.items()},
                         {name: segment_column(i) for i, name in enumerate(segments)},
                         {v.name: v.id for v in experiment.variants})


def encode_block(rows: pa.Table) -> bytes:
    """One block as stored: a Parquet file, labels and segments dictionary-encoded (thread-safe, and pyarrow
    releases the GIL while it writes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    dictionary = [name for name, type_ in zip(rows.column_names, rows.schema.types, strict=True)
                  if pa.types.is_dictionary(type_)]
    pq.write_table(rows, sink, compression=COMPRESSION, use_dictionary=dictionary, write_statistics=False)
    return sink.getvalue().to_pybytes()


def store_block(connection: Connection, experiment_id: int, seq: int, rows: int, data: bytes) -> None:
    connection.execute(insert(ResultBlock).values(experiment_id=experiment_id, seq=seq, rows=rows, data=data))


def read_results(conn: Connection, experiment: Experiment, names: Sequence[str] | None = None) -> pa.Table:
    """An imported experiment's rows as one Arrow table, in stored order, the columns named by meaning
    (:attr:`StoredResults.columns`): ``names`` of them, or all. ``variant`` holds the labels (see
    :func:`variant_positions`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = stored_results(conn, experiment).columns
    wanted = list(columns) if names is None else list(names)
    physical = [columns[name] for name in wanted]
    blobs = conn.execute(select(ResultBlock.data).where(ResultBlock.experiment_id == experiment.id)
                         .order_by(ResultBlock.seq)).scalars()
    # ParquetFile.read, not pq.read_table, which imports pandas (see numpy_view)
    blocks = [pq.ParquetFile(pa.BufferReader(data)).read(columns=physical) for data in blobs]
    if not blocks:  # (an import stores at least one row)
        return pa.table({name: pa.array([], pa.float64() if column.startswith("v") and column != "variant"
                                         else pa.string()) for name, column in zip(wanted, physical, strict=True)})
    return pa.concat_tables(blocks).rename_columns(wanted)


def variant_positions(experiment: Experiment, labels: pa.ChunkedArray) -> np.ndarray:
    """Each label read by :func:`read_results` as the position of its variant in ``experiment.variants``
    (a block's labels mapped through its own dictionary: a few look-ups per block)."""
    import numpy as np

    positions = {v.name: i for i, v in enumerate(experiment.variants)}
    chunks = []
    for chunk in labels.chunks:
        codes, dictionary = _codes(chunk)
        chunks.append(np.array([positions[label] for label in dictionary], np.int64)[codes])
    return np.concatenate(chunks) if chunks else np.empty(0, np.int64)


NUMPY_TYPES = {"double": "float64", "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64"}


def numpy_view(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A number column without nulls as numpy, sharing its memory where it is one piece. (pyarrow's own
    ``to_numpy`` first imports pandas, 0.3 s, to ask whether it was handed a pandas object.)"""
    import numpy as np
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        if array.num_chunks != 1:
            return np.concatenate([numpy_view(chunk) for chunk in array.chunks] or [np.empty(0)])
        array = array.chunk(0)
    assert array.null_count == 0
    dtype = np.dtype(NUMPY_TYPES[str(array.type)])
    return np.frombuffer(array.buffers()[1], dtype, len(array), array.offset * dtype.itemsize)


def arrow_view(values: np.ndarray) -> pa.Array:
    """A numpy array of numbers as Arrow, sharing its memory (``pa.array`` of it would import pandas, see
    :func:`numpy_view`)."""
    import pyarrow as pa

    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])


def _codes(labels: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """Each row's index into the distinct values, and the distinct values: a dictionary array's own indices
    and dictionary, or the column dictionary-encoded."""
    import pyarrow as pa

    if isinstance(labels, pa.ChunkedArray):
        if labels.num_chunks == 1:
            labels = labels.chunk(0)
        else:
            labels = (labels.cast(pa.string()) if pa.types.is_dictionary(labels.type) else labels).combine_chunks()
    if not pa.types.is_dictionary(labels.type):
        import pyarrow.compute as pc  # (stored labels are dictionary-encoded: a report need not load it)

        labels = pc.dictionary_encode(labels)
    return numpy_view(labels.indices), labels.dictionary.to_pylist()


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

    def add(self, batch: pa.Table) -> None:
        """Add a batch of stored rows (``variant``, the value and the segment columns), summed by numpy per
        cell of its dictionary codes (np.bincount; pyarrow's group_by would import pandas). The variants'
        totals are the first dimension's cells added up, since every row has a value of each segment."""
        import numpy as np

        values = {c: numpy_view(batch[c]) for c in self.values}
        products = []
        for _, factors in sum_terms(self.values):
            product = values[factors[0]]
            for factor in factors[1:]:
                product = product * values[factor]
            products.append(product)
        variants, labels = _codes(batch["variant"])
        variants = variants.astype(np.int64)
        dimensions = list(self.segments.items()) or [(None, "")]
        for index, (column, dimension) in enumerate(dimensions):
            codes, names = _codes(batch[column]) if column else (np.zeros(len(variants), np.int64), [""])
            cells = variants * len(names) + codes
            size = len(labels) * len(names)
            sums = [np.bincount(cells, minlength=size)] + [np.bincount(cells, p, size) for p in products]
            for cell in np.flatnonzero(sums[0]).tolist():
                variant, value = labels[cell // len(names)], names[cell % len(names)]
                for key in [(variant, dimension, value), *([(variant, "", "")] if column and index == 0 else [])]:
                    totals = self.cells.setdefault(key, [0.0] * len(sums))
                    for i, column_sums in enumerate(sums):
                        totals[i] += float(column_sums[cell])

    def counts(self) -> dict[str, int]:
        """Customers per variant label."""
        return {variant: int(cell[0]) for (variant, dimension, _), cell in self.cells.items() if not dimension}

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

"""Segments: the same comparison inside each cohort, value tier or imported segment.

Recall effects differ by who is recalled, and the segment tables are where a team finds that a
coupon works for the recently lapsed and not for the long silent. The database labels every
assigned customer with its segment and returns sufficient statistics per variant × segment; the
statistics are the same as for the whole population, and the p-values are adjusted across all
variants × segments, since many segments are many chances to be fooled.

Designed experiments on Recall Lab's own tables have three dimensions computed at assignment time: ``cohort`` (the lifecycle
stage: new_inactive, dormant_30d, lapsed_1_3m, silent_3m or active), ``value_tier`` (spend tercile)
and ``rfm_tier`` (R + F + M quintile scores: high 12-15, mid 8-11, low 3-7); those read from a team's warehouse
have the customer columns its ``[source]`` names; imported results have the segment columns given
at import. Designed experiments' segments come from the same one-pass cells as their totals
(:class:`analysis.aggregates.Cells`).
"""

from __future__ import annotations

from sqlalchemy import Connection

from analysis.aggregates import ExperimentStatistics, experiment_statistics
from analysis.sufficient import SampleStats
from experiments.models import Experiment, ExperimentSource
from experiments.result_tables import stored_results, stored_sums

SegmentKey = tuple[str, str]  # (dimension, value)


def dimensions(conn: Connection, experiment: Experiment) -> list[str]:
    """Imported segment columns of an imported experiment."""
    return list(stored_results(conn, experiment).segments)


def _imported(conn: Connection, experiment: Experiment, metric: str) -> dict[SegmentKey, dict[int, SampleStats]]:
    """n, Σx, Σx², Σx³ per variant × segment value: read from the sums the import stored."""
    out: dict[SegmentKey, dict[int, SampleStats]] = {}
    for (variant_id, dimension, value), cell in stored_sums(conn, experiment).items():
        if dimension:
            out.setdefault((dimension, value), {})[variant_id] = SampleStats(
                cell.n, cell.sum(metric), cell.sum(metric, metric), cell.sum(metric, metric, metric))
    return dict(sorted(out.items()))


def segment_statistics(conn: Connection, experiment: Experiment, metric: str,
                       statistics: ExperimentStatistics | None = None) -> dict[SegmentKey, dict[int, SampleStats]]:
    """Sufficient statistics of ``metric`` per segment (dimension, value) and variant id; for a designed
    experiment added up from the cells of ``statistics`` (queried when not given)."""
    if experiment.source != ExperimentSource.DESIGNED:
        return _imported(conn, experiment, metric)
    return (statistics or experiment_statistics(conn, experiment)).segments(metric)

"""Speed of the statistics engine on sufficient statistics: 10 variants × 20 metrics.

The full frequentist analysis a report runs after SQL has returned its few rows: every variant
against the control on every metric (two-proportion z with Newcombe intervals for 10 rate metrics,
Welch for 10 amount metrics, relative uplift intervals), Holm across all 180 comparisons, and the
sample-ratio check. Target: ≤ 5 ms. Prints the median and 95th percentile over repeated runs.

    .venv/bin/python benchmarks/stats_engine.py [--variants 10] [--metrics 20] [--repeat 200]

When GrowthBook's gbstats is importable (run with .venv-peers/bin/python, made by
benchmarks/peers/setup.sh: gbstats 0.8.0 pins numpy<2), the same run also times its public entry point
``gbstats.gbstats.process_experiment_results`` on the same table (the same n, Σx, Σx² per variant and
metric; frequentist engine, GrowthBook's default relative difference, equal weights, which includes its
SRM check) and prints both medians and their ratio:

    .venv-peers/bin/python benchmarks/stats_engine.py [--gbstats-repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # .venv has the project installed; .venv-peers only a .pth (same directory)
    sys.path.insert(0, str(ROOT))

from analysis.corrections import adjust_p_values
from analysis.frequentist import compare_many
from analysis.srm import srm_check
from analysis.sufficient import SampleStats
from experiments.models import MetricKind  # noqa: E402

try:
    from gbstats.gbstats import process_experiment_results
except ImportError:  # the default: gbstats 0.8.0 needs numpy<2, Recall Lab's .venv has numpy 2
    process_experiment_results = None

GBSTATS_HINT = ("gbstats not importable here: to time GrowthBook's process_experiment_results in the same run,\n"
                "    sh benchmarks/peers/setup.sh && .venv-peers/bin/python benchmarks/stats_engine.py")


def synthetic(variants: int, metrics: int, seed: int = 1) -> tuple[list[int], list[list[SampleStats]], list[MetricKind]]:
    """Sufficient statistics of a plausible recall test: 1 control + ``variants - 1`` arms."""
    rng = np.random.default_rng(seed)
    sizes = [int(n) for n in rng.integers(90_000, 110_000, size=variants)]
    kinds = [MetricKind.BINARY if m % 2 == 0 else MetricKind.CONTINUOUS for m in range(metrics)]
    arms = []
    for n in sizes:
        row = []
        for kind in kinds:
            if kind == MetricKind.BINARY:
                x = float(rng.binomial(n, 0.08))
                row.append(SampleStats(n, x, x))
            else:
                mean, sd = rng.uniform(3, 8), rng.uniform(20, 60)
                row.append(SampleStats(n, mean * n, (sd * sd + mean * mean) * n))
        arms.append(row)
    return sizes, arms, kinds


def analyse(sizes: list[int], arms: list[list[SampleStats]], kinds: list[MetricKind]) -> None:
    control, treated = arms[0], arms[1:]
    controls = [control[m] for _ in treated for m in range(len(kinds))]
    variants = [arm[m] for arm in treated for m in range(len(kinds))]
    estimates = compare_many(controls, variants, kinds * len(treated))
    adjust_p_values([e.p_value for e in estimates], "holm")
    srm_check(sizes, [1 / len(sizes)] * len(sizes))


def gbstats_input(sizes: list[int], arms: list[list[SampleStats]], kinds: list[MetricKind]) -> dict[str, Any]:
    """The same table as gbstats' ``process_experiment_results`` input: one query-result row per variation
    with users and m{i}_main_sum / m{i}_main_sum_squares per metric; binary metrics as "binomial", amounts
    as "count" (gbstats' name for a mean of per-user values); GrowthBook's default relative difference."""
    ids = [str(i) for i in range(len(sizes))]
    metrics = {f"m{j}": {"id": f"m{j}", "name": f"metric {j}", "statistic_type": "mean",
                         "main_metric_type": "binomial" if kind == MetricKind.BINARY else "count"}
               for j, kind in enumerate(kinds)}
    rows = []
    for i, (n, row) in enumerate(zip(sizes, arms, strict=True)):
        r: dict[str, Any] = {"dimension": "All", "variation": ids[i], "users": n}
        for j, s in enumerate(row):
            r[f"m{j}_main_sum"], r[f"m{j}_main_sum_squares"] = float(s.sum), float(s.sum_sq)
        rows.append(r)
    analysis = {"var_names": [f"variant {i}" for i in ids], "var_ids": ids, "weights": [1 / len(ids)] * len(ids),
                "stats_engine": "frequentist", "difference_type": "relative", "alpha": 0.05}
    return {"metrics": metrics, "analyses": [analysis],
            "query_results": [{"rows": rows, "metrics": list(metrics)}]}


def timed(run, repeat: int) -> list[float]:
    run()  # warm up imports and caches
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=10)
    parser.add_argument("--metrics", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--gbstats-repeat", type=int, default=20,
                        help="runs of gbstats' process_experiment_results, when gbstats is importable")
    args = parser.parse_args()
    data = synthetic(args.variants, args.metrics)
    times = timed(lambda: analyse(*data), args.repeat)
    ours = statistics.median(times)
    print(f"{args.variants} variants × {args.metrics} metrics ({(args.variants - 1) * args.metrics} comparisons): "
          f"median {ours:.2f} ms, p95 {times[int(0.95 * len(times)) - 1]:.2f} ms "
          f"(target ≤ 5 ms)")
    if process_experiment_results is None:
        print(GBSTATS_HINT)
        return
    from importlib.metadata import version

    payload = gbstats_input(*data)
    results = process_experiment_results(payload)
    compared = sum(len(d["variations"]) - 1 for m in results for a in m["analyses"] for d in a["dimensions"])
    assert compared == (args.variants - 1) * args.metrics, compared  # the same table, every comparison
    peer = timed(lambda: process_experiment_results(payload), args.gbstats_repeat)
    theirs = statistics.median(peer)
    print(f"gbstats {version('gbstats')} process_experiment_results, same table ({compared} comparisons, "
          f"frequentist, relative, SRM): median {theirs:.1f} ms, p95 {peer[int(0.95 * len(peer)) - 1]:.1f} ms "
          f"over {args.gbstats_repeat} runs")
    print(f"ratio gbstats / Recall Lab: {theirs / ours:.0f}× (numpy {np.__version__}; same process, same machine)")


if __name__ == "__main__":
    main()

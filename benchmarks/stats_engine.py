"""Speed of the statistics engine on sufficient statistics: 10 variants × 20 metrics.

The full frequentist analysis a report runs after SQL has returned its few rows: every variant
against the control on every metric (two-proportion z with Newcombe intervals for 10 rate metrics,
Welch for 10 amount metrics, relative uplift intervals), Holm across all 180 comparisons, and the
sample-ratio check. Target: ≤ 5 ms. Prints the median and 95th percentile over repeated runs.

    .venv/bin/python benchmarks/stats_engine.py [--variants 10] [--metrics 20] [--repeat 200]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from analysis.corrections import adjust_p_values
from analysis.frequentist import compare_many
from analysis.srm import srm_check
from analysis.sufficient import SampleStats
from experiments.models import MetricKind


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=10)
    parser.add_argument("--metrics", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    data = synthetic(args.variants, args.metrics)
    analyse(*data)  # warm up imports and caches
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        analyse(*data)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    print(f"{args.variants} variants × {args.metrics} metrics ({(args.variants - 1) * args.metrics} comparisons): "
          f"median {statistics.median(times):.2f} ms, p95 {times[int(0.95 * len(times)) - 1]:.2f} ms "
          f"(target ≤ 5 ms)")


if __name__ == "__main__":
    main()

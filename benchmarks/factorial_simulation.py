"""Coverage and false-positive rate of the factorial analysis, by simulation on cell sums.

A 2×2×2 (coupon × wording × send hour) with unequal cell sizes and true effects: coupon +2 pt,
wording 0 (the null factor), send hour +1 pt and a coupon × send hour interaction of +1.5 pt, on a
6% base return rate. Each replicate draws every cell's returns (binomial), and the analysis's own
contrasts (analysis.factorial.contrast) give each effect's 95% interval. Prints the share of intervals
that cover the truth, the null factor's false-positive rate (nominal 5%), and the power on coupon.
The suite runs 2,000 replicates (tests/test_factorial_analysis.py); the result for the default
20,000 is in docs/statistics/factorial.md.

    .venv/bin/python benchmarks/factorial_simulation.py [--replicates 20000] [--seed 20261130]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.factorial import contrast, interaction_weights, main_effect_weights  # noqa: E402
from analysis.sufficient import SampleStats  # noqa: E402
from experiments.factorial import design_from_levels  # noqa: E402

LEVELS = {"coupon": ("5", "10"), "wording": ("lively", "professional"), "send_hour": ("10", "20")}
Z = 1.959963984540054


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=20261130)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    cells, stats, truth = {}, {}, {}
    for i, combo in enumerate(itertools.product(*LEVELS.values())):
        coupon, _, evening = (level == LEVELS[f][1] for f, level in zip(LEVELS, combo, strict=True))
        p = 0.06 + 0.0125 * coupon + 0.0025 * evening + 0.015 * (coupon and evening)
        n = 1500 + 250 * i  # unequal cells: 1,500 to 3,250 customers
        name = "_".join(combo)
        cells[name] = dict(zip(LEVELS, combo, strict=True))
        x = rng.binomial(n, p, size=args.replicates).astype(float)
        stats[name], truth[name] = SampleStats(np.full(args.replicates, n), x, x), p
    design = design_from_levels(cells)
    effects = {
        "coupon 10 vs 5": main_effect_weights(design, "coupon", "10"),
        "wording professional vs lively (null)": main_effect_weights(design, "wording", "professional"),
        "send_hour 20 vs 10": main_effect_weights(design, "send_hour", "20"),
        "coupon × send_hour": interaction_weights(design, ("coupon", "send_hour"), ("10", "20")),
        "coupon × wording (null)": interaction_weights(design, ("coupon", "wording"), ("10", "professional")),
    }
    print(f"{args.replicates:,} replicates, seed {args.seed}")
    print(f"{'effect':40} {'true':>8} {'coverage':>9} {'rejects 0':>10}")
    for label, weights in effects.items():
        true = sum(w * truth[c] for c, w in weights.items())
        estimate, se = contrast(weights, stats)
        coverage = np.mean(np.abs(estimate - true) <= Z * se)
        rejects = np.mean(np.abs(estimate / se) > Z)
        print(f"{label:40} {true:+8.4f} {coverage:9.4f} {rejects:10.4f}")


if __name__ == "__main__":
    main()

"""Uplift targeting at scale, and the policy estimator's coverage.

Speed (``--customers``, default 1M): learning, choosing and evaluating the targeting model
(:func:`analysis.targeting.evaluate`: T- and X-learner cross-fitted, the response model, Qini/AUUC with
200 bootstrap replicates, the policy table, permutation importance) on simulated customers with the ten
features a designed experiment has (lifecycle stage, days inactive, days since sign-up, orders and spend
before, city, RFM scores, value tier), a 10% holdout and effects only repeat buyers show. Target: under
2 minutes on a 2-core machine. Prints wall and CPU seconds of each run, their median and range, and the
load average (the machine this was written on is shared: wall time there is not the machine's speed).
The feature query itself is not timed here (one SQL query; see the README).

Coverage (``--coverage R``): R simulated experiments with a known uplift; each time the model is
learned (cross-fitted) and the policy "contact the top 30%" (and 100%) is valued with its 95% interval;
prints the share of intervals that contain the true incremental returns of that selection, and the bias.

    .venv/bin/python benchmarks/targeting.py [--customers 1000000] [--repeat 3]
    .venv/bin/python benchmarks/targeting.py --coverage 100 --customers 10000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.targeting import Costs, evaluate, top_share  # noqa: E402

STAGES = ["new_inactive", "dormant_30d", "lapsed_1_3m", "silent_3m"]
CITIES = ["上海", "北京", "广州", "深圳", "杭州", "成都", "武汉", "南京", "西安", "重庆"]


def simulate(n: int, seed: int, holdout: float = 0.1) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray,
                                                              np.ndarray]:
    """Customers like the demo's: natural return by stage; the message works on repeat buyers only."""
    rng = np.random.default_rng(seed)
    stage = rng.choice(4, n, p=[0.12, 0.22, 0.33, 0.33])
    orders = rng.poisson(3, n).astype(float)
    X = pd.DataFrame({
        "lifecycle_stage": pd.Categorical(np.array(STAGES)[stage]),
        "days_inactive": rng.uniform(3, 400, n).round(),
        "days_since_signup": rng.uniform(30, 900, n).round(),
        "orders_before": orders,
        "spend_before": (orders * rng.lognormal(np.log(80), 0.6, n)).round(2),
        "city": pd.Categorical(rng.choice(CITIES, n)),
        "recency": rng.integers(1, 6, n).astype(float),
        "frequency": rng.integers(1, 6, n).astype(float),
        "monetary": rng.integers(1, 6, n).astype(float),
        "value_tier": pd.Categorical(rng.choice(["low", "mid", "high"], n)),
    })
    treated = rng.random(n) >= holdout
    natural = np.array([0.08, 0.12, 0.07, 0.03])[stage]
    tau = np.where(orders >= 5, 0.06, 0.005)
    returned = (rng.random(n) < natural + treated * tau).astype(float)
    revenue = returned * rng.lognormal(np.log(80), 0.6, n)
    return X, treated, returned, revenue, tau


def speed(customers: int, repeat: int) -> None:
    walls, cpus = [], []
    for r in range(repeat):
        X, treated, y, revenue, _ = simulate(customers, seed=r)
        wall, cpu = time.perf_counter(), time.process_time()
        result = evaluate(X, treated, y, metric="returned", variant="sms", returned=y, revenue=revenue,
                          redeemed=None, costs=Costs(contact=0.05, coupon=5), seed=r)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        e = result.evaluation
        print(f"run {r + 1}: {customers:,} customers  wall {walls[-1]:6.1f} s  cpu {cpus[-1]:6.1f} s  "
              f"({e.estimator}, Qini {e.qini:.3f} [{e.qini_ci[0]:.3f}, {e.qini_ci[1]:.3f}], "
              f"folds {e.folds}, load {os.getloadavg()[0]:.1f})", flush=True)
    print(f"median wall {statistics.median(walls):.1f} s (range {min(walls):.1f}–{max(walls):.1f}); "
          f"median cpu {statistics.median(cpus):.1f} s (range {min(cpus):.1f}–{max(cpus):.1f}); "
          f"{os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")


def coverage(replicates: int, customers: int) -> None:
    hits = {0.3: 0, 1.0: 0}
    errors: dict[float, list[float]] = {0.3: [], 1.0: []}
    for r in range(replicates):
        X, treated, y, revenue, tau = simulate(customers, seed=1000 + r, holdout=0.5)
        # The estimator's coverage does not depend on the learner: one learner, 3 folds, to keep this short.
        result = evaluate(X, treated, y, metric="returned", variant="sms", returned=y, revenue=revenue,
                          redeemed=None, costs=Costs(contact=0.05), replicates=20, seed=r,
                          learners=("t-learner",), folds=3)
        for point in result.evaluation.policy:
            if point.share in hits:
                truth = tau[top_share(result.scores, point.share)].sum()
                hits[point.share] += point.ci[0] <= truth <= point.ci[1]
                errors[point.share].append(point.incremental_returns - truth)
        if (r + 1) % 10 == 0:
            print(f"{r + 1} replicates: covered {hits}", flush=True)
    for share in hits:
        e = np.array(errors[share])
        print(f"top {share:.0%}: coverage of 95% intervals {hits[share] / replicates:.3f} over {replicates} "
              f"replicates; mean error {e.mean():+.2f} (s.e. {e.std(ddof=1) / np.sqrt(e.size):.2f}) returns")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--coverage", type=int, default=0, help="replicates of the coverage study (0: speed)")
    args = parser.parse_args()
    if args.coverage:
        coverage(args.coverage, args.customers)
    else:
        speed(args.customers, args.repeat)


if __name__ == "__main__":
    main()

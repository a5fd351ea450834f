"""How fast each page of the app renders with 200 experiments in the database.

Builds a SQLite database with the demo campaign plus 197 imported experiments (small results files
of 2,000 customers each), renders the Overview once to compute and store every report (the first
visit ever), then renders every page with Streamlit's AppTest after a restart (caches emptied; the
stored analysis runs are read back) and warm (what every later visit or click costs). Target: each
page renders in under 1 s.

    .venv/bin/python benchmarks/app_pages.py [--experiments 200] [--db sqlite:///...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["overview", "experiments", "design", "results", "settings"]


def build(url: str, experiments: int) -> None:
    from experiments.db import open_engine
    from experiments.demo import build_demo
    from experiments.access import cli_actor
    from experiments.importer import import_results

    engine = open_engine(url)
    summary = build_demo(engine, customers=20_000)
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as folder:
        for i in range(experiments - len(summary.experiments)):
            n = 2_000
            arm = np.where(rng.random(n) < 0.1, "holdout", np.where(rng.random(n) < 0.5, "sms_c5", "sms_c10"))
            returned = rng.random(n) < np.where(arm == "holdout", 0.06, 0.08)
            revenue = np.where(returned, np.round(rng.lognormal(4, 0.6, n), 2), 0)
            path = Path(folder) / f"campaign-{i:03d}.csv"
            path.write_text("arm,returned,revenue\n" + "".join(
                f"{a},{int(r)},{v}\n" for a, r, v in zip(arm, returned, revenue, strict=True)), encoding="utf-8")
            import_results(engine, path, experiment=f"campaign-{i:03d}", variant_column="arm", control="holdout",
                           metrics=["returned", "revenue"], shares={"holdout": 0.1, "sms_c5": 0.45, "sms_c10": 0.45},
                           channel="sms", actor=cli_actor())


def render(page: str, *, cold: bool = False) -> float:
    """Seconds to render ``page`` in a new session; ``cold`` empties the caches first."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    if cold:
        st.cache_data.clear()
        st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    if page != "overview":
        at.switch_page(f"views/{page}.py")
    start = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - start
    assert not at.exception, [e.value for e in at.exception]
    assert at.title, f"{page} did not render"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=200)
    parser.add_argument("--db", default=None, help="database URL (default: a new SQLite file)")
    args = parser.parse_args()
    url = args.db or f"sqlite:///{tempfile.mkdtemp()}/pages.db"
    os.environ.update(RECALL_DATABASE_URL=url, RECALL_NO_DEMO="1")
    started = time.perf_counter()
    build(url, args.experiments)
    print(f"built {args.experiments} experiments in {time.perf_counter() - started:.1f} s ({url})")
    print(f"first visit ever (computes and stores {args.experiments} reports): {render('overview', cold=True):.1f} s")
    print(f"{'page':<12} {'restart (s)':>12} {'warm median (s)':>16} {'warm max (s)':>13}")
    for page in PAGES:
        restart = render(page, cold=True)
        warm = [render(page) for _ in range(5)]
        flag = "" if max(restart, *warm) < 1 else "  <- over 1 s"
        print(f"{page:<12} {restart:>12.2f} {statistics.median(warm):>16.3f} {max(warm):>13.3f}{flag}")


if __name__ == "__main__":
    main()

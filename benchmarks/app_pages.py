"""How fast each page of the app renders with 200 experiments in the database.

Builds a SQLite database with the demo campaign plus 197 imported experiments (small results files
of 2,000 customers each), renders the Overview once to compute and store every report (the first
visit ever), then renders every page with Streamlit's AppTest after a restart (caches emptied; the
stored analysis runs are read back) and warm (what every later visit or click costs). Target: each
page renders in under 1 s.

``--large`` builds instead a database of two large experiments (issue 15): a simulated, running,
designed campaign of ``--designed`` customers (1M: assignments, sends, about three events each) and an
imported per-customer results file of ``--imported`` customers (2M: an outcome, revenue, a covariate, a
cohort), and times the same pages, each experiment's Results page among them. ``--reuse`` keeps a
database already built at ``--db`` (building the large one takes minutes).

    .venv/bin/python benchmarks/app_pages.py [--experiments 200] [--db sqlite:///...]
    .venv/bin/python benchmarks/app_pages.py --large --db sqlite:////tmp/large.db [--reuse]
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


ADMIN = "bench-admin"


def signed_in_admin(url: str) -> None:
    """The admin the pages are rendered for (the app shows nobody anything before signing in)."""
    from experiments.access import Role, cli_actor
    from experiments.db import open_engine
    from experiments.users import add_user, get_user

    engine = open_engine(url)
    if get_user(engine, ADMIN) is None:
        add_user(engine, ADMIN, "bench-password-1234", Role.ADMIN, actor=cli_actor())


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


LARGE_DESIGNED, LARGE_IMPORTED = "bulk-designed", "bulk-imported"


def build_large(url: str, designed: int, imported: int) -> None:
    """A simulated running campaign of ``designed`` customers and imported results of ``imported``."""
    import sys

    from experiments.access import cli_actor
    from experiments.db import open_engine
    from experiments.importer import import_results
    from experiments.simulate import simulate

    simulate(url, designed, name=LARGE_DESIGNED, chunk=min(designed, 1_000_000))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "results.csv"
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from imports import write_results  # a sibling script: the results file

        write_results(path, imported)
        import_results(open_engine(url), path, experiment=LARGE_IMPORTED, variant_column="variant",
                       control="control", metrics=["converted", "revenue"], covariates=["pre_spend"],
                       segments=["cohort"], id_column="customer_id", actor=cli_actor())


def render(page: str, *, cold: bool = False, experiment: str | None = None) -> float:
    """Seconds to render ``page`` in a new session; ``cold`` empties the caches first."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    if cold:
        st.cache_data.clear()
        st.cache_resource.clear()
    from experiments.access import Actor, Role
    from views.auth import SESSION, session_record

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.session_state[SESSION] = session_record(Actor(ADMIN, Role.ADMIN, "app"))  # signed in, as the form does
    if experiment:
        at.session_state["experiment"] = experiment  # the Results page opens the experiment last looked at
    if page != "overview":
        at.switch_page(f"views/{page}.py")
    start = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - start
    assert not at.exception, [e.value for e in at.exception]
    assert at.title and "登录" not in at.title[0].value, f"{page} did not render"
    if experiment:
        assert at.selectbox(key="results_exp").value == experiment, f"{experiment} not shown"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=200)
    parser.add_argument("--db", default=None, help="database URL (default: a new SQLite file)")
    parser.add_argument("--large", action="store_true", help="a 1M-customer designed and a 2M imported experiment")
    parser.add_argument("--designed", type=int, default=1_000_000)
    parser.add_argument("--imported", type=int, default=2_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep the database already built at --db")
    args = parser.parse_args()
    url = args.db or f"sqlite:///{tempfile.mkdtemp()}/pages.db"
    os.environ.update(RECALL_DATABASE_URL=url, RECALL_NO_DEMO="1")
    started = time.perf_counter()
    if not args.reuse:
        if args.large:
            build_large(url, args.designed, args.imported)
        else:
            build(url, args.experiments)
    signed_in_admin(url)
    what = f"{args.designed:,} designed + {args.imported:,} imported customers" if args.large else \
        f"{args.experiments} experiments"
    print(f"built {what} in {time.perf_counter() - started:.1f} s ({url}); load average {os.getloadavg()[0]:.1f}")
    print(f"first visit ever (computes the reports): {render('overview', cold=True):.1f} s")
    views = [(page, None) for page in PAGES]
    if args.large:  # each experiment's own Results page (its first visit computes its report)
        views += [("results", name) for name in (LARGE_DESIGNED, LARGE_IMPORTED)]
        for name in (LARGE_DESIGNED, LARGE_IMPORTED):
            print(f"first visit of {name}'s results: {render('results', cold=False, experiment=name):.1f} s")
    print(f"{'page':<32} {'restart (s)':>12} {'warm median (s)':>16} {'warm max (s)':>13}")
    for page, experiment in views:
        restart = render(page, cold=True, experiment=experiment)
        warm = [render(page, experiment=experiment) for _ in range(5)]
        flag = "" if max(restart, *warm) < 1 else "  <- over 1 s"
        label = page + (f" ({experiment})" if experiment else "")
        print(f"{label:<32} {restart:>12.2f} {statistics.median(warm):>16.3f} {max(warm):>13.3f}{flag}")
    print(f"(load average at the end: {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()

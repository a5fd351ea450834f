"""First start: seconds from ``recall app`` on an empty database until the Overview shows data.

What a newcomer waits for after ``make app`` has installed everything: ``recall app`` migrates the
empty SQLite database, builds the demo (100,000 simulated customers; RECALL_NO_DEMO unset), starts
Streamlit, and the first Overview is computed. An admin is created beforehand so nothing prompts.
Each run uses a fresh database; a real Chromium (Playwright) signs in and waits for the Overview's
first experiment card. Prints each run and the median.

    .venv/bin/python benchmarks/first_start.py [--runs 3] [--customers 100000]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("RECALL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ADMIN, PASSWORD = "admin", "correct horse battery"
SHOWS_DATA = "Natural return rate"  # on every campaign card of the Overview: the first card is data
COMPLETE = [f"{name} ·" for name in ("demo-dormant-push-vs-sms", "demo-welcome-coupon", "demo-winback-2026",
                                      "demo-repeat-buyers")]  # every campaign's headline: the whole demo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def empty_database(folder: Path) -> str:
    """A migrated, empty SQLite database with one admin (so ``recall app`` asks nothing)."""
    from experiments.access import Role, cli_actor
    from experiments.db import open_engine
    from experiments.users import add_user

    url = f"sqlite:///{folder / 'recall.db'}"
    engine = open_engine(url)
    add_user(engine, ADMIN, PASSWORD, Role.ADMIN, actor=cli_actor())
    engine.dispose()
    return url


def wait_for_server(url: str, process: subprocess.Popen, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"recall app exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
                if response.status == 200:
                    return time.monotonic()
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the server did not answer in time")


def wait_for_text(page, text: str | list[str], start: float, timeout: float) -> float:  # noqa: ANN001 - a page
    """Seconds from ``start`` until ``text`` (each of a list) is in the page's visible text (polled every 0.25 s)."""
    deadline = start + timeout
    wanted = [text] if isinstance(text, str) else text
    while time.monotonic() < deadline:
        body = page.inner_text("body")
        if all(w in body for w in wanted):
            return time.monotonic() - start
        page.wait_for_timeout(250)
    raise RuntimeError(f"no {text!r} on the page after {timeout:.0f} s")


def one_run(customers: int, timeout: float) -> tuple[float, float, float]:
    """Seconds from the start until the server answers, the Overview shows data, and it shows the
    whole demo (the build goes on in the background; the page redraws as campaigns are ready)."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        url_db = empty_database(Path(folder))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k != "RECALL_NO_DEMO"}
        env |= {"RECALL_DATABASE_URL": url_db, "RECALL_LANG": "en", "RECALL_DEMO_CUSTOMERS": str(customers),
                "PYTHONPATH": str(ROOT)}
        command = [str(Path(sys.executable).with_name("recall")), "app", "--port", str(port)]
        start = time.monotonic()
        log = Path(folder) / "server.log"
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                                   stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            answered = wait_for_server(url, process, timeout) - start
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
                page = browser.new_page(viewport={"width": 1440, "height": 2000})
                page.set_default_timeout(timeout * 1000)
                page.goto(url)
                page.get_by_label("User name").fill(ADMIN)
                page.get_by_label("Password", exact=True).fill(PASSWORD)
                page.get_by_role("button", name="Sign in", exact=True).click()
                shown = wait_for_text(page, SHOWS_DATA, start, timeout)
                complete = wait_for_text(page, COMPLETE, start, timeout)
                browser.close()
        except RuntimeError:  # what the server and its demo builder said, to see why
            print(log.read_text(errors="replace")[-4000:], file=sys.stderr)
            raise
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return answered, shown, complete


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    shown, whole = [], []
    for run in range(1, args.runs + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        answered, data, complete = one_run(args.customers, args.timeout)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        shown.append(data)
        whole.append(complete)
        print(f"run {run}: server answers after {answered:.1f} s, the Overview shows data after {data:.1f} s, "
              f"the whole demo after {complete:.1f} s (CPU of the app, its demo builder and Chromium: {cpu:.1f} s; "
              f"load average {os.getloadavg()[0]:.2f})", flush=True)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"median: {statistics.median(shown):.1f} s until the Overview shows data, "
          f"{statistics.median(whole):.1f} s until the whole demo "
          f"({args.runs} runs, {os.cpu_count()} cores, {args.customers:,} demo customers, load average {load})")


if __name__ == "__main__":
    main()

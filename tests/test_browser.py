"""End to end in a real browser: Playwright driving Debian's Chromium against `streamlit run app.py`.

Opens the app on the demo data, creates a draft through the Design form, opens results, and saves
screenshots under test-output/. Skipped, with the reason, only when no Chromium can be found.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from experiments.demo import build_demo

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "test-output"
CHROMIUM = os.environ.get("RECALL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app_url(engine: Engine, database_url: str) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium package (.ci/run does)")
    build_demo(engine, customers=4_000, today=datetime(2026, 11, 23, 4, 0))
    port = free_port()
    env = {**os.environ, "RECALL_DATABASE_URL": database_url, "RECALL_NO_DEMO": "1", "RECALL_LANG": "en"}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(60):
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("the app did not start")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def page(app_url: str):  # noqa: ANN201 - playwright Page
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1440, "height": 2200})
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def test_demo_draft_and_results_in_a_real_browser(page, app_url: str) -> None:  # noqa: ANN001
    OUTPUT.mkdir(exist_ok=True)
    page.goto(app_url)
    page.get_by_text("Recall vs the natural return rate").wait_for()
    page.get_by_text("demo-winback-2026").first.wait_for()
    page.locator("[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg").first.wait_for()
    page.wait_for_timeout(1000)
    page.screenshot(path=str(OUTPUT / "overview.png"))

    page.goto(f"{app_url}/design")
    page.get_by_text("Design an experiment").wait_for()
    page.get_by_label("Name (letters, digits, -, _)").fill("browser-draft")
    page.get_by_label("Hypothesis").fill("A ¥10 SMS at 20:00 beats ¥5 at 10:00")
    page.get_by_role("button", name="Save draft").click()
    page.get_by_text("Draft “browser-draft” saved").wait_for()
    page.screenshot(path=str(OUTPUT / "design.png"))

    page.goto(f"{app_url}/experiments")
    page.get_by_text("Experiments").first.wait_for()
    page.get_by_text("of 4 experiments").wait_for()  # the three demo campaigns and the new draft

    page.goto(f"{app_url}/results")
    page.get_by_text("Significance", exact=True).wait_for()
    page.get_by_text("The split matches the design").wait_for()
    page.wait_for_timeout(1500)  # let the charts draw
    page.screenshot(path=str(OUTPUT / "results.png"))
    assert (OUTPUT / "results.png").stat().st_size > 10_000

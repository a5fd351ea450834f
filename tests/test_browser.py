"""End to end in a real browser: Playwright driving Debian's Chromium against `streamlit run app.py`.

One server for the module. An anonymous visitor sees only the sign-in form on every URL; each role
signs in and finds what it may do, and not what it may not (a viewer has no Design page and no
downloads; an operator creates a draft and launches it after a confirmation naming the audience; an
admin has Settings). Screenshots go to test-output/. Skipped, with the reason, only when no Chromium
can be found.
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

from experiments.access import Role, cli_actor
from experiments.db import make_engine
from experiments.demo import build_demo
from experiments.users import add_user
from tests.conftest import fresh_database
from tests.helpers import add_customers
from views.auth import COOKIE

PASSWORD = "correct horse battery"

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "test-output"
CHROMIUM = os.environ.get("RECALL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server for the module (a browser test costs seconds): the demo, one account per role, and 300
    customers no campaign holds, so an operator's launch assigns someone."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium package (.ci/run does)")
    database_url = fresh_database(tmp_path_factory.mktemp("browser"))
    engine = make_engine(database_url)
    build_demo(engine, customers=4_000, today=datetime(2026, 11, 23, 4, 0))
    add_customers(engine, [f"N{i:04d}" for i in range(300)])
    for role in Role:
        add_user(engine, role.value, PASSWORD, role, actor=cli_actor())
    engine.dispose()
    port = free_port()
    env = {**os.environ, "RECALL_DATABASE_URL": database_url, "RECALL_LANG": "en"}
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


@pytest.fixture(scope="module")
def browser(app_url: str):  # noqa: ANN201 - playwright Browser
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield browser
        browser.close()


def new_page(browser):  # noqa: ANN001, ANN201 - a fresh context: a new Streamlit session, nobody signed in
    page = browser.new_context(viewport={"width": 1440, "height": 2200}).new_page()
    page.set_default_timeout(60_000)
    return page


def sign_in(browser, url: str, role: str):  # noqa: ANN001, ANN201
    """Sign in at ``url`` (every URL shows the form, and after signing in its page)."""
    page = new_page(browser)
    page.goto(url)
    page.get_by_label("User name").fill(role)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_text(f"Signed in: {role}").wait_for()
    # The session's cookie is written by a script the page runs after drawing: a reload before it (a
    # machine under load) would find no session.
    page.wait_for_function(f"document.cookie.includes('{COOKIE}=')")
    return page


@pytest.fixture
def page(browser, app_url: str):  # noqa: ANN001, ANN201 - a page signed in as an analyst (reads everything)
    page = sign_in(browser, app_url, "analyst")
    yield page
    page.context.close()


def open_from_sidebar(page, title: str) -> None:  # noqa: ANN001
    page.locator("[data-testid='stSidebarNav'] a", has_text=title).click()


def nav_links(page) -> set[str]:  # noqa: ANN001
    page.locator("[data-testid='stSidebarNav']").wait_for()
    return {t.strip().splitlines()[-1] for t in page.locator("[data-testid='stSidebarNav'] a").all_inner_texts()}  # icon, title


def test_an_anonymous_visitor_sees_only_the_sign_in_form(browser, app_url: str) -> None:  # noqa: ANN001
    page = new_page(browser)
    for path in ("", "/overview", "/experiments", "/design", "/results", "/settings"):
        page.goto(f"{app_url}{path}")
        page.get_by_text("Recall Lab · sign in").wait_for()
        page.get_by_role("button", name="Sign in", exact=True).wait_for()
        page.wait_for_timeout(500)
        body = page.locator("body").inner_text()
        assert "demo-" not in body and "Natural return rate" not in body and "sqlite" not in body, path
        assert not page.locator("[data-testid='stSidebarNav']").count(), path
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "sign-in.png"))


def test_a_viewer_reads_and_takes_nothing_away(browser, app_url: str) -> None:  # noqa: ANN001
    page = sign_in(browser, f"{app_url}/design", "viewer")  # not a viewer's page: the Overview opens instead
    page.get_by_text("Recall vs the natural return rate").wait_for()
    assert not page.get_by_text("Design an experiment").count()
    assert nav_links(page) == {"Overview", "Experiments", "Results"}
    open_from_sidebar(page, "Results")
    page.get_by_text("Significance", exact=True).wait_for()
    page.wait_for_timeout(1000)
    assert not page.locator("[data-testid='stDownloadButton']").count()


def test_an_analyst_downloads_reports(browser, app_url: str) -> None:  # noqa: ANN001
    page = sign_in(browser, f"{app_url}/results", "analyst")
    assert nav_links(page) == {"Overview", "Experiments", "Results", "Targeting"}
    page.get_by_text("Significance", exact=True).wait_for()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download report (JSON)").click()
    assert download.value.suggested_filename.endswith(".json")


def test_an_operator_designs_and_launches_after_confirming(browser, app_url: str) -> None:  # noqa: ANN001
    OUTPUT.mkdir(exist_ok=True)
    page = sign_in(browser, app_url, "operator")
    page.get_by_text("demo-winback-2026").first.wait_for()
    page.locator("[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg").first.wait_for()
    page.wait_for_timeout(1000)
    assert nav_links(page) == {"Overview", "Experiments", "Design", "Results", "Targeting"}

    open_from_sidebar(page, "Design")
    page.get_by_text("Design an experiment").wait_for()
    page.get_by_label("Name (letters, digits, -, _)").fill("browser-draft")
    page.get_by_label("Hypothesis").fill("A ¥10 SMS at 20:00 beats ¥5 at 10:00")
    page.get_by_role("button", name="Save draft").click()
    page.get_by_text("Draft “browser-draft” saved").wait_for()
    page.get_by_role("button", name="Launch (assign customers and lock the design)").click()
    page.get_by_text("Launch “browser-draft”? It assigns 300 customers").wait_for()
    page.screenshot(path=str(OUTPUT / "design.png"))
    page.get_by_role("button", name="Confirm launch").click()
    page.get_by_text("Launched: 300 customers assigned").wait_for()

    open_from_sidebar(page, "Results")
    page.get_by_text("Significance", exact=True).wait_for()
    page.get_by_text("Verdict:").first.wait_for()  # the verdict first (no split check without data)
    page.wait_for_timeout(1500)  # let the charts draw
    page.screenshot(path=str(OUTPUT / "results-operator.png"))
    assert (OUTPUT / "results-operator.png").stat().st_size > 10_000


def test_a_session_survives_a_reload_and_ends_with_signing_out(browser, app_url: str) -> None:  # noqa: ANN001
    page = sign_in(browser, app_url, "viewer")
    page.goto(f"{app_url}/results")  # a new connection: the cookie's token finds the session
    page.get_by_text("Significance", exact=True).wait_for()
    page.get_by_role("button", name="Sign out").click()
    page.get_by_text("Recall Lab · sign in").wait_for()
    page.wait_for_timeout(500)
    page.goto(f"{app_url}/results")
    page.get_by_role("button", name="Sign in", exact=True).wait_for()
    assert not page.get_by_text("Significance", exact=True).count()


def test_an_admin_sees_users_the_audit_log_and_the_database(browser, app_url: str) -> None:  # noqa: ANN001
    page = sign_in(browser, f"{app_url}/settings", "admin")  # the link opens its page after signing in
    assert nav_links(page) == {"Overview", "Experiments", "Design", "Results", "Targeting", "Settings"}
    page.get_by_text("Audit log", exact=True).wait_for()
    page.get_by_text("Users and roles").wait_for()
    assert page.locator("[data-testid='stCode']").first.inner_text().startswith(("sqlite", "postgresql"))


def test_results_and_overview_in_both_languages_keep_the_language_and_the_experiment(browser, app_url: str
                                                                                     ) -> None:  # noqa: ANN001
    """A permalink opens its experiment; the verdict comes first; the language survives a switch of
    page and a reload. The screenshots are the README's (docs/img/)."""
    OUTPUT.mkdir(exist_ok=True)
    page = sign_in(browser, f"{app_url}/results?experiment=demo-welcome-coupon&lang=en", "analyst")
    page.get_by_text("Verdict: Keep running").wait_for()
    page.get_by_text("Significance", exact=True).wait_for()
    page.wait_for_timeout(1500)  # let the charts draw
    page.screenshot(path=str(OUTPUT / "results-welcome.png"))
    page.goto(f"{app_url}/results?experiment=demo-winback-2026&lang=en")
    page.get_by_text("Verdict: Ship c10_lively_20h").wait_for()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(OUTPUT / "results.png"))

    page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").first.click()
    page.get_by_role("option", name="中文").click()
    page.get_by_text("结论：上线 c10_lively_20h").wait_for()
    page.wait_for_function("() => location.search.includes('lang=zh')")
    page.reload()
    page.get_by_text("结论：上线 c10_lively_20h").wait_for()  # a reload keeps the language and the experiment
    page.wait_for_timeout(1500)
    page.screenshot(path=str(OUTPUT / "results-zh.png"))

    open_from_sidebar(page, "总览")
    page.get_by_text("已证实的效果").wait_for()
    page.wait_for_function("() => location.search.includes('lang=zh')")
    page.locator("[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg").first.wait_for()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(OUTPUT / "overview-zh.png"))
    page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").first.click()
    page.get_by_role("option", name="English").click()
    page.get_by_text("Proven effects").wait_for()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(OUTPUT / "overview.png"))
    body = page.locator("body").inner_text()
    assert "nan" not in body.split() and "ROI unproven" in body


def test_the_design_page_checks_as_the_user_types_and_survives_a_language_switch(browser, app_url: str) -> None:  # noqa: ANN001
    page = sign_in(browser, app_url, "operator")
    open_from_sidebar(page, "Design")
    page.get_by_text("Design an experiment").wait_for()
    page.get_by_text("factors (a factorial design)").click()
    hour = page.get_by_label("Send hour")
    hour.fill("10, 23")
    hour.press("Tab")  # no submit: leaving the field is enough
    page.get_by_text("quiet hours").first.wait_for()
    assert page.get_by_text("The design has problems").count() >= 1
    assert page.get_by_text("saved").count() == 0  # nothing was stored
    page.screenshot(path=str(OUTPUT / "design-live.png"))

    # The language switch used to break the guardrails multiselect on the next touch (a TypeError).
    page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").first.click()
    page.get_by_role("option", name="中文").click()
    page.get_by_text("设计实验").first.wait_for()
    hour = page.get_by_label("发送时刻（点）")
    hour.fill("10, 20")
    hour.press("Tab")
    page.get_by_text("同层「recall」运行中的实验占用了部分客户").wait_for()
    page.wait_for_timeout(1000)
    assert page.get_by_text("TypeError").count() == 0
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.get_by_text("quiet hours").count() == 0
    page.context.close()

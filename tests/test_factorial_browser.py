"""The Results page's factorial section in a real browser (Playwright + Debian's Chromium): the demo's
main effects and interaction charts draw, and the recommendation is there. Skipped without Chromium."""

from __future__ import annotations

import pytest

from tests.test_browser import OUTPUT, app_url, browser, page  # noqa: F401 - the fixtures: the app on the demo, a signed-in page

pytestmark = pytest.mark.browser


def test_the_demo_results_show_main_effects_and_an_interaction_chart(page, app_url: str) -> None:  # noqa: ANN001, F811
    OUTPUT.mkdir(exist_ok=True)
    page.goto(f"{app_url}/results?experiment=demo-winback-2026&lang=en")
    section = page.get_by_text("Factorial analysis: which factor matters")
    section.wait_for()
    section.scroll_into_view_if_needed()
    page.get_by_text("Main effects: each level's mean").wait_for()
    page.get_by_text("Interaction chart (across × lines)").wait_for()
    page.get_by_text("Recommendation", exact=True).wait_for()
    charts = page.locator("[data-testid='stVegaLiteChart']")
    page.wait_for_function("document.querySelectorAll(\"[data-testid='stVegaLiteChart'] canvas, "
                           "[data-testid='stVegaLiteChart'] svg\").length >= 4")
    assert charts.count() >= 4  # rates, forest, main effects, interaction
    page.wait_for_timeout(1500)
    page.screenshot(path=str(OUTPUT / "factorial.png"))
    assert (OUTPUT / "factorial.png").stat().st_size > 10_000

"""A project's page in a real browser (Chromium, JavaScript off) against a live facility: the
PI signs in, finds the project on /me, and reads its tranches chart and table, which say
what the API says; the page fits a phone's width."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from tests.helpers import auth
from tests.portal.helpers import sign_in_browser
from tests.portal.test_allocation_browser import _api, _award_and_use, _world

pytestmark = pytest.mark.browser


def test_the_pi_reads_the_tranches_chart_on_the_project_page(browser_page, live_server, screenshot):
    world = _world(live_server)
    _, pi_token = world["pi"]
    proposal = _api(
        live_server,
        "POST",
        "/proposals",
        auth(pi_token),
        json={
            "call_id": world["call"]["id"],
            "institution_id": world["inst"]["IT"],
            "title": "Speech models for Swahili",
            "abstract": "Open ASR for East African languages.",
            "requested": {"H100": "4000"},
            "starts_on": date.today().isoformat(),
            "ends_on": (date.today() + timedelta(days=365)).isoformat(),
            "release_plan": {"weights": True, "data": True, "code": True, "licence": "MIT"},
        },
    )
    _award_and_use(live_server, world, proposal["id"])  # 300 h settled this quarter
    page: Any = browser_page
    sign_in_browser(page, pi_token)
    mine = page.locator("ul.my-projects").inner_text()
    assert "300 of 4 000 hours drawn, 3 700 left" in mine.replace("\u2009", " ")
    page.get_by_role("link", name="Speech models for Swahili").first.click()
    page.wait_for_url("**/projects/proj-*")

    chart = page.get_by_role("img", name="Hours drawn per quarter against each quarter's tranche")
    assert chart.is_visible()
    box = page.locator("svg.tranche-chart rect.tranche-drawn").first.bounding_box()
    assert box is not None and box["height"] > 0  # the first quarter's draw is drawn
    allocation = _api(live_server, "GET", "/allocations?limit=1", auth(pi_token))["items"][0]
    tranches = _api(live_server, "GET", f"/allocations/{allocation['id']}/tranches", {})
    assert len(tranches) == page.locator("svg.tranche-chart g.tranche").count()
    current = page.locator("table.tranches tr.current").inner_text()
    assert "Q1 (now)" in current and tranches[0]["starts_on"] in current and "300" in current
    assert page.locator("ul.members-list").inner_text().startswith("Giulia Rossi")
    screenshot(page, "project")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "project-phone")

"""The council in a real browser (Chromium, JavaScript off) against a live facility: a
delegate signs in, casts their state's vote with the motion page's form, and once the vote
is closed reads the result and the roll call on the same page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.helpers import auth, close_when_due, founders
from tests.portal.helpers import sign_in_browser

pytestmark = pytest.mark.browser


def _api(live_server: Any, method: str, path: str, headers: dict[str, str], **body: Any) -> Any:
    response = httpx.request(method, f"{live_server.url}/api/v1{path}", headers=headers, **body)
    assert response.status_code < 300, response.text
    return response.json()


def _found_council(live_server: Any) -> dict[str, str]:
    """Four founding states; delegates for Italy, France and Germany. Returns code → token."""
    operator = auth(live_server.operator_token)
    _api(
        live_server,
        "POST",
        "/members",
        operator,
        json={"members": founders("IT", "FR", "DE", "ES")},
    )
    tokens = {}
    for code, name in (("IT", "Giulia Rossi"), ("FR", "Claire Martin"), ("DE", "Jonas Weber")):
        person = _api(
            live_server, "POST", "/people", operator, json={"name": name, "roles": ["delegate"]}
        )
        _api(
            live_server,
            "POST",
            f"/members/{code}/delegates",
            operator,
            json={"person_id": person["id"]},
        )
        issued = _api(
            live_server,
            "POST",
            f"/people/{person['id']}/tokens",
            operator,
            json={"name": "browser", "scopes": ["read", "write"], "expires_in_days": 1},
        )
        tokens[code] = issued["token"]
    return tokens


def _table(live_server: Any, token: str, kind: str, title: str, payload: dict[str, Any]) -> int:
    closes_at = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    body = {
        "kind": kind,
        "title": title,
        "text": "Tabled for the browser test.",
        "payload": payload,
        "closes_at": closes_at,
    }
    return int(_api(live_server, "POST", "/motions", auth(token), json=body)["id"])


def _vote(live_server: Any, token: str, motion_id: int, choice: str) -> None:
    _api(live_server, "POST", f"/motions/{motion_id}/votes", auth(token), json={"choice": choice})


def _close(live_server: Any, motion_id: int) -> None:
    close_when_due(live_server.facility.db, motion_id)


def test_a_delegate_votes_and_reads_the_result_on_the_motion_page(
    browser_page, live_server, screenshot
):
    page = browser_page
    page.goto("/council")
    assert "The council has not been founded yet" in page.locator("main").inner_text()
    screenshot(page, "council-empty")

    tokens = _found_council(live_server)
    scale = {"IT": "22", "FR": "22", "DE": "22", "ES": "22", "EE": "12"}
    motion_id = _table(
        live_server,
        tokens["DE"],
        "admit_member",
        "Admit Estonia",
        {"code": "EE", "name": "Estonia", "scale": scale},
    )
    _vote(live_server, tokens["FR"], motion_id, "yes")

    # Signed in as Italy's delegate, through the form.
    sign_in_browser(page, tokens["IT"])

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Council").click()
    page.wait_for_url("**/council")
    page.get_by_role("link", name=f"Motion {motion_id}: Admit Estonia").click()
    page.wait_for_url(f"**/motions/{motion_id}")
    assert (
        page.get_by_role("heading", level=1)
        .inner_text()
        .startswith(f"Motion {motion_id}: Admit Estonia")
    )
    vote_box = page.locator("section.vote-box")
    assert "IT has not voted yet" in vote_box.inner_text()
    screenshot(page, "motion-open")

    vote_box.get_by_label("Yes").check()
    vote_box.get_by_role("button", name="Cast IT's vote").click()
    page.wait_for_url(f"**/motions/{motion_id}?voted=yes")
    assert "Recorded: IT votes yes" in page.get_by_role("status").inner_text()
    assert "Yes 2" in page.locator(".tally-legend").inner_text()

    # The same choice again: the reason, and nothing changes.
    page.locator("section.vote-box").get_by_label("Yes").check()
    page.locator("section.vote-box").get_by_role("button", name="Cast IT's vote").click()
    assert "IT already voted yes" in page.get_by_role("alert").inner_text()
    assert "Yes 2" in page.locator(".tally-legend").inner_text()
    screenshot(page, "motion-vote-refused")

    _vote(live_server, tokens["DE"], motion_id, "yes")
    _close(live_server, motion_id)

    page.goto(f"/motions/{motion_id}")
    heading = page.get_by_role("heading", level=1).inner_text()
    assert heading.endswith("Passed")
    result = page.locator("p.result").inner_text()
    assert result.startswith("Passed: Double majority: 3 of 4 states, 75% of contributions.")
    assert page.locator("section.vote-box").count() == 0
    rows = page.locator("table.roll-call tbody tr")
    assert rows.count() == 3
    roll_call = {
        rows.nth(i).locator("td").nth(0).inner_text(): (
            rows.nth(i).locator("td").nth(1).inner_text(),
            rows.nth(i).locator("td").nth(2).inner_text(),
        )
        for i in range(3)
    }
    assert roll_call == {
        "Germany DE": ("yes", "Jonas Weber"),
        "France FR": ("yes", "Claire Martin"),
        "Italy IT": ("yes", "Giulia Rossi"),
    }
    assert "Not voted 1" in page.locator(".tally-legend").inner_text()
    screenshot(page, "motion-decided")

    # The regulation is changed the same way; then one more motion stays open.
    regulation = {
        "title": "Regulation of the council, 2026",
        "capacity": {
            "national_pools": "45",
            "open_calls": "35",
            "smes_and_public_bodies": "14",
            "directors_reserve": "6",
        },
        "containment": {
            "cl3": {"max_clearance_days": 90, "release_approvals": 2, "downloads": "never"},
        },
    }
    adopt = _table(
        live_server,
        tokens["IT"],
        "adopt_regulation",
        "First regulation",
        {"regulation": regulation},
    )
    for code in ("IT", "FR", "DE"):
        _vote(live_server, tokens[code], adopt, "yes")
    _close(live_server, adopt)
    open_id = _table(
        live_server,
        tokens["FR"],
        "set_contribution_scale",
        "Even out the scale",
        {"shares": {"IT": "20", "FR": "20", "DE": "20", "ES": "20", "EE": "20"}},
    )
    _vote(live_server, tokens["FR"], open_id, "yes")
    _vote(live_server, tokens["DE"], open_id, "no")

    page.goto("/council")
    main = page.locator("main").inner_text()
    assert "Estonia" in main and f"motion {motion_id}" in main
    assert page.locator("table.members tbody tr").count() == 5
    assert page.locator("li.motion-card").count() == 1
    assert page.locator("table.past-motions tbody tr").count() == 2
    assert page.locator("figure.chart svg[role=img]").is_visible()
    screenshot(page, "council")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Regulations").click()
    page.wait_for_url("**/regulations")
    assert page.get_by_role("heading", level=2, name="In force: Regulation of the council, 2026")
    assert page.locator("table.versions tbody tr").count() == 2
    screenshot(page, "regulations")
    page.get_by_role("button", name="Compare").click()
    page.wait_for_url("**/regulations/diff?from=0&to=1")
    diff = page.locator("table.diff").inner_text()
    assert "capacity.national_pools" in diff and "containment.cl3.max_clearance_days" in diff
    screenshot(page, "regulation-diff")

    page.set_viewport_size({"width": 390, "height": 844})
    for path, name in (
        ("/council", "council-phone"),
        (f"/motions/{open_id}", "motion-phone"),
        ("/regulations", "regulations-phone"),
    ):
        page.goto(path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        screenshot(page, name)

"""Allocation in a real browser (Chromium, JavaScript off) against a live facility: a PI signs
in, opens the call, submits the proposal form and reads the confirmation; once the award's
usage is settled, the member-states page shows the delivered versus entitled share chart."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.helpers import auth, founders
from tests.portal.helpers import sign_in_browser

pytestmark = pytest.mark.browser


def _api(live_server: Any, method: str, path: str, headers: dict[str, str], **body: Any) -> Any:
    response = httpx.request(method, f"{live_server.url}/api/v1{path}", headers=headers, **body)
    assert response.status_code < 300, response.text
    return response.json()


def _person(live_server: Any, name: str, roles: list[str], institution_id: int) -> tuple[int, str]:
    operator = auth(live_server.operator_token)
    row = _api(
        live_server,
        "POST",
        "/people",
        operator,
        json={"name": name, "roles": roles, "institution_id": institution_id},
    )
    token = _api(
        live_server,
        "POST",
        f"/people/{row['id']}/tokens",
        operator,
        json={"name": "browser", "scopes": ["read", "write"], "expires_in_days": 1},
    )["token"]
    return int(row["id"]), token


def _world(live_server: Any) -> dict[str, Any]:
    operator = auth(live_server.operator_token)
    _api(
        live_server,
        "POST",
        "/members",
        operator,
        json={"members": founders("IT", "FR", "DE", "KE")},
    )
    inst = {
        country: _api(
            live_server,
            "POST",
            "/institutions",
            operator,
            json={"name": name, "country": country, "kind": "university"},
        )["id"]
        for name, country in (("Sapienza", "IT"), ("University of Nairobi", "KE"))
    }
    now = datetime.now(UTC)
    call = _api(
        live_server,
        "POST",
        "/calls",
        operator,
        json={
            "title": "Multilingual speech models",
            "description": "Open speech recognition for under-served languages.",
            "pool": "open_calls",
            "budget": {"H100": "100000"},
            "opens_at": (now - timedelta(minutes=5)).isoformat(),
            "closes_at": (now + timedelta(days=30)).isoformat(),
            "rubric": [
                {"criterion": "excellence", "weight": 2},
                {"criterion": "openness", "weight": 1},
            ],
        },
    )
    return {
        "inst": inst,
        "call": call,
        "pi": _person(live_server, "Giulia Rossi", ["pi", "researcher"], inst["IT"]),
        "reviewer": _person(live_server, "Amina Otieno", ["reviewer"], inst["KE"]),
    }


def _award_and_use(live_server: Any, world: dict[str, Any], proposal_id: int) -> None:
    """Review, award and charge 300 h of usage through the API, as operators and jobs do."""
    operator = auth(live_server.operator_token)
    reviewer_id, reviewer_token = world["reviewer"]
    _api(
        live_server,
        "POST",
        f"/proposals/{proposal_id}/reviewers",
        operator,
        json={"reviewer_id": reviewer_id},
    )
    _api(
        live_server,
        "POST",
        f"/proposals/{proposal_id}/review",
        auth(reviewer_token),
        json={"scores": {"excellence": 5, "openness": 4}},
    )
    decided = _api(
        live_server, "POST", f"/proposals/{proposal_id}/decision", operator, json={"award": True}
    )
    allocation_id = decided["allocation"]["id"]
    held = _api(
        live_server,
        "POST",
        f"/allocations/{allocation_id}/reservations",
        operator,
        json={"accelerator": "H100", "hours": "400", "job": "train-1"},
    )
    _api(
        live_server,
        "POST",
        f"/ledger/{held['reservation']}/settle",
        operator,
        json={"hours": "300"},
    )


def test_a_pi_submits_a_proposal_and_the_member_states_page_shows_the_chart(
    browser_page, live_server, screenshot
):
    page = browser_page
    page.goto("/members")
    assert "The council has not been founded yet" in page.locator("main").inner_text()
    world = _world(live_server)

    sign_in_browser(page, world["pi"][1])

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Calls").click()
    page.wait_for_url("**/calls")
    screenshot(page, "calls")
    call_id = world["call"]["id"]
    page.get_by_role("link", name=f"Call {call_id}: Multilingual speech models").click()
    page.wait_for_url(f"**/calls/{call_id}")

    form = page.locator("form.proposal-form")
    form.get_by_label("Title").fill("Speech models for Swahili")
    form.get_by_label("Abstract").fill("Open ASR for East African languages.")
    # The proposal's institution is the PI's, shown and not chosen.
    assert form.locator('input[name="institution_id"]').input_value() == str(world["inst"]["IT"])
    assert form.locator("select[name=institution_id]").count() == 0
    form.get_by_label("H100 hours").fill("4000")
    form.get_by_label("Containment level").select_option("2")
    form.get_by_label("Datasets needed").fill("common-voice-sw")
    form.get_by_label("Licence").fill("Apache-2.0")
    # An end before the start is refused with the reason, keeping what was typed.
    form.get_by_label("End date").fill(date.today().isoformat())
    screenshot(page, "proposal-form")
    form.get_by_role("button", name="Submit the proposal").click()
    alert = page.get_by_role("alert").inner_text()
    assert "The end date must be after the start date" in alert
    assert page.get_by_label("Title").input_value() == "Speech models for Swahili"
    screenshot(page, "proposal-form-refused")

    page.get_by_label("End date").fill((date.today() + timedelta(days=365)).isoformat())
    page.get_by_role("button", name="Submit the proposal").click()
    page.wait_for_url("**/proposals/*?submitted=1")
    assert "Submitted: proposal" in page.get_by_role("status").inner_text()
    heading = page.get_by_role("heading", level=1).inner_text()
    assert "Speech models for Swahili" in heading
    screenshot(page, "proposal-submitted")
    proposal_id = int(page.url.split("/proposals/")[1].split("?")[0])

    _award_and_use(live_server, world, proposal_id)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Projects").click()
    page.wait_for_url("**/projects")
    assert "Open ASR for East African languages." in page.locator("main").inner_text()
    screenshot(page, "projects")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Member states").click()
    page.wait_for_url("**/members")
    panels = page.locator("figure.share-chart svg[role=img]")
    assert panels.count() == 4
    assert panels.first.is_visible()
    assert page.locator("figure.share-chart rect.band").count() == 4
    rows = page.locator("table.shares tbody tr")
    assert rows.count() == 4
    italy = page.locator("table.shares tbody tr", has_text="Italy").inner_text()
    assert "\t300\t" in italy and "100.00%" in italy and "Outside the band" in italy
    # One quarter of usage: a bar per state, not a lone point.
    assert page.locator("figure.share-chart rect.bar").count() == 4
    screenshot(page, "members")

    page.set_viewport_size({"width": 390, "height": 844})
    for path, name in (
        ("/calls", "calls-phone"),
        (f"/calls/{call_id}", "call-phone"),
        ("/members", "members-phone"),
    ):
        page.goto(path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        screenshot(page, name)

"""The portal in a real browser (Chromium, JavaScript off) against a live facility: what a
person sees on the home page, signing in and out through the form, and the public record."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.helpers import auth

pytestmark = pytest.mark.browser


def _wait_for_record(url: str, size: int) -> None:
    """The live sequencer signs within milliseconds; wait until it has reached `size`."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        note = httpx.get(f"{url}/log/checkpoint").text.split("\n")
        if len(note) > 1 and note[1].isdigit() and int(note[1]) >= size:
            return
        time.sleep(0.05)
    pytest.fail(f"the record did not reach size {size}")


def test_home_page_shows_the_facility_and_its_empty_states(browser_page, live_server, screenshot):
    page = browser_page
    response = page.goto("/")
    assert response is not None and response.status == 200
    assert page.title() == "The facility at a glance · commonlab"
    assert page.get_by_role("heading", level=1).inner_text() == (
        "A public facility for open AI research"
    )
    nav = page.get_by_role("navigation", name="Main")
    for name in ("Home", "Public record", "Sign in"):
        assert nav.get_by_role("link", name=name, exact=True).is_visible()
    assert nav.get_by_role("link", name="Home", exact=True).get_attribute("aria-current") == "page"
    member_states = page.locator(".card", has=page.get_by_role("heading", name="Member states"))
    assert "No member states yet. States join by a recorded council vote" in (
        member_states.inner_text()
    )
    assert "No institutions yet" in page.locator(".card", has_text="Institutions").inner_text()
    people = page.locator(".card", has=page.get_by_role("heading", name="People"))
    assert people.locator(".stat-value").inner_text() == "1"  # the bootstrap operator
    # The footer names the record's origin.
    assert live_server.facility.origin in page.locator("footer").inner_text()
    screenshot(page, "home-desktop")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.get_by_role("heading", level=1).is_visible()
    # Nothing overflows sideways on a phone.
    width = page.locator("body").bounding_box()["width"]
    assert width <= 390
    screenshot(page, "home-phone")


def test_sign_in_through_the_form_then_sign_out(browser_page, live_server, screenshot):
    page = browser_page
    page.goto("/")
    page.get_by_role("link", name="Sign in", exact=True).click()
    page.wait_for_url("**/signin")
    screenshot(page, "signin")

    # A wrong token first: the reason is shown, and nobody is signed in.
    page.get_by_label("API token").fill("clab_000000000000_wrong")
    page.get_by_role("button", name="Sign in").click()
    assert "Unknown token" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("API token").get_attribute("aria-invalid") == "true"
    screenshot(page, "signin-error")

    page.get_by_label("API token").fill(live_server.operator_token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/me")
    assert page.get_by_role("heading", level=1).inner_text() == "Facility operator"
    header = page.locator("header")
    assert "Facility operator" in header.inner_text()
    assert header.get_by_role("button", name="Sign out").is_visible()
    facts = page.locator("dl.facts").inner_text()
    assert re.search(r"p-[0-9a-f]{16}", facts)
    assert "operator" in facts and "admin" in facts
    cookies = page.context.cookies()
    session = next(c for c in cookies if c["name"] == "commonlab_session")
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    screenshot(page, "me")

    header.get_by_role("button", name="Sign out").click()
    page.wait_for_url(live_server.url + "/")
    assert (
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Sign in").is_visible()
    )
    assert not any(c["name"] == "commonlab_session" for c in page.context.cookies())
    page.goto("/me")
    assert "You are browsing as the public" in page.locator("main").inner_text()


def test_public_record_and_an_entry(browser_page, live_server, screenshot):
    operator = auth(live_server.operator_token)
    for name, country, kind in [
        ("University of Nairobi", "KE", "university"),
        ("Politecnico di Milano", "IT", "university"),
        ("Tallinn Public Health Board", "EE", "government"),
    ]:
        response = httpx.post(
            f"{live_server.url}/api/v1/institutions",
            json={"name": name, "country": country, "kind": kind},
            headers=operator,
        )
        assert response.status_code == 201, response.text
    _wait_for_record(live_server.url, 6)  # the operator, their token, the local fleet, three

    page = browser_page
    page.goto("/")
    assert page.get_by_role("heading", name="Institutions by kind").is_visible()
    assert page.locator("figure.chart svg[role=img]").is_visible()
    screenshot(page, "home-with-data")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Public record").click()
    page.wait_for_url("**/record")
    assert page.get_by_role("heading", level=1).inner_text() == "Public record"
    assert "Verifier key" in page.locator("dl.facts").first.inner_text()
    rows = page.locator("table.entries tbody tr")
    assert rows.count() == 6
    assert page.locator("figure.chart svg").is_visible()
    screenshot(page, "record")

    page.get_by_label("Type or prefix").fill("identity:institution")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/record?type=identity%3Ainstitution*")
    assert page.locator("table.entries tbody tr").count() == 3

    page.get_by_role("link", name="Entry 4", exact=True).click()
    page.wait_for_url("**/record/entries/4")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Entry 4")
    assert "Politecnico di Milano" in page.locator("#entry-bytes").inner_text()
    assert page.get_by_role("heading", name="Verify it yourself").is_visible()
    assert len(page.locator("#leaf-hash").inner_text()) == 64
    assert page.locator("ol.proof li").count() >= 1
    screenshot(page, "entry")
    page.set_viewport_size({"width": 390, "height": 844})
    for path, name in (("/record", "record-phone"), ("/record/entries/3", "entry-phone")):
        page.goto(path)
        # Long hashes and code scroll or wrap inside their boxes; the page never scrolls sideways.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        screenshot(page, name)
    page.set_viewport_size({"width": 1280, "height": 900})

    missing = page.goto("/record/entries/999")
    assert missing is not None and missing.status == 404
    assert page.get_by_role("heading", level=1).inner_text() == "Page not found"
    screenshot(page, "not-found")

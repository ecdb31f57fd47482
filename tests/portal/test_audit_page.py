"""The portal's "check these figures yourself" page (/audit): public, it shows the exact
`commonlab audit` command with this facility's URL and verifier key, and how to mirror the
record first; the member states' page and the record page lead to it. In Chromium too."""

from __future__ import annotations

import html
import re

import pytest

from commonlab.demo import seed_demo


def _text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def test_the_audit_page_shows_the_command_for_this_facility(client, facility):
    response = client.get("/audit")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<script" not in response.text.lower()
    assert "default-src 'none'" in response.headers["content-security-policy"]
    key = facility.signer.verifier_key()
    page = html.unescape(response.text)
    assert f"commonlab audit http://testserver --key '{key}'" in page
    assert f"commonlab record mirror http://testserver ./record-mirror --key '{key}'" in page
    assert "commonlab audit http://testserver --from-tiles ./record-mirror" in page
    text = _text(response.text)
    for figures in ("Member states", "Motions", "share report", "Published versions", "Jobs"):
        assert figures in text
    assert re.findall(r"<h1[ >]", response.text) == ["<h1>"]  # one page heading


def test_the_record_page_links_to_the_audit(client):
    assert 'href="/audit"' in client.get("/record").text


@pytest.mark.browser
def test_a_visitor_goes_from_the_share_report_to_the_audit_command(
    browser_page, live_server, screenshot
):
    with live_server.facility.db.session() as session:
        assert seed_demo(session) is not None
    page = browser_page
    page.goto("/members")
    share_report = page.locator(
        "section", has=page.get_by_role("heading", name="The last four quarters together")
    )
    share_report.get_by_role("link", name="check them yourself").click()
    page.wait_for_url("**/audit")

    assert page.title() == "Check these figures yourself · commonlab"
    assert page.get_by_role("heading", level=1).inner_text() == "Check these figures yourself"
    headings = page.get_by_role("heading", level=2).all_inner_texts()
    assert headings == [
        "What the audit does",
        "Which figures it re-derives",
        "Run it",
        "Keep a copy of the record first",
    ]
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Public record").get_attribute("aria-current") == "page"
    key = live_server.facility.signer.verifier_key()
    command = page.get_by_label("The audit command for this facility").inner_text()
    assert command == f"commonlab audit {live_server.url} --key '{key}'"
    mirror = page.get_by_label("Mirror the record, then audit the copy").inner_text()
    assert mirror.splitlines() == [
        f"commonlab record mirror {live_server.url} ./record-mirror --key '{key}'",
        f"commonlab audit {live_server.url} --from-tiles ./record-mirror",
    ]
    # The share report it checks is one link away, back.
    assert page.get_by_role("link", name="member states' share report").get_attribute("href") == (
        "/members"
    )
    screenshot(page, "audit")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.get_by_label("The audit command for this facility").is_visible()
    screenshot(page, "audit-phone")

    page.goto("/record")
    page.get_by_role("link", name="check these figures yourself").click()
    page.wait_for_url("**/audit")

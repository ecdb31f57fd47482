"""The fleet and a job in a real browser (Chromium, JavaScript off) against a live facility
with its job controller running: the fleet chart is drawn, a researcher signs in, opens their
job, sees its output, and cancels a running one with the page's own form."""

from __future__ import annotations

import time

import pytest

from tests.compute.helpers import award_project
from tests.helpers import auth, http_client
from tests.portal.helpers import sign_in_browser

pytestmark = pytest.mark.browser


def test_fleet_chart_and_a_job_page(browser_page, live_server, screenshot):
    api = http_client(base_url=live_server.url, timeout=30)
    project = award_project(api, auth(live_server.operator_token))
    job = api.post(
        "/api/v1/jobs",
        json={
            "project": project.name,
            "name": "browser",
            "command": "echo hello from the job; sleep 60",
            "accelerator": "cpu",
        },
        headers=project.pi_auth,
    ).json()
    deadline = time.monotonic() + 30
    while api.get(f"/api/v1/jobs/{job['id']}", headers=project.pi_auth).json()["state"] != (
        "running"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)

    page = browser_page
    page.goto("/fleet")
    bar = page.locator(".fleet-chart rect.in-use").first
    assert bar.get_attribute("width") not in (None, "0", "0.0")  # the running job shows
    screenshot(page, "fleet")

    sign_in_browser(page, project.pi_auth["Authorization"].split()[1])
    page.get_by_role("link", name="Jobs").click()
    page.get_by_role("link", name=str(job["id"]), exact=True).click()
    assert "hello from the job" in page.locator("pre.log").inner_text()
    screenshot(page, "job-running")
    page.get_by_role("button", name="Cancel this job").click()
    deadline = time.monotonic() + 30
    while "cancelled" not in page.locator("h1").inner_text():
        assert time.monotonic() < deadline
        time.sleep(0.3)
        page.reload()
    screenshot(page, "job-cancelled")

"""Signing in to the portal as a browser does, for every test that needs a session: through
the sign-in form with its CSRF field (a TestClient or an httpx.Client), or in Chromium."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["csrf_of", "post_sign_in", "sign_in", "sign_in_browser"]

_CSRF_FIELD = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


def csrf_of(page: str) -> str:
    """The CSRF token in a page's form."""
    match = _CSRF_FIELD.search(page)
    assert match, "no CSRF field on the page"
    return match.group(1)


def post_sign_in(client: Any, token: str) -> Any:
    """Post `token` through the sign-in form; the answer, whatever it is."""
    form = client.get("/signin")
    return client.post(
        "/signin", data={"csrf": csrf_of(form.text), "token": token}, follow_redirects=False
    )


def sign_in(client: Any, token: str) -> Any:
    """Sign in through the form; the answer (a redirect to /me, the session cookie set)."""
    response = post_sign_in(client, token)
    assert response.status_code == 303, response.text
    return response


def sign_in_browser(page: Any, token: str) -> None:
    """Sign in through the form in a Playwright page, and wait for the person's own page."""
    page.goto("/signin")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url("**/me")

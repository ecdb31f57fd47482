"""A person's sessions and tokens, and ending them (issue 21): the person themself at
/me/sessions, an operator at /admin/people/{id}/sessions. What ends stops working at once;
a deactivated person's sessions and tokens stop too; no one else may look or end anything."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from commonlab.db import utcnow
from commonlab.portal.models import PortalSession
from tests.helpers import auth, new_person, record_entries, token_for
from tests.portal.helpers import csrf_of, sign_in


def browser(app):
    """Another browser: its own cookies."""
    return TestClient(app)


def signed_in_as(client, token):
    """Whether this browser's /me shows a signed-in person."""
    page = client.get("/me")
    return "You are signed in" in page.text


def session_ids(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'id="session-(\d+)"', page)]


def token_ids(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'id="token-(\d+)"', page)]


@pytest.fixture
def person(client, operator):
    made = new_person(client, operator, "Esther Chebet")
    return made, token_for(client, operator, made["id"])


def test_a_person_sees_their_sessions_and_tokens_and_ends_another_browsers(app, person):
    _, token = person
    laptop, phone = browser(app), browser(app)
    sign_in(phone, token)
    sign_in(laptop, token)
    page = laptop.get("/me/sessions")
    assert page.status_code == 200
    assert len(session_ids(page.text)) == 2 and page.text.count("this browser") == 1
    assert len(token_ids(page.text)) == 1 and "this sign-in" in page.text

    this_one = max(session_ids(page.text))  # the laptop signed in last
    phones = min(session_ids(page.text))
    assert this_one != phones
    ended = laptop.post(f"/me/sessions/{phones}/end", data={"csrf": csrf_of(page.text)})
    assert ended.status_code == 200  # followed the redirect back to the page
    assert session_ids(ended.text) == [this_one]
    assert not signed_in_as(phone, token) and signed_in_as(laptop, token)


def test_revoking_a_token_from_the_page_is_on_the_record_and_ends_its_sessions(
    app, client, operator, person
):
    made, token = person
    cli_token = token_for(client, operator, made["id"])
    laptop = browser(app)
    sign_in(laptop, token)
    page = laptop.get("/me/sessions")
    assert len(token_ids(page.text)) == 2
    cli_id = max(token_ids(page.text))
    laptop.post(f"/me/sessions/tokens/{cli_id}/revoke", data={"csrf": csrf_of(page.text)})
    assert client.get("/api/v1/me", headers=auth(cli_token)).status_code == 401
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200
    revoked = [e for e in record_entries(client, app) if e["type"] == "identity:token:revoked"]
    assert revoked[-1]["actor"]["id"] == made["pseudonym"]

    # Revoking the token this browser signed in with ends this browser's session.
    page = laptop.get("/me/sessions")
    own_id = token_ids(page.text)[0]
    laptop.post(f"/me/sessions/tokens/{own_id}/revoke", data={"csrf": csrf_of(page.text)})
    assert not signed_in_as(laptop, token)


def test_an_operator_signs_a_person_out_everywhere(app, operator_token, person):
    made, token = person
    laptop, desk = browser(app), browser(app)
    sign_in(laptop, token)
    sign_in(desk, operator_token)
    page = desk.get(f"/admin/people/{made['id']}/sessions")
    assert page.status_code == 200 and "Esther Chebet" in page.text
    assert len(session_ids(page.text)) == 1
    done = desk.post(
        f"/admin/people/{made['id']}/sessions/end-all", data={"csrf": csrf_of(page.text)}
    )
    assert done.status_code == 200 and session_ids(done.text) == []
    assert not signed_in_as(laptop, token)
    assert signed_in_as(desk, operator_token)  # the operator's own session is untouched


def test_no_one_else_may_see_or_end_a_persons_sessions(app, client, operator, person):
    made, token = person
    other = new_person(client, operator, "Faraji Mutua")
    nosy = browser(app)
    sign_in(nosy, token_for(client, operator, other["id"]))
    victim = browser(app)
    sign_in(victim, token)
    assert nosy.get(f"/admin/people/{made['id']}/sessions").status_code == 403
    csrf = csrf_of(nosy.get("/me").text)
    with app.state.db.session() as db, db.begin():
        victims = db.scalar(select(PortalSession.id).where(PortalSession.person_id == made["id"]))
    for path in (
        f"/admin/people/{made['id']}/sessions/end-all",
        f"/admin/people/{made['id']}/sessions/{victims}/end",
        f"/me/sessions/{victims}/end",  # another's session through one's own page
    ):
        refused = nosy.post(path, data={"csrf": csrf})
        assert refused.status_code in (403, 404), path
    listed = client.get(f"/api/v1/people/{made['id']}/tokens", headers=operator).json()
    victims_token = listed["items"][0]["id"]
    refused = nosy.post(f"/me/sessions/tokens/{victims_token}/revoke", data={"csrf": csrf})
    assert refused.status_code == 404
    assert signed_in_as(victim, token)
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200


def test_a_deactivated_persons_sessions_and_tokens_stop_working(app, client, operator, person):
    made, token = person
    laptop = browser(app)
    sign_in(laptop, token)
    assert signed_in_as(laptop, token)
    changed = client.patch(f"/api/v1/people/{made['id']}", json={"active": False}, headers=operator)
    assert changed.status_code == 200
    page = laptop.get("/me")
    assert "You are signed in" not in page.text and "deactivated" in page.text
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 401


def test_a_session_ends_at_its_absolute_lifetime(app, person):
    _, token = person
    laptop = browser(app)
    sign_in(laptop, token)
    with app.state.db.session() as db, db.begin():
        row = db.scalar(select(PortalSession))
        assert row.expires_at - row.created_at <= timedelta(hours=12)
        db.execute(update(PortalSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert not signed_in_as(laptop, token)
    assert "expired" in laptop.get("/me").text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/admin/people/0/sessions"),
        ("get", "/admin/people/99999999999999999999/sessions"),
        ("get", "/admin/people/abc/sessions"),
        ("get", "/admin/people/424242/sessions"),
        ("post", "/me/sessions/0/end"),
        ("post", "/me/sessions/424242/end"),
        ("post", "/me/sessions/tokens/-1/revoke"),
        ("post", "/me/sessions/tokens/424242/revoke"),
        ("post", "/admin/people/424242/sessions/end-all"),
    ],
)
def test_bad_ids_are_refused_and_change_nothing(app, operator_token, method, path):
    desk = browser(app)
    sign_in(desk, operator_token)
    csrf = csrf_of(desk.get("/me").text)
    response = getattr(desk, method)(path, **({"data": {"csrf": csrf}} if method == "post" else {}))
    assert 400 <= response.status_code < 500, response.text
    with app.state.db.session() as db, db.begin():
        assert db.scalar(select(func.count()).where(PortalSession.ended_at.is_not(None))) == 0


def test_ending_needs_the_forms_csrf_token(app, person):
    _, token = person
    laptop = browser(app)
    sign_in(laptop, token)
    page = laptop.get("/me/sessions")
    own = session_ids(page.text)[0]
    assert laptop.post(f"/me/sessions/{own}/end").status_code == 403
    assert laptop.post(f"/me/sessions/{own}/end", data={"csrf": "0" * 64}).status_code == 403
    assert signed_in_as(laptop, token)


def test_the_public_is_sent_to_sign_in(client):
    assert client.get("/me/sessions", follow_redirects=False).headers["location"] == "/signin"

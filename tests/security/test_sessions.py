"""Issue 13, finding 9: the portal's cookie carried the bearer token and stayed valid after
sign-out. A session is now opaque (a random id, kept on the server only as a hash), expires
on the server, and ends at sign-out: a copied cookie, replayed, signs no one in.

Each attack replays a cookie as someone who copied it would (a shared computer, a proxy log)
and asserts the refusal on the portal and on the API, and that nothing changed.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from commonlab.db import utcnow
from commonlab.portal.models import PortalSession
from commonlab.portal.session import SESSION_COOKIE
from tests.helpers import problem, record_entries
from tests.portal.helpers import csrf_of, sign_in

NAIROBI = {"name": "University of Nairobi", "country": "KE", "kind": "university"}


def _sign_in(client: TestClient, token: str) -> str:
    """Sign in through the form; the session cookie the browser now holds."""
    sign_in(client, token)
    return client.cookies[SESSION_COOKIE]


def _sign_out(client: TestClient) -> None:
    page = client.get("/me").text
    response = client.post("/signout", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert response.status_code == 303


def _replay(client: TestClient, cookie: str) -> dict[str, Any]:
    """What a copied cookie still does: the portal's view, the API's answer, and a change
    attempted with the page's own CSRF token."""
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, cookie)
    me_page = client.get("/me").text
    api_me = client.get("/api/v1/me")
    meta = re.search(r'<meta name="csrf-token" content="([0-9a-f]{64})">', client.get("/").text)
    change = client.post("/api/v1/institutions", json=NAIROBI, headers={"X-CSRF-Token": meta[1]})
    return {"page": me_page, "api_me": api_me, "change": change}


def _state(client: TestClient, app: Any, operator: dict[str, str]) -> Any:
    institutions = client.get("/api/v1/institutions", headers=operator).json()["items"]
    return institutions, record_entries(client, app)


def _assert_refused(replayed: dict[str, Any], reason: str) -> None:
    assert "Facility operator" not in replayed["page"]
    assert reason in replayed["page"]
    assert replayed["api_me"].status_code == 401
    assert reason in problem(replayed["api_me"])["detail"]
    assert replayed["change"].status_code == 401
    problem(replayed["change"])


def test_the_cookie_carries_no_token_and_the_table_only_its_hash(client, app, operator_token):
    cookie = _sign_in(client, operator_token)
    secret = operator_token.split("_", 2)[2]
    assert operator_token not in cookie and secret not in cookie
    assert len(cookie) >= 43  # 256 random bits
    # The cookie is not a bearer token either.
    assert (
        client.get("/api/v1/me", headers={"Authorization": f"Bearer {cookie}"}).status_code == 401
    )
    with app.state.db.session() as db:
        rows = db.scalars(select(PortalSession)).all()
    assert [row.id_sha256 for row in rows] == [hashlib.sha256(cookie.encode()).hexdigest()]
    assert all(cookie not in str(value) for value in vars(rows[0]).values())


def test_a_cookie_replayed_after_sign_out_signs_no_one_in(client, app, operator, operator_token):
    cookie = _sign_in(client, operator_token)
    assert "Facility operator" in client.get("/me").text
    _sign_out(client)
    before = _state(client, app, operator)

    replayed = _replay(client, cookie)

    _assert_refused(replayed, "ended by signing out")
    assert _state(client, app, operator) == before
    with app.state.db.session() as db:
        assert db.scalar(select(PortalSession.ended_at)) is not None


def test_a_session_expires_on_the_server_whatever_the_browser_keeps(
    client, app, operator, operator_token
):
    cookie = _sign_in(client, operator_token)
    with app.state.db.session() as db:
        created, expires = db.execute(
            select(PortalSession.created_at, PortalSession.expires_at)
        ).one()
    assert timedelta(0) < expires - created <= timedelta(hours=12)
    # A working day later: the browser ignores Max-Age (or the cookie was copied out of it).
    with app.state.db.session() as db, db.begin():
        db.execute(update(PortalSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    before = _state(client, app, operator)

    replayed = _replay(client, cookie)

    _assert_refused(replayed, "expired")
    assert _state(client, app, operator) == before


def test_signing_in_again_ends_the_session_before_it(client, app, operator, operator_token):
    first = _sign_in(client, operator_token)
    second = _sign_in(client, operator_token)
    assert first != second
    assert "Facility operator" in client.get("/me").text  # the new session works

    _assert_refused(_replay(client, first), "ended by signing out")
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, second)
    assert client.get("/api/v1/me").json()["authenticated"] is True


def test_a_session_ends_with_its_token(client, app, operator):
    me = client.get("/api/v1/me", headers=operator).json()
    issued = client.post(
        f"/api/v1/people/{me['person']['id']}/tokens",
        json={"name": "browser", "scopes": ["read", "write"]},
        headers=operator,
    ).json()
    cookie = _sign_in(client, issued["token"])
    assert client.delete(f"/api/v1/tokens/{issued['id']}", headers=operator).status_code == 200
    before = _state(client, app, operator)

    _assert_refused(_replay(client, cookie), "was revoked")
    assert _state(client, app, operator) == before

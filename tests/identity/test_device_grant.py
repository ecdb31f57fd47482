"""`commonlab login`'s device authorization grant (RFC 8628), on SQLite and PostgreSQL: the
whole flow over HTTP (the metadata, the device's request, the portal's approval, the token
fetched once), every refusal the token endpoint answers, and hostile input to each endpoint,
which gets an RFC 6749 error and changes nothing."""

from __future__ import annotations

import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select, text, update

from commonlab.db import utcnow
from commonlab.errors import InvalidInput, NotFound, Unauthenticated
from commonlab.identity import device_grant
from commonlab.identity import service as identity
from commonlab.identity.device_grant import DEVICE_CODE_GRANT, OAuthError
from commonlab.identity.device_models import DeviceGrant
from commonlab.policy.principal import PUBLIC
from tests.helpers import auth, new_person, record_entries, token_for
from tests.portal.helpers import csrf_of, sign_in

DEVICE = "/api/v1/oauth/device_authorization"
TOKEN = "/api/v1/oauth/token"
CLIENT = "commonlab-cli"


def start(client, **form):
    response = client.post(DEVICE, data={"client_id": CLIENT, **form})
    assert response.status_code == 200, response.text
    return response.json()


def poll(client, device_code, **overrides):
    form = {"grant_type": DEVICE_CODE_GRANT, "device_code": device_code, "client_id": CLIENT}
    return client.post(TOKEN, data={**form, **overrides})


def oauth_error(response, status=400):
    """The RFC 6749 §5.2 error of a refused request: its code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"error", "error_description"} and body["error_description"]
    return body["error"]


def may_poll_again(app):
    """As if the device had waited its interval since its last poll."""
    with app.state.db.session() as db, db.begin():
        db.execute(update(DeviceGrant).values(last_polled_at=None))


def approve_in_portal(client, token, user_code):
    """Sign in through the portal's form and approve the code on /device, as a person does."""
    sign_in(client, token)
    page = client.get("/device", params={"user_code": user_code})
    assert page.status_code == 200 and "Approve" in page.text, page.text
    done = client.post("/device/approve", data={"csrf": csrf_of(page.text), "user_code": user_code})
    assert done.status_code == 200 and 'id="device-approved"' in done.text, done.text
    return done


def grants(app):
    with app.state.db.session() as db, db.begin():
        return list(db.scalars(select(DeviceGrant).order_by(DeviceGrant.id)))


@pytest.fixture
def researcher(client, operator):
    """A person with a read-and-write token, the kind they sign in to the portal with."""
    person = new_person(client, operator, "Amani Njoroge")
    return person, token_for(client, operator, person["id"], scopes=("read", "write"))


# The flow ------------------------------------------------------------------------------------


def test_the_metadata_is_machine_readable_even_when_refused(client):
    refused = client.post("/.well-known/oauth-authorization-server")
    assert refused.status_code == 405 and refused.headers["allow"] == "GET"
    assert refused.headers["content-type"].startswith("application/problem+json")


def test_the_metadata_names_the_device_grant_endpoints(client):
    meta = client.get("/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == "http://testserver"
    assert meta["device_authorization_endpoint"] == "http://testserver" + DEVICE
    assert meta["token_endpoint"] == "http://testserver" + TOKEN
    assert meta["grant_types_supported"] == [DEVICE_CODE_GRANT]
    assert meta["token_endpoint_auth_methods_supported"] == ["none"]
    assert set(meta["scopes_supported"]) == {"read", "write", "admin"}


def test_a_device_signs_in_once_a_signed_in_person_approves(client, app, researcher):
    person, token = researcher
    started = start(client)
    assert started["verification_uri"] == "http://testserver/device"
    assert started["verification_uri_complete"].endswith(f"?user_code={started['user_code']}")
    assert (started["expires_in"], started["interval"]) == (600, 5)
    assert oauth_error(poll(client, started["device_code"])) == "authorization_pending"

    approve_in_portal(client, token, started["user_code"].lower())  # typed in any case
    client.cookies.clear()  # the device is another machine: no cookie
    may_poll_again(app)
    answer = poll(client, started["device_code"])
    assert answer.status_code == 200, answer.text
    issued = answer.json()
    assert issued["token_type"] == "Bearer" and issued["scope"] == "read write"
    assert 29 * 86400 < issued["expires_in"] <= 30 * 86400
    assert answer.headers["cache-control"] == "no-store"
    me = client.get("/api/v1/me", headers=auth(issued["access_token"])).json()
    assert me["person"]["id"] == person["id"] and me["scopes"] == ["read", "write"]

    # Once only: the same device code, even at the right pace, fetches nothing more.
    may_poll_again(app)
    assert oauth_error(poll(client, started["device_code"])) == "invalid_grant"

    # On the record where access changes: the approval, then the token's issue, by them.
    entries = record_entries(client, app)
    approved = [e for e in entries if e["type"] == "identity:device_grant:approved"]
    assert [e["data"] for e in approved] == [
        {"holder": person["pseudonym"], "client": CLIENT, "scopes": ["read", "write"]}
    ]
    issues = [e for e in entries if e["type"] == "identity:token:issued"]
    assert issues[-1]["actor"]["id"] == person["pseudonym"]
    assert issues[-1]["data"]["holder"] == person["pseudonym"]


def test_two_polls_at_once_fetch_one_token(facility, researcher):
    _, token = researcher
    with facility.db.session() as db:
        started = device_grant.start(db, client_id=CLIENT, scope=None)
        device_grant.approve(db, identity.authenticate(db, token), started.user_code)
    barrier = threading.Barrier(2)

    # Each poll dawdles after reading the grant, so that without the row lock both would read
    # it approved before either marked it used (and both would get a token).
    def dawdle(conn, cursor, statement, *args):
        if "FROM identity_device_grants" in statement and "device_code_sha256" in statement:
            time.sleep(0.3)

    event.listen(facility.db.engine, "after_cursor_execute", dawdle)

    def fetch() -> str:
        with facility.db.session() as db:
            barrier.wait()
            try:
                device_grant.exchange(db, client_id=CLIENT, device_code=started.device_code)
            except OAuthError as refused:
                return refused.error
            return "token"

    try:
        with ThreadPoolExecutor(2) as pool:
            answers = sorted(pool.map(lambda _: fetch(), range(2)))
    finally:
        event.remove(facility.db.engine, "after_cursor_execute", dawdle)
    assert answers == ["invalid_grant", "token"]


def test_codes_are_kept_only_as_hashes(client, app):
    started = start(client)
    with app.state.db.session() as db, db.begin():
        dumped = " ".join(
            str(row) for row in db.execute(text("SELECT * FROM identity_device_grants"))
        )
    assert started["device_code"] not in dumped
    plain = started["user_code"].replace("-", "")
    assert plain not in dumped and started["user_code"] not in dumped
    assert hashlib.sha256(started["device_code"].encode()).hexdigest() in dumped


def test_requests_a_day_past_their_expiry_are_deleted_as_new_ones_come(facility):
    t0 = utcnow()
    with facility.db.session() as db:
        old = device_grant.start(db, client_id=CLIENT, scope=None, now=t0)
        later = t0 + device_grant.LIFETIME + device_grant.KEEP_EXPIRED
        device_grant.start(db, client_id=CLIENT, scope=None, now=later)
        with db.begin():
            assert db.scalar(select(func.count()).select_from(DeviceGrant)) == 2
        device_grant.start(db, client_id=CLIENT, scope=None, now=later + timedelta(seconds=1))
        with db.begin():
            assert db.scalar(select(func.count()).select_from(DeviceGrant)) == 2
        assert _refusal(db, old.device_code, later) == "invalid_grant"


def test_user_codes_are_short_and_unambiguous(client):
    for _ in range(20):
        code = start(client)["user_code"]
        assert len(code) == 9 and code[4] == "-"
        assert set(code.replace("-", "")) <= set("BCDFGHJKLMNPQRSTVWXZ")


@pytest.mark.parametrize("typed", ["bcdf-ghjk", " BCDF GHJK ", "BCDFGHJK", "bcdf-Ghjk"])
def test_a_typed_user_code_is_read_in_any_case_with_or_without_its_dash(typed):
    assert device_grant.normalize_user_code(typed) == "BCDFGHJK"


@pytest.mark.parametrize("typed", ["", "BCDF-GHJ", "BCDF-GHJKL", "ABCD-EFGH", "0000-1111", "ÄÖÜ"])
def test_a_user_code_of_the_wrong_shape_is_refused(typed):
    with pytest.raises(InvalidInput):
        device_grant.normalize_user_code(typed)


# Refusals at the token endpoint ----------------------------------------------------------------


def _refusal(db, device_code, now):
    with pytest.raises(OAuthError) as refused:
        device_grant.exchange(db, client_id=CLIENT, device_code=device_code, now=now)
    return refused.value.error


def test_polling_faster_than_the_interval_answers_slow_down_and_the_interval_grows(facility):
    t0 = utcnow()
    with facility.db.session() as db:
        started = device_grant.start(db, client_id=CLIENT, scope=None, now=t0)
        code = started.device_code
        assert _refusal(db, code, t0) == "authorization_pending"
        assert _refusal(db, code, t0 + timedelta(seconds=2)) == "slow_down"
        # The interval is now 10 s from the last poll: 6 s later is still too soon.
        assert _refusal(db, code, t0 + timedelta(seconds=8)) == "slow_down"
        assert _refusal(db, code, t0 + timedelta(seconds=24)) == "authorization_pending"
        with db.begin():
            assert db.scalar(select(DeviceGrant.interval)) == 15


def test_a_request_nobody_approved_in_time_expires(facility, client, researcher):
    _, token = researcher
    t0 = utcnow()
    with facility.db.session() as db:
        started = device_grant.start(db, client_id=CLIENT, scope=None, now=t0)
        later = t0 + device_grant.LIFETIME
        assert _refusal(db, started.device_code, later) == "expired_token"
        principal = identity.authenticate(db, token)
        with pytest.raises(NotFound):
            device_grant.approve(db, principal, started.user_code, now=later)


def test_an_expired_request_cannot_be_approved_on_the_portal(client, app, researcher):
    _, token = researcher
    started = start(client)
    with app.state.db.session() as db, db.begin():
        db.execute(update(DeviceGrant).values(expires_at=utcnow() - timedelta(seconds=1)))
    sign_in(client, token)
    page = client.get("/device", params={"user_code": started["user_code"]})
    assert page.status_code == 404 and "sign-in request is waiting" in page.text
    assert oauth_error(poll(client, started["device_code"])) == "expired_token"


def test_a_denied_request_answers_access_denied(client, app, researcher):
    _, token = researcher
    started = start(client)
    sign_in(client, token)
    page = client.get("/device", params={"user_code": started["user_code"]})
    denied = client.post(
        "/device/deny", data={"csrf": csrf_of(page.text), "user_code": started["user_code"]}
    )
    assert denied.status_code == 200 and 'id="device-denied"' in denied.text
    assert oauth_error(poll(client, started["device_code"])) == "access_denied"
    # Answered once: it cannot be approved after all.
    again = client.post(
        "/device/approve", data={"csrf": csrf_of(page.text), "user_code": started["user_code"]}
    )
    assert again.status_code == 404
    assert [g.status for g in grants(app)] == ["denied"]


def test_the_token_is_never_broader_than_the_sign_in_that_approved_it(client, app, operator):
    person = new_person(client, operator, "Baraka Otieno")
    response = client.post(
        f"/api/v1/people/{person['id']}/tokens",
        json={"scopes": ["read", "write"], "expires_in_days": 2},
        headers=operator,
    )
    started = start(client, scope="read write admin")
    approve_in_portal(client, response.json()["token"], started["user_code"])
    may_poll_again(app)
    issued = poll(client, started["device_code"]).json()
    assert issued["scope"] == "read write"  # no admin: the approving sign-in has none
    assert issued["expires_in"] <= 2 * 86400  # not past the approving sign-in's token


def test_a_read_only_sign_in_cannot_approve_a_device(client, app, operator):
    person = new_person(client, operator, "Chausiku Wambui")
    token = token_for(client, operator, person["id"], scopes=("read",))
    started = start(client)
    sign_in(client, token)
    page = client.get("/device", params={"user_code": started["user_code"]})
    assert page.status_code == 403 and "Approve" not in page.text
    refused = client.post(
        "/device/approve", data={"csrf": csrf_of(page.text), "user_code": started["user_code"]}
    )
    assert refused.status_code == 403
    assert [g.status for g in grants(app)] == ["pending"]


@pytest.mark.parametrize("change", ["deactivate", "revoke"])
def test_an_approval_is_void_once_the_approvers_access_ends(client, app, operator, change):
    person = new_person(client, operator, "Dalia Mwangi")
    token = token_for(client, operator, person["id"])
    started = start(client)
    approve_in_portal(client, token, started["user_code"])
    if change == "deactivate":
        changed = client.patch(
            f"/api/v1/people/{person['id']}", json={"active": False}, headers=operator
        )
    else:
        listed = client.get(f"/api/v1/people/{person['id']}/tokens", headers=operator).json()
        changed = client.delete(f"/api/v1/tokens/{listed['items'][0]['id']}", headers=operator)
    assert changed.status_code == 200, changed.text
    client.cookies.clear()
    may_poll_again(app)
    assert oauth_error(poll(client, started["device_code"])) == "access_denied"
    with app.state.db.session() as db, db.begin():
        assert db.scalar(select(func.count()).where(DeviceGrant.token_id.is_not(None))) == 0


def test_the_public_is_asked_to_sign_in_first(client, app):
    started = start(client)
    page = client.get("/device", params={"user_code": started["user_code"]})
    assert page.status_code == 401 and 'href="/signin"' in page.text
    with app.state.db.session() as db, pytest.raises(Unauthenticated):
        device_grant.approve(db, PUBLIC, started["user_code"])


# Hostile input ---------------------------------------------------------------------------------

LONG = "x" * 10_000


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({}, 400, "invalid_request"),
        ({"grant_type": "authorization_code"}, 400, "unsupported_grant_type"),
        ({"grant_type": "password", "username": "a", "password": "b"}, 400,
         "unsupported_grant_type"),
        ({"grant_type": DEVICE_CODE_GRANT, "client_id": CLIENT}, 400, "invalid_request"),
        ({"grant_type": DEVICE_CODE_GRANT, "device_code": "abc"}, 400, "invalid_request"),
        ({"grant_type": DEVICE_CODE_GRANT, "device_code": "abc", "client_id": "evil"}, 401,
         "invalid_client"),
        ({"grant_type": DEVICE_CODE_GRANT, "device_code": "abc", "client_id": CLIENT}, 400,
         "invalid_grant"),
        ({"grant_type": DEVICE_CODE_GRANT, "device_code": LONG, "client_id": CLIENT}, 400,
         "invalid_grant"),
        ({"grant_type": DEVICE_CODE_GRANT, "device_code": "a\x00b", "client_id": CLIENT}, 400,
         "invalid_grant"),
        ({"grant_type": LONG, "device_code": "abc", "client_id": CLIENT}, 400,
         "unsupported_grant_type"),
        ({"grant_type": DEVICE_CODE_GRANT, "device_code": "abc", "client_id": LONG}, 401,
         "invalid_client"),
    ],
)  # fmt: skip
def test_the_token_endpoint_refuses_malformed_requests(client, app, form, status, error):
    started = start(client)
    assert oauth_error(client.post(TOKEN, data=form), status) == error
    assert [(g.status, g.last_polled_at) for g in grants(app)] == [("pending", None)]
    assert started  # the real request is untouched by the hostile ones


@pytest.mark.parametrize(
    "send",
    [
        lambda c, body: c.post(TOKEN, json=body),
        lambda c, body: c.post(TOKEN, content=b"\xff\xfe\x00garbage",
                               headers={"content-type": "application/octet-stream"}),
        lambda c, body: c.post(TOKEN),
        lambda c, body: c.post(TOKEN, content="grant_type=%ZZ&&==",
                               headers={"content-type": "application/x-www-form-urlencoded"}),
    ],
)  # fmt: skip
def test_the_token_endpoint_takes_only_a_form(client, app, send):
    started = start(client)
    body = {"grant_type": DEVICE_CODE_GRANT, "device_code": started["device_code"]}
    response = send(client, {**body, "client_id": CLIENT})
    assert oauth_error(response) in {"invalid_request", "unsupported_grant_type"}
    assert [g.status for g in grants(app)] == ["pending"]


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({}, 400, "invalid_request"),
        ({"client_id": "someone-else"}, 401, "invalid_client"),
        ({"client_id": CLIENT, "scope": "read root"}, 400, "invalid_scope"),
        ({"client_id": CLIENT, "scope": LONG}, 400, "invalid_scope"),
        ({"client_id": CLIENT, "scope": "read\x00"}, 400, "invalid_scope"),
    ],
)
def test_the_device_endpoint_refuses_malformed_requests(client, app, form, status, error):
    assert oauth_error(client.post(DEVICE, data=form), status) == error
    assert grants(app) == []


def test_the_device_endpoint_takes_only_a_form(client, app):
    assert oauth_error(client.post(DEVICE, json={"client_id": CLIENT})) == "invalid_request"
    assert grants(app) == []


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("nonsense", 422),
        ("AAAA-AAAA", 422),  # vowels are never in a code
        ("BCDF-GHJK", 404),  # the right shape, issued to no one
        ("B" * 33, 400),  # longer than any code: refused before it is read
        ("<script>alert(1)</script>", 422),
        ("BCDF\x00GHJK", 422),
    ],
)
def test_the_device_page_refuses_a_bad_code_and_changes_nothing(
    client, app, researcher, code, status
):
    _, token = researcher
    start(client)
    sign_in(client, token)
    page = client.get("/device", params={"user_code": code})
    assert page.status_code == status
    assert "<script>alert(1)</script>" not in page.text
    form = client.get("/device").text
    posted = client.post("/device/approve", data={"csrf": csrf_of(form), "user_code": code})
    assert posted.status_code == status
    assert [g.status for g in grants(app)] == ["pending"]


def test_approving_needs_the_forms_csrf_token_and_this_site(client, app, researcher):
    _, token = researcher
    started = start(client)
    sign_in(client, token)
    page = client.get("/device", params={"user_code": started["user_code"]})
    forged = client.post("/device/approve", data={"user_code": started["user_code"]})
    assert forged.status_code == 403
    cross_site = client.post(
        "/device/approve",
        data={"csrf": csrf_of(page.text), "user_code": started["user_code"]},
        headers={"Origin": "https://evil.example"},
    )
    assert cross_site.status_code == 403
    assert [g.status for g in grants(app)] == ["pending"]

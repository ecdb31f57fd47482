"""Portal pages through the ASGI app (SQLite and PostgreSQL): what they show, sign-in and
its CSRF protection, the public record with proofs, and HTML error pages."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from starlette.requests import Request

from commonlab.errors import AccessDenied
from commonlab.identity.models import ApiToken
from commonlab.portal import reads
from commonlab.portal.charts import column_chart, row_chart
from commonlab.portal.session import (
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    cookie_max_age,
    csrf_token,
    require_api_csrf,
    return_path,
)
from commonlab.record.merkle import leaf_hash, verify_inclusion
from tests.helpers import problem, sequence_now
from tests.portal.helpers import csrf_of, post_sign_in

INSTITUTIONS = [
    {"name": "University of Nairobi", "country": "KE", "kind": "university"},
    {"name": "Politecnico di Milano", "country": "IT", "kind": "university"},
    {"name": "Tartu Speech Lab", "country": "EE", "kind": "research_lab"},
]


# Helpers -------------------------------------------------------------------------------------


def _card(page: str, title: str) -> str:
    """The text of the home page's card headed `title`, tags stripped."""
    match = re.search(
        rf'<li class="card[^"]*">\s*<h3>{re.escape(title)}</h3>(.*?)</li>', page, re.S
    )
    assert match, f"no card {title!r}"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


def _text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _is_html(response: Any) -> None:
    assert response.headers["content-type"].startswith("text/html"), response.text[:200]


def _set_cookie(response: Any) -> str:
    return "; ".join(v for k, v in response.headers.multi_items() if k == "set-cookie")


def _me(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    return client.get("/api/v1/me", headers=headers).json()


def _issue(client: TestClient, operator: dict[str, str], **body: Any) -> dict[str, Any]:
    person_id = _me(client, operator)["person"]["id"]
    response = client.post(f"/api/v1/people/{person_id}/tokens", json=body, headers=operator)
    assert response.status_code == 201, response.text
    return response.json()


def _create_institutions(client: TestClient, operator: dict[str, str]) -> None:
    for body in INSTITUTIONS:
        response = client.post("/api/v1/institutions", json=body, headers=operator)
        assert response.status_code == 201, response.text


# Home ----------------------------------------------------------------------------------------


def test_home_explains_what_does_not_exist_yet(client):
    response = client.get("/")
    assert response.status_code == 200
    _is_html(response)
    page = response.text
    assert "A public facility for open AI research" in page
    assert "No member states yet. States join by a recorded council vote" in _card(
        page, "Member states"
    )
    # The embedded default registers this machine as the `local` partition: the card says so,
    # as /fleet does (it used to claim an empty fleet beside a page that showed one).
    fleet = client.get("/api/v1/fleet").json()
    assert _card(page, "Fleet").startswith(f"{fleet['accelerators']} accelerator")
    assert "No projects yet" in _card(page, "Projects")
    assert "No institutions yet" in _card(page, "Institutions")
    assert "No countries yet" in _card(page, "Countries")
    assert "No accounts yet" in _card(page, "People")
    assert "Nothing signed yet" in _card(page, "Public record")
    # Empty states, not zeros pretending to be data.
    assert page.count('class="stat-value"') == 1  # the fleet's
    assert "Institutions by kind" not in page
    # Nav: home, public record, sign in.
    for href in ('href="/"', 'href="/record"', 'href="/signin"'):
        assert href in page


def test_home_counts_institutions_people_and_the_record(client, app, operator):
    _create_institutions(client, operator)
    size = sequence_now(app)
    page = client.get("/").text
    assert _card(page, "Institutions").startswith("3 institutions")
    assert _card(page, "Countries").startswith("3 countries")
    assert _card(page, "People").startswith("1 account")
    record_card = _card(page, "Public record")
    assert record_card.startswith(f"{size} entries")
    assert "latest checkpoint signed" in record_card
    # Institutions by kind: a chart with its numbers also as a table.
    assert "Institutions by kind" in page
    chart = page[page.index('<figure class="chart">') :]
    assert '<svg viewBox="0 0 ' in chart and 'role="img"' in chart
    assert re.search(r"<td>Universities</td><td class=\"num\">2</td>", chart)
    assert re.search(r"<td>Research labs</td><td class=\"num\">1</td>", chart)
    assert re.search(r"<td>SMEs</td><td class=\"num\">0</td>", chart)
    # The latest entries, newest first, each linking to its page.
    assert "identity:institution:created" in page
    assert f'href="/record/entries/{size - 1}"' in page
    assert "No member states yet" in page  # later domains still say so


def test_home_cards_agree_with_the_fleet_and_projects_pages(client, operator):
    from tests.compute.helpers import award_project

    client.put(
        "/api/v1/fleet",
        json={
            "sites": [{"name": "bologna", "country": "IT"}],
            "partitions": [
                {"name": "booster", "site": "bologna", "accelerator": "H100", "nodes": 10,
                 "accelerators_per_node": 4},
            ],
        },
        headers=operator,
    )  # fmt: skip
    award_project(client, operator)
    award_project(client, operator, found=False)
    fleet = client.get("/api/v1/fleet").json()
    page = client.get("/").text
    assert _card(page, "Fleet").startswith(f"{fleet['accelerators']} accelerators")
    assert f"{len(fleet['partitions'])} partitions at 2 sites" in _card(page, "Fleet")
    assert _card(page, "Projects").startswith("2 active projects")
    assert client.get("/projects").text.count('class="project-card"') == 2


def test_pages_carry_no_script_and_a_strict_content_security_policy(client):
    for path in ("/", "/signin", "/me", "/record", "/record/entries/0", "/no-such-page"):
        response = client.get(path)
        _is_html(response)
        assert "<script" not in response.text.lower()
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
    css = client.get("/static/portal.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "http://" not in css.text and "https://" not in css.text  # no network fonts


# Sign-in -------------------------------------------------------------------------------------


def test_signing_in_sets_an_httponly_cookie_and_me_shows_the_person(client, operator_token):
    response = post_sign_in(client, operator_token)
    assert response.status_code == 303
    assert response.headers["location"] == "/me"
    cookie = _set_cookie(response)
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # secure_cookies is off on a laptop
    max_age = int(re.search(r"Max-Age=(\d+)", cookie).group(1))
    assert 0 < max_age <= SESSION_MAX_AGE

    me = client.get("/me")
    assert me.status_code == 200
    assert me.headers["cache-control"] == "no-store"
    text = _text(me.text)
    assert "Facility operator" in text
    assert re.search(r"Pseudonym p-[0-9a-f]{16}", text)
    assert "operator" in text
    for scope in ("admin", "read", "write"):
        assert f"<li>{scope}</li>" in me.text
    assert "Clearance none" in text
    # The header shows who is signed in, and a sign-out form instead of "Sign in".
    home = client.get("/").text
    assert 'href="/me"' in home and "Facility operator" in home
    assert 'action="/signout"' in home and 'href="/signin"' not in home


def test_the_cookie_is_secure_when_the_facility_says_so(client, app, operator_token):
    facility = app.state.facility
    facility.settings = facility.settings.model_copy(update={"secure_cookies": True})
    cookie = _set_cookie(post_sign_in(client, operator_token))
    assert "Secure" in cookie and "HttpOnly" in cookie


def test_the_cookie_never_outlives_the_token(client, operator):
    issued = _issue(client, operator, name="short", scopes=["read"], expires_in_days=1)
    cookie = _set_cookie(post_sign_in(client, issued["token"]))
    assert int(re.search(r"Max-Age=(\d+)", cookie).group(1)) <= SESSION_MAX_AGE
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert cookie_max_age(now + timedelta(minutes=5), now) == 300
    assert cookie_max_age(now + timedelta(days=300), now) == SESSION_MAX_AGE
    assert cookie_max_age(now - timedelta(days=1), now) == 0


@pytest.mark.parametrize(
    ("token", "status", "reason"),
    [
        ("", 400, "Paste your API token"),
        ("   ", 400, "Paste your API token"),
        ("x" * 600, 400, "far longer than a commonlab token"),
        ("hello", 401, "malformed token"),
        ("clab_000000000000_nope", 401, "unknown token"),
    ],
)
def test_a_bad_token_shows_the_reason_and_sets_no_cookie(
    client, operator_token, token, status, reason
):
    response = post_sign_in(client, token)
    assert response.status_code == status
    _is_html(response)
    assert reason.lower() in html.unescape(response.text).lower()
    assert 'role="alert"' in response.text
    assert SESSION_COOKIE not in _set_cookie(response)
    assert "Facility operator" not in client.get("/me").text


def test_an_expired_token_is_refused_with_its_reason(client, app, operator):
    issued = _issue(client, operator, name="old", scopes=["read"], expires_in_days=1)
    with app.state.db.session() as session, session.begin():
        session.execute(
            update(ApiToken)
            .where(ApiToken.id == issued["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(days=1))
        )
    response = post_sign_in(client, issued["token"])
    assert response.status_code == 401
    assert f"Token {issued['key_id']} expired on" in html.unescape(response.text)
    assert SESSION_COOKIE not in _set_cookie(response)


def test_a_revoked_token_is_refused_and_ends_a_session_that_used_it(client, operator):
    issued = _issue(client, operator, name="browser", scopes=["read"])
    assert post_sign_in(client, issued["token"]).status_code == 303
    assert "Facility operator" in client.get("/me").text
    revoked = client.delete(f"/api/v1/tokens/{issued['id']}", headers=operator)
    assert revoked.status_code == 200, revoked.text
    # The browser still holds the cookie: it now reads as the public, with the reason.
    me = _text(client.get("/me").text)
    assert "Your session on this browser has ended" in me and "was revoked" in me
    assert "Sign in" in me
    client.cookies.clear()
    response = post_sign_in(client, issued["token"])
    assert response.status_code == 401
    assert f"Token {issued['key_id']} was revoked" in html.unescape(response.text)
    assert SESSION_COOKIE not in _set_cookie(response)


@pytest.mark.parametrize(
    "asked",
    [
        "//evil.example/",
        "/\\evil.example",
        "/\\/evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "device",
        "/me\r\nSet-Cookie: x=1",
        "/me\x00",
        "/" + "a" * 600,
        "",
        None,
    ],
)
def test_a_sign_in_returns_only_to_a_page_of_this_portal(asked):
    assert return_path(asked) == "/me"


def test_the_sign_in_form_returns_to_the_page_that_sent_the_person(client, operator_token):
    form = client.get("/signin", params={"next": "/device?user_code=BCDF-GHJK"})
    assert '<input type="hidden" name="next" value="/device?user_code=BCDF-GHJK">' in form.text

    def post(token: str, destination: str) -> Any:
        data = {"csrf": csrf_of(client.get("/signin").text), "token": token, "next": destination}
        return client.post("/signin", data=data, follow_redirects=False)

    refused = post("clab_1_nope", "/projects")
    assert refused.status_code == 401 and 'name="next" value="/projects"' in refused.text
    assert post(operator_token, "/" + "a" * 5000).status_code == 400  # past the field's bound
    away = post(operator_token, "//evil.example")
    assert (away.status_code, away.headers["location"]) == (303, "/me")
    back = post(operator_token, "/device?user_code=BCDF-GHJK")
    assert (back.status_code, back.headers["location"]) == (303, "/device?user_code=BCDF-GHJK")


def test_me_asks_the_public_to_sign_in(client):
    response = client.get("/me")
    assert response.status_code == 200
    text = _text(response.text)
    assert "You are browsing as the public" in text
    assert 'href="/signin"' in response.text


def test_a_forged_cookie_signs_no_one_in(client, app, operator_token):
    client.cookies.set(SESSION_COOKIE, operator_token)  # the old cookie carried the token
    text = _text(client.get("/me").text)
    assert "Facility operator" not in text
    assert "not valid here" in text


# CSRF ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "csrf",
    [None, "", "0" * 64, "not-hex", "ü" * 10],
    ids=["missing", "empty", "zeros", "junk", "utf8"],
)
def test_signing_in_without_the_right_csrf_token_is_refused(client, operator_token, csrf):
    data = {"token": operator_token} | ({} if csrf is None else {"csrf": csrf})
    response = client.post("/signin", data=data, follow_redirects=False)
    assert response.status_code == 403
    _is_html(response)
    assert "nothing was changed" in response.text
    assert SESSION_COOKIE not in _set_cookie(response)
    assert "Facility operator" not in client.get("/me").text


def test_a_csrf_token_from_before_sign_in_does_not_work_after_it(client, operator_token):
    anonymous = csrf_of(client.get("/signin").text)
    assert post_sign_in(client, operator_token).status_code == 303
    response = client.post("/signout", data={"csrf": anonymous}, follow_redirects=False)
    assert response.status_code == 403
    assert SESSION_COOKIE not in _set_cookie(response)
    assert "Facility operator" in client.get("/me").text  # still signed in


def test_a_post_from_another_site_is_refused(client, operator_token):
    form = client.get("/signin").text
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        response = client.post(
            "/signin",
            data={"csrf": csrf_of(form), "token": operator_token},
            headers=headers,
            follow_redirects=False,
        )
        assert response.status_code == 403, headers
        assert SESSION_COOKIE not in _set_cookie(response)
    same_site = client.post(
        "/signin",
        data={"csrf": csrf_of(form), "token": operator_token},
        headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
        follow_redirects=False,
    )
    assert same_site.status_code == 303


def test_a_json_post_is_not_a_form_and_is_refused(client, operator_token):
    response = client.post("/signin", json={"token": operator_token}, follow_redirects=False)
    assert response.status_code == 403
    assert SESSION_COOKIE not in _set_cookie(response)


def test_signing_out_clears_the_cookie(client, operator_token):
    assert post_sign_in(client, operator_token).status_code == 303
    page = client.get("/me").text
    response = client.post("/signout", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = _set_cookie(response)
    assert cookie.startswith(f'{SESSION_COOKIE}=""') or cookie.startswith(f"{SESSION_COOKIE}=;")
    assert "Max-Age=0" in cookie
    assert SESSION_COOKIE not in client.cookies
    assert "You are browsing as the public" in _text(client.get("/me").text)


def test_api_csrf_guard_refuses_cookie_only_unsafe_requests(app, operator_token):
    secret = app.state.facility.session_secret
    cookie = "an-opaque-session-id"  # the guard binds the CSRF token to whatever is sent

    def request(method: str, **headers: str) -> Request:
        raw = [(b"cookie", f"{SESSION_COOKIE}={cookie}".encode()), (b"host", b"testserver")]
        raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        return Request({"type": "http", "method": method, "headers": raw, "app": app})

    require_api_csrf(request("GET"))  # reads need no token
    with pytest.raises(AccessDenied, match="X-CSRF-Token"):
        require_api_csrf(request("POST"))
    with pytest.raises(AccessDenied):
        require_api_csrf(request("DELETE", **{"X-CSRF-Token": csrf_token(secret, None)}))
    good = csrf_token(secret, cookie)
    require_api_csrf(request("PATCH", **{"X-CSRF-Token": good}))
    with pytest.raises(AccessDenied, match="cross-site"):
        require_api_csrf(
            request("POST", **{"X-CSRF-Token": good, "Origin": "https://evil.example"})
        )


def test_the_api_refuses_a_cookie_only_post_without_the_csrf_header(client, operator_token):
    assert post_sign_in(client, operator_token).status_code == 303
    response = client.post("/api/v1/institutions", json=INSTITUTIONS[0])
    assert response.status_code == 403
    problem(response)
    assert client.get("/api/v1/institutions").json()["items"] == []  # nothing changed
    # The page hands its scripts the token for the header (for htmx, later).
    meta = re.search(r'<meta name="csrf-token" content="([0-9a-f]{64})">', client.get("/").text)
    created = client.post(
        "/api/v1/institutions", json=INSTITUTIONS[0], headers={"X-CSRF-Token": meta.group(1)}
    )
    assert created.status_code == 201, created.text


def test_a_non_ascii_csrf_header_is_refused_not_a_500(client, operator_token):
    assert post_sign_in(client, operator_token).status_code == 303
    response = client.post(
        "/api/v1/institutions",
        json=INSTITUTIONS[0],
        headers={"X-CSRF-Token": "é".encode("latin-1")},
    )
    assert response.status_code == 403
    problem(response)


# The public record ---------------------------------------------------------------------------


def test_record_page_lists_entries_newest_first_with_filters(client, app, operator):
    _create_institutions(client, operator)
    size = sequence_now(app)
    response = client.get("/record")
    assert response.status_code == 200
    page = response.text
    text = _text(page)
    assert f"Entries {size}" in text
    assert "Root hash" in text and "Verifier key" in text
    verifier = app.state.facility.signer.verifier_key()
    assert html.escape(verifier) in page
    note = f"{app.state.facility.origin}\n{size}\n"
    assert f'<pre class="code" aria-label="Signed checkpoint note">{note}' in page
    assert "commonlab record watch http://testserver" in text
    indexes = [int(i) for i in re.findall(r'href="/record/entries/(\d+)"', page)]
    assert indexes == sorted(indexes, reverse=True) and indexes[0] == size - 1
    # Activity over the last 30 days, drawn and tabled.
    assert "Entries added to the record per day" in page
    today = datetime.now(UTC).date().isoformat()
    assert re.search(rf"<td>{today}</td><td class=\"num\">{size}</td>", page)

    by_type = client.get("/record", params={"type": "identity:institution"}).text
    types = re.findall(r'<code class="type">([^<]+)</code>', by_type)
    assert types == ["identity:institution:created"] * 3
    by_subject = client.get("/record", params={"subject": "institution/2"}).text
    assert re.findall(r'<td class="subject">([^<]+)</td>', by_subject) == ["institution/2"]
    none = client.get("/record", params={"type": "governance", "subject": ""})
    assert none.status_code == 200 and "No entries match these filters" in none.text
    # The filter form keeps what was asked, and offers the known types.
    assert 'value="identity:institution"' in by_type
    assert '<option value="identity:token">' in by_type


def test_record_pages_older_entries(client, app, operator):
    _create_institutions(client, operator)
    size = sequence_now(app)
    with app.state.db.session() as db:
        first = reads.record_page(db, limit=2)
        assert [row.index for row in first.rows] == [size - 1, size - 2]
        assert first.older == size - 2
        rest = reads.record_page(db, before=first.older, limit=50)
        assert [row.index for row in rest.rows] == list(range(size - 3, -1, -1))
        assert rest.older is None
    older = client.get("/record", params={"before": 2}).text
    assert [int(i) for i in re.findall(r'href="/record/entries/(\d+)"', older)] == [1, 0]
    assert 'href="/record">← Newest</a>' in older


def test_empty_record_page_says_so(client):
    text = _text(client.get("/record").text)
    assert "Nothing signed yet" in text
    assert "No entries on the record yet" in text
    assert "No entries in the last 30 days" in text


def test_entry_page_shows_the_entry_and_a_proof_that_verifies(client, app, operator):
    _create_institutions(client, operator)
    size = sequence_now(app)
    index = size - 2
    response = client.get(f"/record/entries/{index}")
    assert response.status_code == 200
    page = response.text
    raw = client.get(f"/record/entries/{index}/raw")
    assert raw.status_code == 200 and raw.headers["content-type"] == "application/json"
    body = raw.content
    api = client.get(f"/api/v1/record/entries/{index}").json()
    assert api["leaf_hash"] == leaf_hash(body).hex()
    # The exact bytes, the leaf hash, and the proof are on the page.
    shown = html.unescape(
        re.search(
            r'<pre class="code wrap-anywhere" id="entry-bytes">(.*?)</pre>', page, re.S
        ).group(1)
    )
    assert shown.encode() == body
    assert hashlib.sha256(b"\x00" + body).hexdigest() in page
    proof = [
        bytes.fromhex(h)
        for h in re.findall(r'<li><code class="hash">([0-9a-f]{64})</code></li>', page)
    ]
    root = base64.b64decode(
        re.search(r'<code class="hash" id="root-hash">([^<]+)</code>', page).group(1)
    )
    verify_inclusion(leaf_hash(body), index, size, proof, root)
    checkpoint = client.get("/log/checkpoint").text.split("\n")
    assert base64.b64decode(checkpoint[2]) == root
    # The "verify it yourself" script runs and says OK, with nothing but the standard library.
    script = html.unescape(
        re.search(r'<pre class="code" id="verify-script">(.*?)</pre>', page, re.S).group(1)
    )
    run = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=30
    )
    assert run.stdout.strip() == "OK: the entry is in the tree", run.stderr
    text = _text(page)
    assert "SHA-256(0x00 ‖ entry bytes)" in text
    assert "commonlab record watch http://testserver" in text
    assert (
        f'href="/record/entries/{index - 1}"' in page
        and f'href="/record/entries/{index + 1}"' in page
    )


def test_entry_data_is_escaped(client, app, operator):
    hostile = {"name": "<script>alert(1)</script> & Co", "country": "KE", "kind": "sme"}
    assert client.post("/api/v1/institutions", json=hostile, headers=operator).status_code == 201
    size = sequence_now(app)
    page = client.get(f"/record/entries/{size - 1}").text
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in page


def test_unknown_entry_is_a_404_page(client, app, operator_token):
    sequence_now(app)
    for path in ("/record/entries/999", "/record/entries/999/raw", f"/record/entries/{2**53}"):
        response = client.get(path)
        assert response.status_code == 404, path
        _is_html(response)
        assert "No entry at index" in response.text


@pytest.mark.parametrize(
    "path",
    [
        "/record/entries/abc",
        "/record/entries/-1",
        "/record/entries/1.5",
        "/record/entries/99999999999999999999999999999",
        "/record?before=abc",
        "/record?before=-5",
        "/record?before=1e999",
        "/record?before=99999999999999999999999999999",
        "/record?type=%25",
        "/record?type=IDENTITY",
        "/record?type=" + "a" * 81,
        "/record?subject=%00",
        "/record?subject=a%0Ab",
        "/record?subject=" + "s" * 201,
    ],
)
def test_hostile_values_get_a_4xx_page_never_a_500(client, app, operator_token, path):
    sequence_now(app)
    response = client.get(path)
    assert 400 <= response.status_code < 500, (path, response.status_code)
    _is_html(response)
    assert "Bad request" in response.text or "Page not found" in response.text


def test_portal_errors_are_html_and_api_errors_stay_problem_json(client):
    page = client.get("/no-such-page")
    assert page.status_code == 404
    _is_html(page)
    assert "There is no page at this address" in page.text
    assert client.get("/signout").status_code == 405  # sign-out only by POST
    _is_html(client.get("/signout"))
    api = client.get("/api/v1/no-such-route")
    assert api.status_code == 404 and problem(api)["detail"].startswith("no such route")
    invalid = client.get("/api/v1/institutions/abc")
    assert invalid.status_code == 422 and problem(invalid)["title"] == "Invalid input"
    missing = client.get("/api/v1/record/entries/5")
    assert missing.status_code == 404 and problem(missing)
    assert (
        client.get("/log/tile/0/x").headers["content-type"].startswith("application/problem+json")
    )


# Charts --------------------------------------------------------------------------------------


def test_charts_scale_to_the_largest_value_and_keep_small_ones_visible():
    rows = row_chart([("a", 10), ("b", 1), ("c", 0)])
    assert rows.maximum == 10 and rows.total == 11
    a, b, c = rows.bars
    assert a.width > b.width > 0 and c.width == 0
    assert all(bar.x == a.x for bar in rows.bars)
    columns = column_chart([(str(i), v) for i, v in enumerate([0, 1, 1000, 0])], label_every=2)
    assert columns.bars[1].height > 0 and columns.bars[0].height == 0
    assert columns.bars[2].y < columns.bars[1].y
    assert [bar.label for bar in columns.bars] == ["", "1", "", "3"]
    assert row_chart([]).bars == () and column_chart([]).total == 0

"""The portal's sign-in with a provider, linked accounts and the operators' affiliations page,
over HTTP against the real provider (glewlwyd): each route with good, malformed, hostile and
out-of-range input. A refusal is a page that says why (4xx, or 502 for a provider that is
down), never a 500, and changes nothing."""

from __future__ import annotations

import json
import logging
import shutil
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from commonlab.config import Settings
from commonlab.db import utcnow
from commonlab.identity.federation_models import FederatedIdentity
from commonlab.identity.models import Institution, Person
from commonlab.portal.models import PortalSession
from tests.oidc_fixtures import Glewlwyd, oidc, query_of, sign_in_at_provider  # noqa: F401
from tests.portal.helpers import csrf_of, sign_in

CALLBACK = "http://testserver/signin/callback"  # the TestClient's own address


@pytest.fixture(scope="module")
def registered(oidc: Glewlwyd):  # noqa: F811
    return oidc.register_client(CALLBACK)


@pytest.fixture
def settings(tmp_path, sqlite_template, oidc: Glewlwyd, registered) -> Settings:  # noqa: F811
    """SQLite only: the pages add nothing database-specific to the flow, which
    test_federation.py runs on both databases."""
    database = tmp_path / "commonlab.db"
    shutil.copy(sqlite_template, database)
    providers = (
        oidc.provider(registered),
        oidc.provider(registered, name="orcid", display_name="ORCID", kind="orcid"),
        oidc.provider(registered, name="down", display_name="Closed U", issuer=DOWN),
    )
    return Settings(
        home=tmp_path / "home", database_url=f"sqlite:///{database}", oidc_providers=providers
    )


DOWN = "http://127.0.0.1:9/closed-u"  # nothing listens on port 9


def start(client, path: str = "/signin/with/uni-a", page: str | None = None):
    """Follow a sign-in link, or (with `page`) a link-an-account link carrying its CSRF token."""
    if page is not None:
        path += "?csrf=" + csrf_of(client.get(page).text)
    return client.get(path, follow_redirects=False)


def sign_in_with_provider(client, oidc, registered, **kwargs):  # noqa: F811
    """The whole trip as a browser makes it: the button, the provider, the callback."""
    left = start(client, **kwargs)
    assert left.status_code == 303, left.text
    back = sign_in_at_provider(oidc, left.headers["location"], client_id=registered.client_id)
    assert back.startswith(CALLBACK)
    return client.get(back.removeprefix("http://testserver"), follow_redirects=False)


def people(facility) -> int:
    with facility.db.session() as db:
        return db.scalar(select(func.count()).select_from(Person))


def test_the_sign_in_page_offers_the_institutions_not_orcid(client):
    page = client.get("/signin").text
    assert "Sign in with University A" in page and "Sign in with Closed U" in page
    assert "Sign in with ORCID" not in page  # ORCID links to an account; it opens none


def test_signing_in_with_a_provider_opens_a_session_and_the_second_time_finds_the_person(
    client,
    facility,
    oidc,  # noqa: F811
    registered,
):
    back = sign_in_with_provider(client, oidc, registered)
    assert (back.status_code, back.headers["location"]) == (303, "/me/accounts?welcome=1")
    assert "commonlab_session" in back.headers["set-cookie"]
    page = client.get(back.headers["location"]).text
    assert "Welcome" in page and "Ada Lovelace" in page and "uni-a.example" in page
    assert client.get("/me").status_code == 200 and "Ada Lovelace" in client.get("/me").text

    client.post("/signout", data={"csrf": csrf_of(client.get("/me").text)})
    again = sign_in_with_provider(client, oidc, registered)
    assert (again.status_code, again.headers["location"]) == (303, "/me")
    assert people(facility) == 1


def test_a_hostile_callback_is_refused_with_a_page_and_changes_nothing(
    client,
    facility,
    oidc,  # noqa: F811
    registered,
):
    left = start(client)
    back = sign_in_at_provider(oidc, left.headers["location"], client_id=registered.client_id)
    real = query_of(back)
    for query, status, says in (
        ("", 401, "without its state"),
        ("?state=forged&code=x", 401, "unknown here"),
        ("?state=" + "s" * 5000, 400, "state"),
        ("?state=s&code=" + "c" * 5000, 400, "code"),
        ("?state=%00%ff&code=%00", 401, "unknown here"),
        ("?error=access_denied&state=forged", 401, "unknown here"),
        ("?state=a&state=b", 401, "unknown here"),
    ):
        answer = client.get("/signin/callback" + query)
        assert answer.status_code == status, (query, answer.text[:300])
        assert says in answer.text and "text/html" in answer.headers["content-type"]
    # The real state from another browser (no trip cookie): refused, and spent.
    from fastapi.testclient import TestClient

    with TestClient(client.app, raise_server_exceptions=False) as stranger:
        answer = stranger.get(f"/signin/callback?state={real['state']}&code={real['code']}")
    assert answer.status_code == 401 and "another browser" in answer.text
    answer = client.get(f"/signin/callback?state={real['state']}&code={real['code']}")
    assert answer.status_code == 401 and "already used" in answer.text
    assert people(facility) == 0 and "commonlab_session" not in client.cookies


def test_the_provider_saying_no_is_a_page(client, facility):
    left = start(client)
    state = query_of(left.headers["location"])["state"]
    answer = client.get(f"/signin/callback?state={state}&error=access_denied")
    assert answer.status_code == 401 and "did not sign you in (access_denied)" in answer.text
    assert people(facility) == 0


def test_a_provider_that_is_down_is_a_502_page_and_unknown_providers_are_refused(client, caplog):
    with caplog.at_level(logging.WARNING):
        answer = start(client, "/signin/with/down")
    assert answer.status_code == 502 and "Closed U did not answer" in answer.text
    # Logged as the one line it is, not as a bug's traceback.
    (logged,) = [r for r in caplog.records if "/signin/with/down" in r.getMessage()]
    assert logged.exc_info is None and "Closed U did not answer" in logged.getMessage()
    assert start(client, "/signin/with/nowhere").status_code == 422
    assert start(client, "/signin/with/orcid").status_code == 422  # links only
    for bad in ("UPPER", "a" * 41, "a..b", "%00", "uni-a%0d%0aSet-Cookie:x"):
        assert start(client, f"/signin/with/{bad}").status_code in (400, 404, 422), bad
    assert client.post("/signin/with/uni-a").status_code == 405


def test_an_expired_session_from_a_provider_is_refused(
    client,
    facility,
    oidc,  # noqa: F811
    registered,
):
    sign_in_with_provider(client, oidc, registered)
    assert "Ada Lovelace" in client.get("/me").text
    with facility.db.session() as db, db.begin():
        db.execute(update(PortalSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    page = client.get("/me")
    assert "Ada Lovelace" not in page.text and "expired" in page.text
    assert client.get("/me/accounts", follow_redirects=False).headers["location"] == "/signin"


def test_linking_orcid_proves_the_id_on_the_account_page(
    client,
    facility,
    oidc,  # noqa: F811
    registered,
):
    # Not signed in: nothing to link to.
    assert start(client, "/me/accounts/link/orcid", page="/signin").status_code == 401
    sign_in_with_provider(client, oidc, registered)
    back = sign_in_with_provider(
        client, oidc, registered, path="/me/accounts/link/orcid", page="/me/accounts"
    )
    assert (back.status_code, back.headers["location"]) == (303, "/me/accounts?linked=orcid")
    # A link without the page's CSRF token, or from another site, sends no one anywhere.
    csrf = csrf_of(client.get("/me/accounts").text)
    for query, headers in (
        ("", {}),
        ("?csrf=" + "0" * 64, {}),
        ("?csrf=" + "x" * 300, {}),
        (f"?csrf={csrf}", {"Sec-Fetch-Site": "cross-site"}),
        (f"?csrf={csrf}", {"Origin": "https://evil.example"}),
    ):
        answer = client.get(
            "/me/accounts/link/uni-a" + query, headers=headers, follow_redirects=False
        )
        assert answer.status_code in (400, 403), (query, headers)
    page = client.get("/me/accounts?linked=orcid").text
    assert "Linked: you can now sign in with ORCID" in page and oidc.orcid_id in page
    with facility.db.session() as db:
        assert db.scalar(select(func.count()).select_from(FederatedIdentity)) == 2
    for query in ("?linked=" + "x" * 41, "?welcome=2", "?welcome=-1", "?welcome=x"):
        assert client.get("/me/accounts" + query).status_code == 400, query


def test_the_operators_affiliations_page_maps_and_sets_aside(
    client,
    facility,
    oidc,  # noqa: F811
    registered,
    operator,
    operator_token,
):
    assert client.get("/admin/affiliations").status_code == 401
    sign_in_with_provider(client, oidc, registered)
    assert client.get("/admin/affiliations").status_code == 403  # a researcher
    client.post("/signout", data={"csrf": csrf_of(client.get("/me").text)})
    made = client.post(
        "/api/v1/institutions",
        json={"name": "University A", "country": "IT", "kind": "university"},
        headers=operator,
    )
    assert made.status_code == 201, made.text
    uni = made.json()["id"]
    sign_in(client, operator_token)
    page = client.get("/admin/affiliations").text
    assert "uni-a.example" in page and "University A (IT)" in page
    csrf = csrf_of(page)
    for data, status in (
        ({"value": "uni-a.example"}, 422),  # no institution chosen
        ({"value": "uni-a.example", "institution_id": "x"}, 400),
        ({"value": "uni-a.example", "institution_id": "-1"}, 400),
        ({"value": "uni-a.example", "institution_id": str(10**30)}, 400),
        ({"value": "uni-a.example", "institution_id": "999999"}, 404),
        ({"value": "uni-b.example", "institution_id": str(uni)}, 422),
        ({"value": "x" * 301, "institution_id": str(uni)}, 400),
        ({"value": "", "institution_id": str(uni)}, 422),
    ):
        answer = client.post("/admin/affiliations/map", data={"csrf": csrf, **data})
        assert answer.status_code == status, (data, answer.text[:300])
    with facility.db.session() as db:
        assert db.scalar(select(Person.institution_id).where(Person.name == "Ada Lovelace")) is None
    answer = client.post(
        "/admin/affiliations/map",
        data={"csrf": csrf, "value": "uni-a.example", "institution_id": str(uni)},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert "1 placed" in client.get(answer.headers["location"]).text
    with facility.db.session() as db:
        ada = db.scalar(select(Person).where(Person.name == "Ada Lovelace"))
        assert db.get(Institution, ada.institution_id).name == "University A"
    answer = client.post(
        "/admin/affiliations/dismiss", data={"csrf": csrf, "value": "uni-a.example"}
    )
    assert answer.status_code == 422  # no one waits any more
    assert client.post("/admin/affiliations/map", data={"value": "v"}).status_code == 403


def test_the_providers_are_checked_when_the_settings_load():
    from commonlab.config import load_settings
    from commonlab.errors import ConfigError

    def provider(**fields: object) -> str:
        base = {"name": "u", "display_name": "U", "issuer": "https://id.example", "client_id": "c"}
        return json.dumps([{**base, **fields}])

    assert load_settings({"COMMONLAB_OIDC_PROVIDERS": provider()}).oidc_providers[0].name == "u"
    twice = json.dumps(json.loads(provider()) * 2)
    for bad, says in (
        ("not json", "not a JSON list"),
        (twice, "two providers"),
        (provider(issuer="http://id.example"), "https"),
        (provider(issuer="https://id.example/?q=1"), "query"),
        (provider(name="U!"), "pattern"),
        (provider(scopes=["email"]), "openid"),
        (provider(roles="operator"), "Extra inputs"),  # roles are never a provider's to give
    ):
        with pytest.raises(ConfigError, match=says):
            load_settings({"COMMONLAB_OIDC_PROVIDERS": bad})


def test_signing_in_with_a_provider_returns_to_the_page_that_sent_the_person(
    client,
    oidc,  # noqa: F811
    registered,
):
    """`commonlab login`'s page sends a person to sign in; they come back to it with their
    code. Anywhere off this site is never a destination."""
    sign_in_with_provider(client, oidc, registered)  # the first sign-in: welcome page
    client.post("/signout", data={"csrf": csrf_of(client.get("/me").text)})

    page = client.get("/signin", params={"next": "/device?user_code=BCDF-GHJK"}).text
    assert 'href="/signin/with/uni-a?next=/device%3Fuser_code%3DBCDF-GHJK"' in page
    back = sign_in_with_provider(client, oidc, registered, path=_link_in(page, "uni-a"))
    assert (back.status_code, back.headers["location"]) == (303, "/device?user_code=BCDF-GHJK")
    assert "commonlab_signin_return=" in back.headers["set-cookie"]  # deleted on the way

    for elsewhere in ("//evil.example/", "/\\evil.example", "https://evil.example/"):
        client.post("/signout", data={"csrf": csrf_of(client.get("/me").text)})
        back = sign_in_with_provider(
            client, oidc, registered, path="/signin/with/uni-a?next=" + elsewhere
        )
        assert (back.status_code, back.headers["location"]) == (303, "/me"), elsewhere


def _link_in(page: str, provider: str) -> str:
    start = page.index(f'href="/signin/with/{provider}') + len('href="')
    return page[start : page.index('"', start)]

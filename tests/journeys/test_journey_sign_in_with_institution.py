"""A researcher signs in with her institution, in Chromium, through a real OpenID Connect
provider (Debian's glewlwyd, started by scripts/oidc_up), on the demo facility:

Ada Lovelace clicks "Sign in with University A", signs in on the provider's own page and
comes back with an account made for her: no roles, and an affiliation (uni-a.example) the
facility does not know yet. The operator maps it to the registered institution on the
affiliations page; she is placed. The operator makes her a PI (a facility decision, never the
provider's). She signs out and in again: the provider remembers her, the facility finds her
(no second account). She submits a proposal to an open call from her institution. A callback
with a forged state is refused, and a session past its expiry signs no one in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from commonlab.config import Settings
from commonlab.db import utcnow
from commonlab.demo import seed_demo
from commonlab.facility import open_facility
from commonlab.identity.models import Person
from commonlab.identity.service import bootstrap_operator
from commonlab.portal.models import PortalSession
from tests.cli.conftest import free_port, serving
from tests.oidc_fixtures import Glewlwyd, oidc  # noqa: F401

pytestmark = pytest.mark.browser


@dataclass(frozen=True)
class Federated:
    url: str
    facility: object
    operator: dict[str, str]
    provider: Glewlwyd


@pytest.fixture
def federated(tmp_path, oidc: Glewlwyd) -> Iterator[Federated]:  # noqa: F811
    """The demo facility, served, with University A's provider in its settings."""
    port = free_port()
    client = oidc.register_client(f"http://127.0.0.1:{port}/signin/callback")
    settings = Settings(
        home=tmp_path / "home",
        port=port,
        sequencer_interval_ms=5,
        oidc_providers=(oidc.provider(client),),
    )
    facility = open_facility(settings)
    with facility.db.session() as session:
        token = bootstrap_operator(session)
        seed_demo(session)
    assert token
    with serving(facility, port) as url:
        yield Federated(url, facility, {"Authorization": f"Bearer {token}"}, oidc)
    facility.close()


def people(facility) -> int:
    with facility.db.session() as db:
        return db.scalar(select(func.count()).select_from(Person))


def open_to_her(call: dict) -> bool:
    """A call open now to an Italian university."""
    now = datetime.now(UTC)
    opens, closes = (datetime.fromisoformat(call[k]) for k in ("opens_at", "closes_at"))
    return (
        opens <= now < closes
        and "university" in (call["eligible_kinds"] or ["university"])
        and "IT" in (call["eligible_countries"] or ["IT"])
    )


def sign_in_with_university(page, provider: Glewlwyd, *, at_provider: bool) -> None:
    """The button, the provider's page (its login form the first time), and back."""
    page.goto("/signin")
    page.get_by_role("link", name="Sign in with University A").click()
    page.wait_for_url(lambda url: url.startswith(f"{provider.base}/login.html"))
    if at_provider:
        page.locator("#username").fill(provider.username)
        page.locator("#password").fill(provider.password)
        page.locator("#loginbut").click()
    page.get_by_role("button", name="Continue").click()


def test_journey_a_researcher_signs_in_with_her_institution(
    federated, chromium, screenshot, tmp_path
):
    api = httpx.Client(base_url=federated.url, timeout=30)
    provider = federated.provider
    before = people(federated.facility)
    ada = chromium.new_context(base_url=federated.url, viewport={"width": 1280, "height": 900})
    page = ada.new_page()

    # First sign-in: an account is made from the provider's word, with no roles.
    sign_in_with_university(page, provider, at_provider=True)
    page.wait_for_url("**/me/accounts?welcome=1")
    main = page.locator("main").inner_text()
    assert (
        "Welcome" in main and "uni-a.example" in main and "an operator has still to match" in main
    )
    screenshot(page, "first-sign-in")
    assert people(federated.facility) == before + 1
    me = next(
        p
        for p in api.get("/api/v1/people", params={"q": "Ada"}, headers=federated.operator).json()[
            "items"
        ]
        if p["name"] == "Ada Lovelace"
    )
    assert me["roles"] == [] and me["institution_id"] is None

    # The operator maps her affiliation to the registered institution, on the page for it.
    made = api.post(
        "/api/v1/institutions",
        json={"name": "University A", "country": "IT", "kind": "university"},
        headers=federated.operator,
    )
    assert made.status_code == 201, made.text
    operator = chromium.new_context(base_url=federated.url)
    op_page = operator.new_page()
    op_page.goto("/signin")
    op_page.get_by_label("API token").fill(federated.operator["Authorization"].split()[1])
    op_page.get_by_role("button", name="Sign in", exact=True).click()
    op_page.wait_for_url("**/me")
    op_page.goto("/admin/affiliations")
    row = op_page.get_by_role("row", name="uni-a.example")
    row.get_by_label("Institution for uni-a.example").select_option(label="University A (IT)")
    screenshot(op_page, "affiliations")
    row.get_by_role("button", name="Map").click()
    assert "1 placed" in op_page.get_by_role("status").inner_text()
    operator.close()
    granted = api.post(
        f"/api/v1/people/{me['id']}/roles", json={"role": "pi"}, headers=federated.operator
    )
    assert granted.status_code == 201, granted.text

    # Signed out and in again: the provider remembers her; the facility finds her.
    page.goto("/me")
    page.get_by_role("navigation", name="Main").get_by_role("button", name="Sign out").click()
    sign_in_with_university(page, provider, at_provider=False)
    page.wait_for_url("**/me")
    assert "Ada Lovelace" in page.locator("main").inner_text()
    assert people(federated.facility) == before + 1
    page.goto("/me/accounts")
    assert "University A" in page.locator("main").inner_text()

    # She submits a proposal from her institution to an open call.
    call = next(c for c in api.get("/api/v1/calls").json()["items"] if open_to_her(c))
    page.goto(f"/calls/{call['id']}")
    form = page.locator("form.proposal-form")
    assert "University A" in form.inner_text()
    form.get_by_label("Title").fill("Federated sign-in for open models")
    form.get_by_label("Abstract").fill("Researchers reach the facility with their own accounts.")
    form.locator('input[name="hours"]').first.fill("100")
    form.get_by_label("Start date").fill(date.today().isoformat())
    form.get_by_label("End date").fill((date.today() + timedelta(days=180)).isoformat())
    form.get_by_label("Licence").fill("Apache-2.0")
    form.get_by_role("button", name="Submit the proposal").click()
    page.wait_for_url("**/proposals/*?submitted=1")
    screenshot(page, "proposal-submitted")
    proposal_id = int(page.url.split("/proposals/")[1].split("?")[0])
    proposal = api.get(f"/api/v1/proposals/{proposal_id}", headers=federated.operator).json()
    assert proposal["institution_id"] == made.json()["id"]

    # A forged return from the provider is refused, with the reason.
    answer = page.goto("/signin/callback?state=forged&code=stolen")
    assert answer.status == 401
    assert "unknown here" in page.locator("main").inner_text()

    # A session past its expiry signs no one in.
    page.goto("/me")
    assert "Ada Lovelace" in page.locator("main").inner_text()
    with federated.facility.db.session() as db, db.begin():
        db.execute(update(PortalSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    page.goto("/me")
    assert "Ada Lovelace" not in page.locator("main").inner_text()
    assert "expired" in page.content()
    ada.close()

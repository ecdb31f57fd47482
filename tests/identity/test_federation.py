"""identity/federation.py against the real provider (glewlwyd, tests/oidc_fixtures.py): the
provider's own sign-in API stands in for the person's browser, so every code, ID token and key
is the provider's. Each refusal leaves no person, identity or session behind."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import func, select

from commonlab.db import utcnow
from commonlab.errors import AccessDenied, Conflict, InvalidInput, Unauthenticated
from commonlab.identity import federation
from commonlab.identity import service as identity
from commonlab.identity.federation_models import (
    FederatedIdentity,
    FederationLogin,
    PendingAffiliation,
)
from commonlab.identity.models import ApiToken, Person
from commonlab.identity.schemas import InstitutionCreate, PersonCreate, PersonUpdate
from commonlab.policy.principal import Role
from tests.identity.people import operator_principal
from tests.oidc_fixtures import Glewlwyd, oidc, query_of, sign_in_at_provider  # noqa: F401
from tests.record.entries import last_entry

CALLBACK = "http://127.0.0.1:8765/signin/callback"  # never served: the provider only redirects


@pytest.fixture(scope="module")
def client(oidc: Glewlwyd):  # noqa: F811
    return oidc.register_client(CALLBACK)


@pytest.fixture
def uni_a(oidc: Glewlwyd, client):  # noqa: F811
    return oidc.provider(client)


@pytest.fixture
def orcid(oidc: Glewlwyd, client):  # noqa: F811
    return oidc.provider(client, name="orcid", display_name="ORCID", kind="orcid")


@pytest.fixture
def operator(facility, operator_token):
    return operator_principal(facility.db, operator_token)


def trip(facility, oidc, client, provider, *, link=None, user=None):  # noqa: F811
    """Begin at the facility, sign in at the provider: the callback's (state, code, browser)."""
    with facility.db.session() as db:
        url, browser = federation.begin(db, provider, redirect_uri=CALLBACK, link_person_id=link)
    username, password = user or (None, None)
    back = query_of(
        sign_in_at_provider(
            oidc, url, username=username, password=password, client_id=client.client_id
        )
    )
    return back["state"], back["code"], browser


def finish(facility, providers, state, code, browser, **kwargs):
    with facility.db.session() as db:
        return federation.finish(
            db,
            providers,
            state=state,
            code=code,
            error=None,
            browser=browser,
            redirect_uri=CALLBACK,
            **kwargs,
        )


def counts(facility) -> tuple[int, int, int]:
    """People, linked identities and tokens: what a refused sign-in must not add to."""
    with facility.db.session() as db:
        return (
            db.scalar(select(func.count()).select_from(Person)),
            db.scalar(select(func.count()).select_from(FederatedIdentity)),
            db.scalar(select(func.count()).select_from(ApiToken)),
        )


def pending(facility, operator):
    with facility.db.session() as db:
        return federation.pending_affiliations(db, operator)


# Signing in -----------------------------------------------------------------------------------


def test_the_first_sign_in_creates_the_person_and_the_second_finds_them(
    facility,
    oidc,  # noqa: F811
    client,
    uni_a,
    operator_token,
):
    before = counts(facility)
    first = finish(facility, [uni_a], *trip(facility, oidc, client, uni_a))
    assert first.created and not first.linked and first.token_id is not None
    assert counts(facility) == (before[0] + 1, before[1] + 1, before[2] + 1)
    with facility.db.session() as db:
        person = db.get(Person, first.person_id)
        link = db.scalar(select(FederatedIdentity))
        assert (person.name, person.email) == ("Ada Lovelace", "ada@uni-a.example")
        # Known by issuer and subject, never by e-mail; no role and no clearance from anyone.
        assert (link.issuer, link.person_id) == (oidc.issuer, person.id)
        assert link.subject and link.subject != person.email
        assert person.roles == [] and identity.current_clearance(db, person.id) is None
    with facility.db.session() as db:
        principal = identity.authenticate_token_id(db, first.token_id)
        assert principal.person_id == person.id and principal.roles == frozenset()
        assert {str(s) for s in principal.scopes} == {"read", "write"}
        assert principal.token_expires_at <= utcnow() + timedelta(hours=12)
    linked = last_entry(facility.db, "identity:person:linked")
    assert linked["data"]["issuer"] == oidc.issuer and linked["data"]["provider"] == "uni-a"
    assert linked["data"]["subject"]["commitment"].startswith("sha256:")
    assert "Ada" not in str(last_entry(facility.db, "identity:person:created"))

    second = finish(facility, [uni_a], *trip(facility, oidc, client, uni_a))
    assert (second.person_id, second.created) == (first.person_id, False)
    assert counts(facility)[:2] == (before[0] + 1, before[1] + 1)  # a session token more only


def test_a_new_name_and_e_mail_at_the_provider_reach_the_person_at_the_next_sign_in(
    facility,
    oidc,  # noqa: F811
    client,
    uni_a,
):
    user = oidc.add_user()
    first = finish(facility, [uni_a], *trip(facility, oidc, client, uni_a, user=user))
    oidc.update_user(user[0], name="Grace Hopper", email=f"{user[0]}@new.example")
    finish(facility, [uni_a], *trip(facility, oidc, client, uni_a, user=user))
    with facility.db.session() as db:
        person = db.get(Person, first.person_id)
        assert (person.name, person.email) == ("Grace Hopper", f"{user[0]}@new.example")
    updated = last_entry(facility.db, "identity:person:updated")
    assert updated["subject"] == f"person/{person.pseudonym}" and updated["data"]["changes"] == {}
    assert "Grace" not in str(updated)  # private, as every name on the record is

    # A name the person chose here stays theirs; the provider's e-mail still follows.
    with facility.db.session() as db:
        me = identity.authenticate_token_id(db, first.token_id)
        identity.update_person(db, me, person.id, PersonUpdate(name="G. Hopper"))
    oidc.update_user(user[0], name="Rear Admiral Hopper", email=f"{user[0]}@navy.example")
    finish(facility, [uni_a], *trip(facility, oidc, client, uni_a, user=user))
    with facility.db.session() as db:
        person = db.get(Person, first.person_id)
        assert (person.name, person.email) == ("G. Hopper", f"{user[0]}@navy.example")


def test_a_provider_change_waits_while_an_operator_owns_the_name_or_another_has_the_e_mail(
    facility,
    oidc,  # noqa: F811
    client,
    uni_a,
    operator,
):
    user = oidc.add_user()
    first = finish(facility, [uni_a], *trip(facility, oidc, client, uni_a, user=user))
    with facility.db.session() as db:
        identity.grant_role(db, operator, first.person_id, Role.DELEGATE)
        identity.create_person(
            db, operator, PersonCreate(name="Someone Else", email="taken@else.example")
        )
        before = db.get(Person, first.person_id)
        name, email = before.name, before.email
    oidc.update_user(user[0], name="Renamed At Home", email="taken@else.example")
    finish(facility, [uni_a], *trip(facility, oidc, client, uni_a, user=user))
    with facility.db.session() as db:
        person = db.get(Person, first.person_id)
        # A delegate's name is on the record: an operator changes it, not a provider.
        assert (person.name, person.email) == (name, email)
    # Once neither holds, the next sign-in brings both.
    with facility.db.session() as db:
        identity.revoke_role(db, operator, first.person_id, Role.DELEGATE)
    oidc.update_user(user[0], email=f"{user[0]}@free.example")
    finish(facility, [uni_a], *trip(facility, oidc, client, uni_a, user=user))
    with facility.db.session() as db:
        person = db.get(Person, first.person_id)
        assert (person.name, person.email) == ("Renamed At Home", f"{user[0]}@free.example")


def test_a_person_is_never_matched_by_e_mail(facility, oidc, client, uni_a, operator):  # noqa: F811
    with facility.db.session() as db:
        other = identity.create_person(
            db, operator, PersonCreate(name="Someone else", email="ada@uni-a.example")
        )
    outcome = finish(facility, [uni_a], *trip(facility, oidc, client, uni_a))
    assert outcome.created and outcome.person_id != other.id
    with facility.db.session() as db:
        assert db.get(Person, outcome.person_id).email is None  # the address stays theirs


def test_an_unmapped_affiliation_waits_for_an_operator_who_maps_it(
    facility,
    oidc,  # noqa: F811
    client,
    uni_a,
    operator,
):
    first = finish(facility, [uni_a], *trip(facility, oidc, client, uni_a))
    assert first.pending_affiliation == "uni-a.example"
    (row,) = pending(facility, operator)
    assert (row.value, row.people, row.providers) == ("uni-a.example", 1, ["uni-a"])
    with facility.db.session() as db:
        uni = identity.create_institution(
            db, operator, InstitutionCreate(name="University A", country="IT", kind="university")
        )
        assert federation.map_affiliation(db, operator, " UNI-A.example ", uni.id) == 1
        assert db.get(Person, first.person_id).institution_id == uni.id
    entry = last_entry(facility.db, "identity:affiliation:mapped")
    assert entry["data"] == {"affiliation": "uni-a.example", "institution": uni.id, "placed": 1}
    assert pending(facility, operator) == []

    # The rule places whoever signs in with that affiliation from now on, at once.
    username, password = oidc.add_user("uni-a.example")
    later = finish(
        facility, [uni_a], *trip(facility, oidc, client, uni_a, user=(username, password))
    )
    assert later.created and later.pending_affiliation is None
    with facility.db.session() as db:
        assert db.get(Person, later.person_id).institution_id == uni.id


def test_only_operators_map_affiliations_and_only_ones_that_wait(
    facility,
    oidc,  # noqa: F811
    client,
    uni_a,
    operator,
):
    first = finish(facility, [uni_a], *trip(facility, oidc, client, uni_a))
    with facility.db.session() as db:
        uni = identity.create_institution(
            db, operator, InstitutionCreate(name="University A", country="IT", kind="university")
        )
    with facility.db.session() as db:
        ada = identity.authenticate_token_id(db, first.token_id)
    with facility.db.session() as db:
        with pytest.raises(AccessDenied, match="operators"):
            federation.map_affiliation(db, ada, "uni-a.example", uni.id)
        with pytest.raises(InvalidInput, match="no one waits"):
            federation.map_affiliation(db, operator, "uni-b.example", uni.id)
        with pytest.raises(InvalidInput):
            federation.map_affiliation(db, operator, "x" * 301, uni.id)
        assert federation.dismiss_affiliation(db, operator, "uni-a.example") == 1
        assert db.get(Person, first.person_id).institution_id is None
        assert db.scalar(select(PendingAffiliation.decision)) == "dismissed"


def test_a_deactivated_person_cannot_sign_in_through_a_provider(
    facility,
    oidc,  # noqa: F811
    client,
    uni_a,
    operator,
):
    first = finish(facility, [uni_a], *trip(facility, oidc, client, uni_a))
    with facility.db.session() as db:
        identity.update_person(db, operator, first.person_id, PersonUpdate(active=False))
    before = counts(facility)
    with pytest.raises(Unauthenticated, match="deactivated"):
        finish(facility, [uni_a], *trip(facility, oidc, client, uni_a))
    assert counts(facility) == before


# Refusals: each changes nothing but spending its state ---------------------------------------


def test_a_wrong_state_a_spent_state_and_another_browser_are_refused(
    facility,
    oidc,  # noqa: F811
    client,
    uni_a,
):
    state, code, browser = trip(facility, oidc, client, uni_a)
    before = counts(facility)
    for wrong_state, message in (("forged", "unknown"), ("", "without its state"), (None, "state")):
        with pytest.raises(Unauthenticated, match=message):
            finish(facility, [uni_a], wrong_state, code, browser)
    with pytest.raises(Unauthenticated, match="another browser"):
        finish(facility, [uni_a], state, code, "someone-elses-cookie")
    with pytest.raises(Unauthenticated, match="already used"):  # spent by the try above
        finish(facility, [uni_a], state, code, browser)
    assert counts(facility) == before


def test_a_trip_longer_than_ten_minutes_is_refused(facility, oidc, client, uni_a):  # noqa: F811
    state, code, browser = trip(facility, oidc, client, uni_a)
    before = counts(facility)
    later = utcnow() + timedelta(minutes=federation.LOGIN_MINUTES, seconds=1)
    with pytest.raises(Unauthenticated, match="longer than 10 minutes"):
        finish(facility, [uni_a], state, code, browser, now=later)
    assert counts(facility) == before


def test_a_wrong_nonce_is_refused(facility, oidc, client, uni_a):  # noqa: F811
    with facility.db.session() as db:
        url, browser = federation.begin(db, uni_a, redirect_uri=CALLBACK)
    # The provider signs whatever nonce the request carries: replace ours with another.
    forged = url.replace("nonce=", "nonce=x")
    back = query_of(sign_in_at_provider(oidc, forged, client_id=client.client_id))
    before = counts(facility)
    with pytest.raises(Unauthenticated, match="nonce"):
        finish(facility, [uni_a], back["state"], back["code"], browser)
    assert counts(facility) == before


def test_a_replayed_code_is_refused_by_the_provider(facility, oidc, client, uni_a):  # noqa: F811
    state, code, browser = trip(facility, oidc, client, uni_a)
    finish(facility, [uni_a], state, code, browser)
    before = counts(facility)
    with facility.db.session() as db:  # a fresh trip, carrying the code already spent
        url, browser2 = federation.begin(db, uni_a, redirect_uri=CALLBACK)
    state2 = query_of(url)["state"]
    with pytest.raises(Unauthenticated, match="refused this sign-in's code"):
        finish(facility, [uni_a], state2, code, browser2)
    assert counts(facility) == before


def test_the_provider_saying_no_is_a_refusal(facility, oidc, client, uni_a):  # noqa: F811
    with facility.db.session() as db:
        url, browser = federation.begin(db, uni_a, redirect_uri=CALLBACK)
        with pytest.raises(Unauthenticated, match=r"did not sign you in \(access_denied\)"):
            federation.finish(
                db,
                [uni_a],
                state=query_of(url)["state"],
                code=None,
                error="access_denied<script>",
                browser=browser,
                redirect_uri=CALLBACK,
            )


def test_a_provider_that_is_down_is_a_clear_refusal_and_nothing_is_kept(
    facility,
    oidc,  # noqa: F811
    client,
):
    down = oidc.provider(client, name="down", issuer="http://127.0.0.1:9/api/oidc")
    federation.forget_providers()
    with facility.db.session() as db:
        with pytest.raises(federation.ProviderUnavailable, match="did not answer with its"):
            federation.begin(db, down, redirect_uri=CALLBACK)
        # Asked again at once, it is not asked: the refusal comes without the wait.
        with pytest.raises(federation.ProviderUnavailable, match="did not answer moments ago"):
            federation.begin(db, down, redirect_uri=CALLBACK)
        assert db.scalar(select(func.count()).select_from(FederationLogin)) == 0
    federation.forget_providers()


def test_a_provider_that_stops_answering_before_the_return_is_a_clear_refusal(
    facility,
    oidc,  # noqa: F811
    client,
    uni_a,
):
    state, code, browser = trip(facility, oidc, client, uni_a)
    # The provider goes away between the trip out and back: its token endpoint, as the
    # facility knows it from the discovery document, no longer answers.
    fetched, document = federation._DISCOVERY[uni_a.issuer]
    gone = {**document, "token_endpoint": "http://127.0.0.1:9/api/oidc/token"}
    federation._DISCOVERY[uni_a.issuer] = (fetched, gone)
    before = counts(facility)
    try:
        with pytest.raises(federation.ProviderUnavailable, match="did not answer the token"):
            finish(facility, [uni_a], state, code, browser)
    finally:
        federation.forget_providers()
    assert counts(facility) == before


def test_a_discovery_document_naming_another_issuer_is_refused(facility, oidc, client):  # noqa: F811
    # glewlwyd answers on localhost too, but calls itself 127.0.0.1: not the issuer set here.
    other = oidc.provider(client, issuer=oidc.issuer.replace("127.0.0.1", "localhost"))
    with (
        facility.db.session() as db,
        pytest.raises(federation.ProviderUnavailable, match="names another issuer"),
    ):
        federation.begin(db, other, redirect_uri=CALLBACK)


def id_token_of(facility, oidc, client, provider):  # noqa: F811
    """A real ID token from the provider, and the nonce it carries."""
    _, code, _ = trip(facility, oidc, client, provider)
    with facility.db.session() as db:
        login = db.scalar(select(FederationLogin).order_by(FederationLogin.id.desc()))
        nonce, verifier = login.nonce, login.code_verifier
    return federation._exchange(provider, code, verifier, CALLBACK), nonce


def test_an_id_token_of_another_issuer_or_audience_is_refused(
    facility,
    oidc,  # noqa: F811
    client,
    uni_a,
    orcid,
):
    token, nonce = id_token_of(facility, oidc, client, uni_a)
    assert federation.verify_id_token(uni_a, token, nonce=nonce)["iss"] == oidc.issuer
    # The ORCID stand-in signs with the same key: only the issuer tells its tokens apart.
    orcid_token, orcid_nonce = id_token_of(facility, oidc, client, orcid)
    with pytest.raises(Unauthenticated, match="issuer, the audience or the nonce"):
        federation.verify_id_token(uni_a, orcid_token, nonce=orcid_nonce)
    elsewhere = uni_a.model_copy(update={"client_id": "another-client"})
    with pytest.raises(Unauthenticated, match="issuer, the audience or the nonce"):
        federation.verify_id_token(elsewhere, token, nonce=nonce)
    with pytest.raises(Unauthenticated, match="expired"):
        federation.verify_id_token(uni_a, token, nonce=nonce, now=utcnow() + timedelta(days=1))


def test_an_id_token_signed_with_a_key_the_provider_does_not_publish_is_refused(
    facility,
    oidc,  # noqa: F811
    client,
    uni_a,
):
    real, nonce = id_token_of(facility, oidc, client, uni_a)
    claims = jwt.decode(real, federation._keys(uni_a, real), algorithms=["RS256"]).claims
    header = jwt.decode(real, federation._keys(uni_a, real), algorithms=["RS256"]).header
    stranger = RSAKey.generate_key(2048)
    for kid in (header.get("kid"), "not-published"):  # the provider's key id, then another
        forged = jwt.encode({"alg": "RS256", **({"kid": kid} if kid else {})}, claims, stranger)
        with pytest.raises(Unauthenticated, match="not signed by a key it publishes"):
            federation.verify_id_token(uni_a, forged, nonce=nonce)
    unsigned = jwt.encode({"alg": "HS256"}, claims, jwt_key := _secret_key(uni_a))
    assert jwt_key is not None
    with pytest.raises(Unauthenticated, match="not signed by a key it publishes"):
        federation.verify_id_token(uni_a, unsigned, nonce=nonce)
    with pytest.raises(Unauthenticated):
        federation.verify_id_token(uni_a, "not.a.token", nonce=nonce)
    assert time.time() < claims["exp"]  # refused for the key, not for the time


def _secret_key(provider):
    """A MAC key made of the client secret: what an attacker who knows it would sign with."""
    from joserfc.jwk import OctKey

    return OctKey.import_key(provider.client_secret.encode())


# Linking --------------------------------------------------------------------------------------


def test_a_signed_in_person_links_orcid_and_the_id_is_proven(
    facility,
    oidc,  # noqa: F811
    client,
    uni_a,
    orcid,
):
    ada = finish(facility, [uni_a, orcid], *trip(facility, oidc, client, uni_a))
    linked = finish(
        facility, [uni_a, orcid], *trip(facility, oidc, client, orcid, link=ada.person_id)
    )
    assert linked.linked and linked.person_id == ada.person_id and linked.token_id is None
    with facility.db.session() as db:
        assert db.get(Person, ada.person_id).orcid == oidc.orcid_id
        issuers = set(db.scalars(select(FederatedIdentity.issuer)))
    assert issuers == {oidc.issuer, oidc.orcid_issuer}
    assert last_entry(facility.db, "identity:person:updated")["data"]["orcid"]["commitment"]
    # Linked, ORCID signs the same person in.
    again = finish(facility, [uni_a, orcid], *trip(facility, oidc, client, orcid))
    assert (again.person_id, again.created) == (ada.person_id, False)


def test_orcid_opens_no_new_account_and_an_identity_belongs_to_one_person(
    facility,
    oidc,  # noqa: F811
    client,
    uni_a,
    orcid,
    operator,
):
    before = counts(facility)
    with pytest.raises(Unauthenticated, match="sign in with your institution first"):
        finish(facility, [uni_a, orcid], *trip(facility, oidc, client, orcid))
    assert counts(facility) == before
    ada = finish(facility, [uni_a], *trip(facility, oidc, client, uni_a))
    with facility.db.session() as db:
        someone = identity.create_person(db, operator, PersonCreate(name="Someone else"))
    with pytest.raises(Conflict, match="already linked to another person"):
        finish(facility, [uni_a], *trip(facility, oidc, client, uni_a, link=someone.id))
    with facility.db.session() as db:
        owners = set(db.scalars(select(FederatedIdentity.person_id)))
    assert owners == {ada.person_id}


def test_an_unknown_provider_name_is_refused(uni_a):
    with pytest.raises(InvalidInput, match="no identity provider"):
        federation.provider_named([uni_a], "nowhere")

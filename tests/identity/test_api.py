"""Identity routes, end to end through the API, on SQLite and PostgreSQL: what they do,
what they write to the record, and how they refuse bad input without changing anything."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import auth, new_person, problem, record_entries, token_for

NAIROBI = {"name": "University of Nairobi", "country": "KE", "kind": "university"}


def make_institution(client, operator, **overrides):
    response = client.post("/api/v1/institutions", json={**NAIROBI, **overrides}, headers=operator)
    assert response.status_code == 201, response.text
    return response.json()


def in_days(days):
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


# Who am I ------------------------------------------------------------------------------------


def test_anonymous_request_acts_as_the_public(client):
    body = client.get("/api/v1/me").json()
    assert body == {
        "authenticated": False,
        "pseudonym": "public",
        "person": None,
        "scopes": [],
        "clearance": None,
        "projects": [],
    }


def test_operator_token_is_the_bootstrap_operator(client, operator):
    body = client.get("/api/v1/me", headers=operator).json()
    assert body["authenticated"] is True
    assert body["person"]["roles"] == ["operator"]
    assert body["scopes"] == ["admin", "read", "write"]


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ("Bearer nonsense", "malformed token"),
        ("Bearer clab_abc_def", "unknown token"),
        ("Basic dXNlcjpwYXNz", "Authorization: Bearer"),
        ("Bearer ", "Authorization: Bearer"),
    ],
)
def test_bad_tokens_are_refused_with_a_reason(client, header, fragment):
    response = client.get("/api/v1/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert fragment in problem(response)["detail"]
    assert response.headers["www-authenticate"] == "Bearer"


def test_revoked_and_expired_tokens_stop_working(client, operator, facility):
    person = new_person(client, operator)
    issued = client.post(
        f"/api/v1/people/{person['id']}/tokens", json={"scopes": ["read"]}, headers=operator
    ).json()
    assert client.get("/api/v1/me", headers=auth(issued["token"])).status_code == 200
    assert client.delete(f"/api/v1/tokens/{issued['id']}", headers=operator).status_code == 200
    response = client.get("/api/v1/me", headers=auth(issued["token"]))
    assert response.status_code == 401
    assert "revoked" in problem(response)["detail"]

    from commonlab.errors import Unauthenticated
    from commonlab.identity.service import authenticate

    other = token_for(client, operator, person["id"])
    with facility.db.session() as session, pytest.raises(Unauthenticated, match="expired"):
        authenticate(session, other, now=datetime.now(UTC) + timedelta(days=91))


def test_token_secret_is_shown_once_and_stored_hashed(client, operator, facility):
    person = new_person(client, operator)
    issued = client.post(
        f"/api/v1/people/{person['id']}/tokens", json={"scopes": ["read"]}, headers=operator
    ).json()
    listed = client.get(f"/api/v1/people/{person['id']}/tokens", headers=operator).json()["items"]
    assert all("token" not in row for row in listed)
    secret = issued["token"].split("_", 2)[2]
    from sqlalchemy import select

    from commonlab.identity.models import ApiToken

    with facility.db.session() as session:
        stored = session.scalars(select(ApiToken.secret_sha256)).all()
    assert secret not in stored
    assert all(len(h) == 64 for h in stored)


def test_a_job_token_is_one_per_job_same_on_retry_and_revoked_when_the_job_ends(
    client, operator, facility
):
    """The token a facility job acts with (compute's controller asks for it at handover):
    a retried handover gets the same secret, no second row; revoking stops it; a person
    cannot name a token of their own like one."""
    from datetime import timedelta

    from commonlab.db import utcnow
    from commonlab.identity import service

    person = new_person(client, operator, roles=["operator"])
    key = b"k" * 32
    with facility.db.session() as db, db.begin():
        first = service.job_token(db, person["id"], job_key="job/41", project="proj-x",
                                  level=1, expires_at=utcnow() + timedelta(hours=1),
                                  key=key)  # fmt: skip
    with facility.db.session() as db, db.begin():
        again = service.job_token(db, person["id"], job_key="job/41", project="proj-x",
                                  level=1, expires_at=utcnow() + timedelta(hours=1),
                                  key=key)  # fmt: skip
    assert first == again
    me = client.get("/api/v1/me", headers=auth(first)).json()
    assert me["pseudonym"] == person["pseudonym"]
    listed = client.get(f"/api/v1/people/{person['id']}/tokens", headers=operator).json()["items"]
    assert [(t["name"], t["project"]) for t in listed] == [("job/41", "proj-x")]
    # Confined: none of its holder's offices (an operator's job is not an operator), and no
    # project but the job's.
    with facility.db.session() as db:
        acting = service.authenticate(db, first)
    assert acting.roles == frozenset() and acting.projects == frozenset()
    assert client.get("/api/v1/people", headers=auth(first)).status_code == 403
    with facility.db.session() as db, db.begin():
        service.revoke_job_token(db, "job/41")
    assert client.get("/api/v1/me", headers=auth(first)).status_code == 401
    named = client.post(f"/api/v1/people/{person['id']}/tokens", json={"name": "job/41"},
                        headers=operator)  # fmt: skip
    assert named.status_code == 422 and "tokens jobs act with" in named.text


def test_a_token_cannot_mint_a_stronger_token(client, operator):
    person = new_person(client, operator)
    weak = token_for(client, operator, person["id"], scopes=("read", "write"))
    response = client.post(
        f"/api/v1/people/{person['id']}/tokens", json={"scopes": ["admin"]}, headers=auth(weak)
    )
    assert response.status_code == 403
    assert "cannot issue scope admin" in problem(response)["detail"]
    ok = client.post(
        f"/api/v1/people/{person['id']}/tokens", json={"scopes": ["read"]}, headers=auth(weak)
    )
    assert ok.status_code == 201


def test_read_scoped_token_cannot_write(client, operator):
    person = new_person(client, operator, roles=["operator"])
    reader = token_for(client, operator, person["id"], scopes=("read",))
    response = client.post("/api/v1/institutions", json=NAIROBI, headers=auth(reader))
    assert response.status_code == 403
    assert "scope" in problem(response)["detail"]


# Institutions --------------------------------------------------------------------------------


def test_institutions_create_list_filter_and_page(client, operator):
    for i in range(5):
        make_institution(client, operator, name=f"Lab {i}", country="IT" if i % 2 else "EE")
    everything = client.get("/api/v1/institutions").json()
    assert [row["name"] for row in everything["items"]] == [f"Lab {i}" for i in range(5)]
    assert everything["next"] is None
    italian = client.get("/api/v1/institutions", params={"country": "it"}).json()["items"]
    assert [row["name"] for row in italian] == ["Lab 1", "Lab 3"]
    first = client.get("/api/v1/institutions", params={"limit": 2}).json()
    second = client.get("/api/v1/institutions", params={"limit": 2, "after": first["next"]}).json()
    assert [r["name"] for r in first["items"] + second["items"]] == [f"Lab {i}" for i in range(4)]
    assert (
        client.get("/api/v1/institutions", params={"q": "LAB 3"}).json()["items"][0]["name"]
        == "Lab 3"
    )


def test_institution_update_is_recorded(client, app, operator):
    row = make_institution(client, operator)
    response = client.patch(
        f"/api/v1/institutions/{row['id']}", json={"kind": "research_lab"}, headers=operator
    )
    assert response.status_code == 200
    assert response.json()["kind"] == "research_lab"
    types = [e["type"] for e in record_entries(client, app, subject=f"institution/{row['id']}")]
    assert types == ["identity:institution:created", "identity:institution:updated"]


def test_the_public_cannot_create_institutions(client, app):
    response = client.post("/api/v1/institutions", json=NAIROBI)
    assert response.status_code == 403
    assert problem(response)["detail"]
    assert client.get("/api/v1/institutions").json()["items"] == []


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({**NAIROBI, "country": "XX"}, 422, "ISO 3166"),
        ({**NAIROBI, "country": "Kenya"}, 422, "country"),
        ({**NAIROBI, "kind": "church"}, 422, "kind"),
        ({**NAIROBI, "name": ""}, 422, "name"),
        ({**NAIROBI, "name": "x" * 201}, 422, "name"),
        ({**NAIROBI, "motto": "ubuntu"}, 422, "unknown field"),
        ({"name": "A"}, 422, "required"),
        ({**NAIROBI, "name": 5}, 422, "name"),
        ([NAIROBI], 422, "body"),
    ],
)
def test_bad_institution_input_is_refused_and_changes_nothing(
    client, app, operator, body, status, fragment
):
    response = client.post("/api/v1/institutions", json=body, headers=operator)
    assert response.status_code == status, response.text
    assert fragment in problem(response)["detail"]
    assert client.get("/api/v1/institutions").json()["items"] == []
    assert record_entries(client, app, type="identity:institution") == []


def test_malformed_json_is_a_400(client, operator):
    response = client.post(
        "/api/v1/institutions",
        content=b'{"name": "A", ',
        headers={**operator, "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert "not valid JSON" in problem(response)["detail"]


def test_oversized_body_is_a_413(client, operator):
    response = client.post(
        "/api/v1/institutions",
        content=b'{"name": "' + b"a" * 2_000_000 + b'"}',
        headers={**operator, "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert "exceeds" in problem(response)["detail"]


def test_duplicate_institution_is_a_conflict_and_not_recorded(client, app, operator):
    make_institution(client, operator)
    response = client.post(
        "/api/v1/institutions", json={**NAIROBI, "name": "university of nairobi"}, headers=operator
    )
    assert response.status_code == 409
    assert len(record_entries(client, app, type="identity:institution:created")) == 1


@pytest.mark.parametrize("ident", ["0", "-1", "abc", str(2**63), "1.5"])
def test_bad_path_ids_are_4xx(client, ident):
    response = client.get(f"/api/v1/institutions/{ident}")
    assert response.status_code == 422
    problem(response)


def test_unknown_ids_are_404(client, operator):
    assert client.get("/api/v1/institutions/999").status_code == 404
    assert client.get("/api/v1/people/999", headers=operator).status_code == 404
    assert client.delete("/api/v1/tokens/999", headers=operator).status_code == 404
    assert client.delete("/api/v1/clearances/999", headers=operator).status_code == 404


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 501}, {"limit": "many"}, {"after": -1}, {"country": "K"}],
)
def test_bad_list_parameters_are_422(client, params):
    response = client.get("/api/v1/institutions", params=params)
    assert response.status_code == 422
    problem(response)


def test_unknown_route_and_method_are_problems(client):
    assert problem(client.get("/api/v1/nowhere"))["status"] == 404
    assert problem(client.put("/api/v1/institutions"))["status"] == 405


# People, roles -------------------------------------------------------------------------------


def test_person_lifecycle_and_record_keeps_private_fields_private(client, app, operator):
    inst = make_institution(client, operator)
    person = new_person(
        client,
        operator,
        email="wanjiru@uonbi.ac.ke",
        orcid="0000-0002-1825-0097",
        institution_id=inst["id"],
        roles=["researcher"],
    )
    assert person["roles"] == ["researcher"]
    assert person["pseudonym"].startswith("p-")
    entries = record_entries(client, app, subject=f"person/{person['pseudonym']}")
    created = entries[0]
    assert created["type"] == "identity:person:created"
    text = str(created)
    assert "wanjiru@uonbi.ac.ke" not in text and "Wanjiru" not in text
    assert created["data"]["email"]["commitment"].startswith("sha256:")
    assert created["data"]["institution"] == inst["id"]


def test_commitment_opens_with_its_private_salt(client, app, operator, facility):
    import hashlib

    from sqlalchemy import select

    from commonlab.record.canonical import canonical_json
    from commonlab.record.models import PrivateOpening

    person = new_person(client, operator, email="a@b.org")
    created = record_entries(client, app, subject=f"person/{person['pseudonym']}")[0]
    with facility.db.session() as session:
        opening = session.scalars(
            select(PrivateOpening).where(PrivateOpening.field == "email")
        ).one()
    assert opening.value == canonical_json("a@b.org")
    digest = hashlib.sha256(opening.salt + opening.value).hexdigest()
    assert created["data"]["email"]["commitment"] == f"sha256:{digest}"


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"orcid": "0000-0002-1825-0098"}, "check digit"),
        ({"orcid": "1234"}, "ORCID"),
        ({"email": "not-an-email"}, "email"),
        ({"roles": ["king"]}, "roles"),
        ({"institution_id": "1"}, "institution_id"),
        ({"institution_id": 999}, "no institution"),
    ],
)
def test_bad_person_input(client, operator, fields, fragment):
    response = client.post("/api/v1/people", json={"name": "X", **fields}, headers=operator)
    assert 400 <= response.status_code < 500
    assert fragment in problem(response)["detail"]
    listed = client.get("/api/v1/people", headers=operator).json()["items"]
    assert len(listed) == 1  # only the operator


def test_people_list_is_not_public_and_filters_by_role(client, operator):
    new_person(client, operator, name="A", roles=["delegate"])
    new_person(client, operator, name="B", roles=["reviewer"])
    assert client.get("/api/v1/people").status_code == 403
    delegates = client.get("/api/v1/people", params={"role": "delegate"}, headers=operator)
    assert [p["name"] for p in delegates.json()["items"]] == ["A"]


def test_a_person_reads_and_updates_themself_but_not_others(client, operator):
    me = new_person(client, operator, name="Me")
    other = new_person(client, operator, name="Other")
    mine = auth(token_for(client, operator, me["id"]))
    assert client.get(f"/api/v1/people/{me['id']}", headers=mine).status_code == 200
    assert client.get(f"/api/v1/people/{other['id']}", headers=mine).status_code == 403
    updated = client.patch(f"/api/v1/people/{me['id']}", json={"name": "Me Too"}, headers=mine)
    assert updated.json()["name"] == "Me Too"
    assert (
        client.patch(
            f"/api/v1/people/{other['id']}", json={"name": "Hacked"}, headers=mine
        ).status_code
        == 403
    )
    refused = client.patch(f"/api/v1/people/{me['id']}", json={"active": False}, headers=mine)
    assert refused.status_code == 403


def test_roles_grant_revoke_and_names_of_public_roles(client, app, operator):
    person = new_person(client, operator, name="Giulia Rossi")
    granted = client.post(
        f"/api/v1/people/{person['id']}/roles", json={"role": "delegate"}, headers=operator
    )
    assert granted.json()["roles"] == ["delegate"]
    again = client.post(
        f"/api/v1/people/{person['id']}/roles", json={"role": "delegate"}, headers=operator
    )
    assert again.status_code == 409
    revoked = client.delete(f"/api/v1/people/{person['id']}/roles/delegate", headers=operator)
    assert revoked.json()["roles"] == []
    entries = record_entries(client, app, type="identity:role")
    assert [e["type"] for e in entries] == ["identity:role:granted", "identity:role:revoked"]
    # Delegates are public: the record names them.
    assert entries[0]["data"] == {"role": "delegate", "name": "Giulia Rossi"}


def test_operator_cannot_grant_themself_a_role_or_remove_the_last_operator(client, operator):
    me = client.get("/api/v1/me", headers=operator).json()["person"]
    response = client.post(
        f"/api/v1/people/{me['id']}/roles", json={"role": "auditor"}, headers=operator
    )
    assert response.status_code == 403
    other = new_person(client, operator, roles=["operator"])
    other_token = auth(token_for(client, operator, other["id"], scopes=("admin",)))
    assert (
        client.delete(f"/api/v1/people/{me['id']}/roles/operator", headers=other_token).status_code
        == 200
    )
    response = client.delete(f"/api/v1/people/{other['id']}/roles/operator", headers=operator)
    # `operator` is no longer an operator, so it is refused before the last-operator rule.
    assert response.status_code == 403


# Clearances ----------------------------------------------------------------------------------


def test_safety_officer_grants_cl3_and_it_is_recorded_with_the_policy_hash(client, app, operator):
    officer = new_person(client, operator, name="Amélie Durand", roles=["safety_officer"])
    officer_token = auth(token_for(client, operator, officer["id"], scopes=("admin",)))
    researcher = new_person(client, operator, name="R")
    response = client.post(
        f"/api/v1/people/{researcher['id']}/clearances",
        json={"level": 3, "compartments": ["bio"], "expires_at": in_days(30)},
        headers=officer_token,
    )
    assert response.status_code == 201, response.text
    me = client.get("/api/v1/me", headers=auth(token_for(client, operator, researcher["id"])))
    assert me.json()["clearance"]["level"] == 3
    entry = record_entries(client, app, type="identity:clearance:granted")[0]
    assert entry["data"]["level"] == "CL-3"
    assert entry["actor"]["name"] == "Amélie Durand"
    assert len(entry["data"]["policy_set"]) == 64


def test_operator_cannot_grant_cl3_and_nobody_grants_themself(client, operator):
    researcher = new_person(client, operator)
    response = client.post(
        f"/api/v1/people/{researcher['id']}/clearances",
        json={"level": 3, "expires_at": in_days(30)},
        headers=operator,
    )
    assert response.status_code == 403
    assert problem(response)["detail"]
    me = client.get("/api/v1/me", headers=operator).json()["person"]
    response = client.post(
        f"/api/v1/people/{me['id']}/clearances",
        json={"level": 2, "expires_at": in_days(30)},
        headers=operator,
    )
    assert response.status_code == 403


def test_cl4_needs_a_council_vote(client, operator):
    officer = new_person(client, operator, roles=["safety_officer"])
    officer_token = auth(token_for(client, operator, officer["id"], scopes=("admin",)))
    researcher = new_person(client, operator)
    response = client.post(
        f"/api/v1/people/{researcher['id']}/clearances",
        json={"level": 4, "expires_at": in_days(30)},
        headers=officer_token,
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"level": 5, "expires_at": in_days(3)},
        {"level": 0, "expires_at": in_days(3)},
        {"level": "2", "expires_at": in_days(3)},
        {"level": 2, "expires_at": "tomorrow"},
        {"level": 2, "expires_at": (datetime.now(UTC) - timedelta(days=1)).isoformat()},
        {"level": 2, "expires_at": in_days(3), "compartments": ["Bad Name"]},
    ],
)
def test_bad_clearances_are_refused(client, app, operator, body):
    researcher = new_person(client, operator)
    response = client.post(
        f"/api/v1/people/{researcher['id']}/clearances", json=body, headers=operator
    )
    assert response.status_code == 422, response.text
    assert (
        client.get(f"/api/v1/people/{researcher['id']}/clearances", headers=operator).json()[
            "items"
        ]
        == []
    )


def test_new_clearance_supersedes_and_revocation_is_recorded(client, app, operator):
    researcher = new_person(client, operator)
    url = f"/api/v1/people/{researcher['id']}/clearances"
    first = client.post(url, json={"level": 1, "expires_at": in_days(9)}, headers=operator).json()
    second = client.post(url, json={"level": 2, "expires_at": in_days(9)}, headers=operator).json()
    rows = client.get(url, headers=operator).json()["items"]
    assert [r["revoked_at"] is None for r in rows] == [False, True]
    assert client.delete(f"/api/v1/clearances/{second['id']}", headers=operator).status_code == 200
    assert client.delete(f"/api/v1/clearances/{second['id']}", headers=operator).status_code == 409
    types = [e["type"] for e in record_entries(client, app, type="identity:clearance")]
    assert types == ["identity:clearance:granted"] * 2 + ["identity:clearance:revoked"]
    granted = record_entries(client, app, type="identity:clearance:granted")
    assert granted[1]["data"]["supersedes"] == first["id"]


# Every change is on the record ----------------------------------------------------------------


def test_every_identity_change_writes_exactly_one_entry(client, app, operator):
    before = len(record_entries(client, app))
    inst = make_institution(client, operator)
    person = new_person(client, operator, institution_id=inst["id"])
    client.post(f"/api/v1/people/{person['id']}/roles", json={"role": "pi"}, headers=operator)
    token = client.post(
        f"/api/v1/people/{person['id']}/tokens", json={"scopes": ["read"]}, headers=operator
    ).json()
    client.delete(f"/api/v1/tokens/{token['id']}", headers=operator)
    client.patch(f"/api/v1/people/{person['id']}", json={"name": "New"}, headers=operator)
    after = record_entries(client, app)[before:]
    assert [e["type"] for e in after] == [
        "identity:institution:created",
        "identity:person:created",
        "identity:role:granted",
        "identity:token:issued",
        "identity:token:revoked",
        "identity:person:updated",
    ]
    assert all(token["token"] not in str(e) for e in after)


def test_a_browser_cookie_cannot_change_anything_through_the_api_without_csrf(
    client, app, operator_token, facility
):
    from commonlab.identity.service import authenticate
    from commonlab.portal.session import SESSION_COOKIE, csrf_token, start_session

    with facility.db.session() as db:
        cookie = start_session(db, authenticate(db, operator_token))
    client.cookies.set(SESSION_COOKIE, cookie)
    assert client.get("/api/v1/me").json()["authenticated"] is True
    refused = client.post("/api/v1/institutions", json=NAIROBI)
    assert refused.status_code == 403
    assert "X-CSRF-Token" in problem(refused)["detail"]
    assert client.get("/api/v1/institutions").json()["items"] == []
    allowed = client.post(
        "/api/v1/institutions",
        json=NAIROBI,
        headers={"X-CSRF-Token": csrf_token(facility.session_secret, cookie)},
    )
    assert allowed.status_code == 201


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("get", "/api/v1/institutions", {"params": {"q": "a\x00b"}}),
        ("get", "/api/v1/record/entries", {"params": {"subject": "\x00"}}),
        ("get", "/api/v1/record/entries", {"params": {"type": "%"}}),
        ("post", "/api/v1/institutions", {"json": {**NAIROBI, "name": "Nul\x00Lab"}}),
        ("post", "/api/v1/institutions", {"json": {**NAIROBI, "name": "Two\nLines"}}),
    ],
)
def test_nul_characters_and_wildcards_never_500(client, operator, method, path, kwargs):
    response = getattr(client, method)(path, headers=operator, **kwargs)
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        assert response.json()["items"] == []
    assert client.get("/api/v1/institutions").json()["items"] == []

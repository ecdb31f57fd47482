"""identity/service.py called directly (no HTTP): each use case and the record entry it
writes, and the reads and the project-membership port other domains rely on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from commonlab.errors import ConfigError, NotFound
from commonlab.identity import projects
from commonlab.identity import service as identity
from commonlab.identity.schemas import ClearanceCreate, InstitutionCreate, PersonCreate, TokenCreate
from commonlab.policy import policy_set_hash
from commonlab.policy.principal import Role, Scope
from tests.identity.people import operator_principal, signed_in
from tests.record.entries import last_entry


@pytest.fixture
def operator(facility, operator_token):
    return operator_principal(facility.db, operator_token)


def test_creating_an_institution_is_on_the_record_in_clear(facility, operator):
    with facility.db.session() as db:
        made = identity.create_institution(
            db,
            operator,
            InstitutionCreate(name="Université de Lyon", country="FR", kind="university"),
        )
    entry = last_entry(facility.db, "identity:institution:created")
    assert entry["subject"] == f"institution/{made.id}"
    assert entry["data"] == {"name": "Université de Lyon", "country": "FR", "kind": "university"}
    assert entry["actor"] == {"id": operator.pseudonym, "name": operator.name, "role": "operator"}


def test_a_new_person_is_a_pseudonym_and_commitments(facility, operator):
    with facility.db.session() as db:
        person = identity.create_person(
            db,
            operator,
            PersonCreate(name="Wanjiru Kamau", email="w@example.org", roles=[Role.RESEARCHER]),
        )
    entry = last_entry(facility.db, "identity:person:created")
    assert entry["subject"] == f"person/{person.pseudonym}"
    assert entry["data"]["roles"] == ["researcher"] and entry["data"]["institution"] is None
    for private in ("name", "email"):
        assert entry["data"][private]["commitment"].startswith("sha256:")
    assert "Wanjiru" not in str(entry)


def test_granting_a_public_role_names_its_holder(facility, operator):
    person, _ = signed_in(facility.db, operator, "Giulia Rossi")
    with facility.db.session() as db:
        identity.grant_role(db, operator, person.id, Role.DELEGATE)
    entry = last_entry(facility.db, "identity:role:granted")
    assert entry["subject"] == f"person/{person.pseudonym}"
    assert entry["data"] == {"role": "delegate", "name": "Giulia Rossi"}


def test_issuing_and_revoking_a_token(facility, operator):
    person, _ = signed_in(facility.db, operator, "Amina Odhiambo")
    with facility.db.session() as db:
        token, secret = identity.issue_token(
            db, operator, person.id, TokenCreate(name="laptop", scopes=[Scope.READ])
        )
    issued = last_entry(facility.db, "identity:token:issued")
    assert issued["subject"] == f"token/{token.key_id}"
    assert issued["data"]["holder"] == person.pseudonym and issued["data"]["scopes"] == ["read"]
    assert secret not in str(issued)
    with facility.db.session() as db:
        identity.revoke_token(db, operator, token.id)
    revoked = last_entry(facility.db, "identity:token:revoked")
    assert (revoked["subject"], revoked["data"]) == (
        f"token/{token.key_id}",
        {"holder": person.pseudonym},
    )


def test_a_clearance_names_the_policy_set_and_the_regulation_it_was_granted_under(
    facility, operator
):
    person, _ = signed_in(facility.db, operator, "Kofi Mensah")
    expires_at = datetime.now(UTC) + timedelta(days=30)
    with facility.db.session() as db:
        grant = identity.grant_clearance(
            db,
            operator,
            person.id,
            ClearanceCreate(level=2, compartments=["genomics"], expires_at=expires_at),
        )
    entry = last_entry(facility.db, "identity:clearance:granted")
    assert entry["subject"] == f"clearance/{grant.id}"
    data = entry["data"]
    assert (data["holder"], data["level"], data["supersedes"]) == (person.pseudonym, "CL-2", None)
    assert data["policy_set"] == entry["policy_set"] == policy_set_hash()
    assert data["regulation"]["version"] == 0  # the provisional regulation
    assert data["compartments"]["commitment"].startswith("sha256:")
    assert "motion" not in data  # granted by a person, not by a council vote


def test_reads_for_other_domains(facility, operator):
    first, _ = signed_in(facility.db, operator, "Ana Costa")
    second, _ = signed_in(facility.db, operator, "Jan Novak")
    with facility.db.session() as db:
        assert identity.person(db, first.id).name == "Ana Costa"
        found = identity.people(db, {first.id, second.id, 999})
        assert {p.name for p in found.values()} == {"Ana Costa", "Jan Novak"}
        assert identity.people(db, set()) == {}
        with pytest.raises(NotFound):
            identity.person(db, 999)


def test_a_principals_projects_come_through_the_port(facility, operator, monkeypatch):
    _, principal = signed_in(facility.db, operator, "Lea Weber", Role.RESEARCHER)
    assert principal.projects == frozenset()  # allocation answered: no project yet
    monkeypatch.setattr(projects, "_answer", lambda db, person_id: frozenset({"p-7"}))
    _, principal = signed_in(facility.db, operator, "Lea Weber II", Role.RESEARCHER)
    assert principal.projects == {"p-7"}


def test_an_unconnected_projects_port_refuses_to_guess(facility, operator, monkeypatch):
    monkeypatch.setattr(projects, "_answer", None)
    with pytest.raises(ConfigError, match="project-membership port is not connected"):
        signed_in(facility.db, operator, "Nadia Haddad")

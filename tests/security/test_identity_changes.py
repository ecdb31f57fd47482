"""Issue 13, the identity half of finding 6 and the renaming item of finding 9, replayed as
the attacker would: a reviewer moves herself to another institution (to dodge a conflict of
interest), a delegate renames himself on the council's pages. Only another operator makes
these changes, and the record names who did and what changed."""

from __future__ import annotations

import pytest

from tests.helpers import person_with_token, problem, record_entries
from tests.security.identity_helpers import identity_snapshot

SELF_REFUSAL = "no one changes their own institution, activation or public name"


def institution(client, operator, name, country="IT"):
    made = client.post(
        "/api/v1/institutions",
        json={"name": name, "country": country, "kind": "university"},
        headers=operator,
    )
    assert made.status_code == 201, made.text
    return made.json()["id"]


def test_a_reviewer_cannot_move_herself_to_another_institution(client, operator, facility):
    home = institution(client, operator, "Politecnico di Milano")
    elsewhere = institution(client, operator, "Sorbonne", "FR")
    reviewer, mine = person_with_token(client, operator, "Reviewer", ["reviewer"], home)
    other, _ = person_with_token(client, operator, "Colleague", ["researcher"], home)
    before = identity_snapshot(facility)
    for target, refusal in ((reviewer, SELF_REFUSAL), (other, "or the person themself")):
        response = client.patch(
            f"/api/v1/people/{target['id']}", json={"institution_id": elsewhere}, headers=mine
        )
        assert response.status_code == 403, response.text
        assert refusal in problem(response)["detail"]
    cleared = client.patch(
        f"/api/v1/people/{reviewer['id']}", json={"institution_id": None}, headers=mine
    )
    assert cleared.status_code == 403
    assert identity_snapshot(facility) == before
    # Unchanged fields ride along freely: the same institution again is no change.
    same = client.patch(
        f"/api/v1/people/{reviewer['id']}",
        json={"institution_id": home, "email": "r@polimi.it"},
        headers=mine,
    )
    assert same.status_code == 200, same.text


def test_an_operator_changes_an_institution_on_the_record(client, app, operator, facility):
    home = institution(client, operator, "Politecnico di Milano")
    elsewhere = institution(client, operator, "Sorbonne", "FR")
    reviewer, _ = person_with_token(client, operator, "Reviewer", ["reviewer"], home)
    moved = client.patch(
        f"/api/v1/people/{reviewer['id']}", json={"institution_id": elsewhere}, headers=operator
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["institution_id"] == elsewhere
    entry = record_entries(client, app, type="identity:person:updated")[-1]
    assert entry["subject"] == f"person/{reviewer['pseudonym']}"
    assert entry["data"]["changes"] == {"institution_id": elsewhere}
    assert entry["actor"]["role"] == "operator"  # named: it was done in a public role


def test_an_operator_cannot_change_their_own_institution(client, operator, facility):
    elsewhere = institution(client, operator, "Sorbonne", "FR")
    me = client.get("/api/v1/me", headers=operator).json()["person"]
    before = identity_snapshot(facility)
    response = client.patch(
        f"/api/v1/people/{me['id']}", json={"institution_id": elsewhere}, headers=operator
    )
    assert response.status_code == 403
    assert SELF_REFUSAL in problem(response)["detail"]
    assert identity_snapshot(facility) == before


@pytest.mark.parametrize("role", ["delegate", "safety_officer", "operator"])
def test_a_public_role_holder_cannot_rename_themself(client, operator, facility, role):
    holder, mine = person_with_token(client, operator, "Giulia Rossi", [role])
    before = identity_snapshot(facility)
    response = client.patch(
        f"/api/v1/people/{holder['id']}", json={"name": "Someone Trusted"}, headers=mine
    )
    assert response.status_code == 403, response.text
    assert identity_snapshot(facility) == before
    # The rest of their account is still their own.
    email = client.patch(
        f"/api/v1/people/{holder['id']}", json={"email": "giulia@example.org"}, headers=mine
    )
    assert email.status_code == 200, email.text


def test_an_operator_renames_a_delegate_on_the_record(client, app, operator):
    delegate, _ = person_with_token(client, operator, "Giulia Rossi", ["delegate"])
    renamed = client.patch(
        f"/api/v1/people/{delegate['id']}", json={"name": "Giulia Rossi-Bianchi"}, headers=operator
    )
    assert renamed.status_code == 200, renamed.text
    entry = record_entries(client, app, type="identity:person:updated")[-1]
    # A public role's holder is named on the record, so the new name is too, in clear.
    assert entry["data"]["changes"] == {"name": "Giulia Rossi-Bianchi"}
    assert entry["actor"]["role"] == "operator"


def test_a_person_without_a_public_role_renames_themself_privately(client, app, operator):
    researcher, mine = person_with_token(client, operator, "Ada", ["researcher"])
    renamed = client.patch(f"/api/v1/people/{researcher['id']}", json={"name": "Ada L."},
                           headers=mine)  # fmt: skip
    assert renamed.status_code == 200, renamed.text
    entry = record_entries(client, app, type="identity:person:updated")[-1]
    assert entry["data"]["changes"] == {}
    assert "Ada L." not in str(entry) and entry["data"]["name"]["commitment"]


@pytest.mark.parametrize("field", ["name", "active"])
def test_removing_a_required_field_is_a_422_not_a_500(client, operator, facility, field):
    someone, _ = person_with_token(client, operator, "Someone", ["researcher"])
    before = identity_snapshot(facility)
    response = client.patch(f"/api/v1/people/{someone['id']}", json={field: None},
                            headers=operator)  # fmt: skip
    assert response.status_code == 422
    assert "cannot be removed" in problem(response)["detail"]
    assert identity_snapshot(facility) == before

"""Issue 13, finding 8, replayed: every way the last working operator credential could be
taken away is refused (409 or 403) and changes nothing; when it is gone anyway (the only
admin token expired), `commonlab admin recover`, run with the facility's home, issues a new
one and puts that on the record, and refuses clearly where there is no facility home."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from commonlab.cli.main import main
from commonlab.db import utcnow
from commonlab.errors import Conflict
from commonlab.identity import service
from commonlab.identity.models import ApiToken
from commonlab.policy.principal import SYSTEM, Role
from commonlab.record.models import Entry
from tests.helpers import auth, person_with_token, problem, record_entries
from tests.security.identity_helpers import identity_snapshot

LOCKOUT = "would leave no working operator"


def me(client, headers):
    return client.get("/api/v1/me", headers=headers).json()


def test_the_only_operator_cannot_deactivate_themself(client, operator, facility):
    mine = me(client, operator)["person"]
    before = identity_snapshot(facility)
    response = client.patch(f"/api/v1/people/{mine['id']}", json={"active": False},
                            headers=operator)  # fmt: skip
    assert response.status_code == 403
    assert identity_snapshot(facility) == before
    assert me(client, operator)["authenticated"] is True


def test_the_only_operator_cannot_revoke_their_only_admin_token(client, operator, facility):
    person_id = me(client, operator)["person"]["id"]
    tokens = client.get(f"/api/v1/people/{person_id}/tokens", headers=operator).json()["items"]
    before = identity_snapshot(facility)
    response = client.delete(f"/api/v1/tokens/{tokens[0]['id']}", headers=operator)
    assert response.status_code == 409
    assert LOCKOUT in problem(response)["detail"]
    assert "commonlab admin recover" in problem(response)["detail"]
    assert identity_snapshot(facility) == before
    assert me(client, operator)["authenticated"] is True


def test_an_operator_without_admin_cannot_remove_the_last_one_who_has_it(
    client, operator, facility
):
    """A second operator whose token is only read/write (no admin: it can neither create
    accounts nor grant roles) tries to revoke, then deactivate, the one working operator."""
    _, write_only = person_with_token(client, operator, "Second operator", ["operator"])
    first = me(client, operator)["person"]
    admin_token = client.get(f"/api/v1/people/{first['id']}/tokens", headers=operator).json()
    before = identity_snapshot(facility)
    revoked = client.delete(f"/api/v1/tokens/{admin_token['items'][0]['id']}", headers=write_only)
    assert revoked.status_code == 409
    assert LOCKOUT in problem(revoked)["detail"]
    deactivated = client.patch(f"/api/v1/people/{first['id']}", json={"active": False},
                               headers=write_only)  # fmt: skip
    assert deactivated.status_code == 409
    assert LOCKOUT in problem(deactivated)["detail"]
    assert identity_snapshot(facility) == before
    assert me(client, operator)["authenticated"] is True


def test_with_another_working_operator_the_same_changes_go_through(client, operator):
    second, second_admin = person_with_token(client, operator, "Second operator", ["operator"])
    issued = client.post(f"/api/v1/people/{second['id']}/tokens", json={"scopes": ["admin"]},
                         headers=operator)  # fmt: skip
    second_admin = auth(issued.json()["token"])
    first = me(client, operator)["person"]
    tokens = client.get(f"/api/v1/people/{first['id']}/tokens", headers=operator).json()["items"]
    assert client.delete(f"/api/v1/tokens/{tokens[0]['id']}", headers=second_admin).status_code == (
        200
    )
    # Now the second operator is the last one who can act: their token is guarded.
    refused = client.delete(f"/api/v1/tokens/{issued.json()['id']}", headers=second_admin)
    assert refused.status_code == 409


def test_revoking_the_last_operators_role_is_refused_on_every_path(client, operator, facility):
    """Over HTTP an operator cannot revoke their own role (policy), and whoever revokes
    another's is a working operator and stays one; the guard holds even for the system
    (a governance effect, a script), which no policy stops."""
    mine = me(client, operator)["person"]
    before = identity_snapshot(facility)
    with facility.db.session() as db, pytest.raises(Conflict, match=LOCKOUT):
        service.revoke_role(db, SYSTEM, mine["id"], Role.OPERATOR)
    own = client.delete(f"/api/v1/people/{mine['id']}/roles/operator", headers=operator)
    assert own.status_code == 403
    assert identity_snapshot(facility) == before


@pytest.mark.parametrize("round_", range(3))  # each race is a fresh chance to interleave
def test_two_operators_revoking_each_others_admin_token_at_once_leave_one(
    client, app, operator, facility, round_
):
    """Each of the last two working operators revokes the other's only admin token, at the
    same instant, each from a client and thread of its own: one wins, the other is refused
    (409, or 401 when its own token is already gone), and one operator can still act."""
    first = me(client, operator)["person"]
    first_token = client.get(f"/api/v1/people/{first['id']}/tokens", headers=operator).json()
    second, _ = person_with_token(client, operator, "Second operator", ["operator"])
    issued = client.post(f"/api/v1/people/{second['id']}/tokens", json={"scopes": ["admin"]},
                         headers=operator).json()  # fmt: skip
    revokes = [
        (operator, f"/api/v1/tokens/{issued['id']}"),
        (auth(issued["token"]), f"/api/v1/tokens/{first_token['items'][0]['id']}"),
    ]
    barrier = threading.Barrier(len(revokes))
    answers: list = [None] * len(revokes)

    def revoke(i: int) -> None:
        headers, path = revokes[i]
        own_client = TestClient(app, raise_server_exceptions=False)
        barrier.wait()
        answers[i] = own_client.delete(path, headers=headers)

    threads = [threading.Thread(target=revoke, args=(i,)) for i in range(len(revokes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    codes = sorted(answer.status_code for answer in answers)
    assert codes[0] == 200 and codes[1] in (401, 409), [a.text for a in answers]
    with facility.db.session() as db:
        revoked = db.scalars(select(ApiToken.id).where(ApiToken.revoked_at.is_not(None))).all()
        entries = db.scalar(
            select(func.count()).select_from(Entry).where(Entry.type == "identity:token:revoked")
        )
    assert len(revoked) == 1 and entries == 1


# Recovery ------------------------------------------------------------------------------------


def recover(capsys, monkeypatch, settings, *args):
    monkeypatch.delenv("COMMONLAB_CONFIG", raising=False)
    monkeypatch.setenv("COMMONLAB_HOME", str(settings.home))
    monkeypatch.setenv("COMMONLAB_DATABASE_URL", settings.database_url)
    try:
        main(["admin", "recover", *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def the_token_in(out):
    return next(word for word in out.split() if word.startswith("clab_"))


def expire_every_token(facility):
    """Time passes: the only admin token expires (no request can stop that)."""
    with facility.db.session() as db, db.begin():
        db.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))


def test_recover_gives_the_locked_out_operator_a_new_token_on_the_record(
    capsys, monkeypatch, client, app, operator, facility, settings
):
    operator_pseudonym = me(client, operator)["pseudonym"]
    expire_every_token(facility)
    assert client.get("/api/v1/me", headers=operator).status_code == 401
    code, out, err = recover(capsys, monkeypatch, settings)
    assert code == 0, err
    assert "not shown again" in out
    fresh = auth(the_token_in(out))
    mine = me(client, fresh)
    assert mine["pseudonym"] == operator_pseudonym
    assert mine["person"]["roles"] == ["operator"] and "admin" in mine["scopes"]
    issued = record_entries(client, app, type="identity:token:issued")[-1]
    assert issued["data"]["recovery"] == "commonlab admin recover"
    assert issued["data"]["holder"] == operator_pseudonym and issued["actor"]["id"] == "system"
    # The recovered operator can act again: make a second operator, so it is not the last.
    assert client.post("/api/v1/people", json={"name": "N"}, headers=fresh).status_code == 201


def test_recover_reactivates_a_named_operator(
    capsys, monkeypatch, client, app, operator, facility, settings
):
    second, _ = person_with_token(client, operator, "Second operator", ["operator"])
    client.post(f"/api/v1/people/{second['id']}/tokens", json={"scopes": ["admin"]},
                headers=operator)  # fmt: skip
    off = client.patch(f"/api/v1/people/{second['id']}", json={"active": False}, headers=operator)
    assert off.status_code == 200, off.text
    expire_every_token(facility)
    code, out, err = recover(capsys, monkeypatch, settings, "--person", str(second["id"]))
    assert code == 0, err
    assert me(client, auth(the_token_in(out)))["pseudonym"] == second["pseudonym"]
    updated = record_entries(client, app, subject=f"person/{second['pseudonym']}")
    assert updated[-1]["type"] == "identity:person:updated"
    assert updated[-1]["data"]["changes"] == {"active": True}


def test_recover_creates_an_operator_where_there_is_none(
    capsys, monkeypatch, client, app, facility, settings
):
    code, out, err = recover(capsys, monkeypatch, settings, "--name", "Night operator")
    assert code == 0, err
    mine = me(client, auth(the_token_in(out)))
    assert mine["person"]["name"] == "Night operator"
    created = record_entries(client, app, type="identity:person:created")
    assert created[-1]["data"]["recovery"] is True


@pytest.mark.parametrize("home", ["missing", "empty"])
def test_recover_refuses_without_the_facility_home(capsys, monkeypatch, tmp_path, home):
    place = tmp_path / "not-a-facility"
    if home == "empty":
        place.mkdir()
    monkeypatch.delenv("COMMONLAB_CONFIG", raising=False)
    monkeypatch.delenv("COMMONLAB_DATABASE_URL", raising=False)
    monkeypatch.setenv("COMMONLAB_HOME", str(place))
    with pytest.raises(SystemExit) as exited:
        main(["admin", "recover"])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert ("does not exist" if home == "missing" else "holds no facility") in err
    assert "COMMONLAB_HOME" in err and len(err.strip().splitlines()) <= 2
    # Nothing was created: no home, no database, no key.
    assert list(tmp_path.rglob("*")) == ([] if home == "missing" else [place])


def test_recover_is_not_reachable_over_http(client):
    """There is no route that recovers: only a shell on the facility's machine can."""
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert not [p for p in paths if "recover" in p]

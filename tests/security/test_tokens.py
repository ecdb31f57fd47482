"""Issue 13, finding 2 and the identity half of finding 3, replayed as an attacker would:
a job's own token (read from the job's output, as its code reads it) tries to escape into
identity, and a person's token tries to make a broader one. Each attack is refused and
changes nothing: no row, no record entry. Also pinned: a deactivated person's tokens stop,
and a token is expired at exactly its expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from commonlab.errors import Unauthenticated
from commonlab.identity import service
from commonlab.identity.models import ApiToken
from commonlab.policy import Action, Resource, decide
from commonlab.policy.levels import Level
from commonlab.policy.principal import Principal, Role, Scope
from tests.compute.helpers import award_project
from tests.helpers import auth, person_with_token, problem
from tests.security.identity_helpers import identity_snapshot, leaked_job_token

JOB_REFUSAL = "a job's token cannot change people, roles, tokens, clearances or institutions"


@pytest.fixture
def project(client, operator):
    return award_project(client, operator)


def in_days(days):
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def test_a_jobs_token_cannot_touch_identity(client, app, operator, facility, project):
    """The job acts with its PI's confined token. With it, it tries every identity write
    (a year-long token for its submitter first) and listing the submitter's tokens."""
    pi = project.pi["id"]
    clearance = client.post(
        f"/api/v1/people/{pi}/clearances",
        json={"level": 2, "expires_at": in_days(30)},
        headers=operator,
    ).json()
    with leaked_job_token(client, app, project) as token:
        job = auth(token)
        # The token works: the job may still read who it acts for.
        assert client.get("/api/v1/me", headers=job).json()["pseudonym"] == project.pi["pseudonym"]
        own_tokens = client.get(f"/api/v1/people/{pi}/tokens", headers=operator).json()["items"]
        before = identity_snapshot(facility)
        attacks = [
            ("post", f"/api/v1/people/{pi}/tokens",
             {"name": "forever", "scopes": ["read", "write"], "expires_in_days": 365}),
            ("post", f"/api/v1/people/{pi}/tokens", {"scopes": ["read"]}),
            ("get", f"/api/v1/people/{pi}/tokens", None),
            ("patch", f"/api/v1/people/{pi}", {"email": "attacker@example.org"}),
            ("patch", f"/api/v1/people/{pi}", {"name": "Someone Else"}),
            ("delete", f"/api/v1/tokens/{own_tokens[0]['id']}", None),
            ("post", f"/api/v1/people/{pi}/roles", {"role": "reviewer"}),
            ("delete", f"/api/v1/people/{pi}/roles/researcher", None),
            ("post", f"/api/v1/people/{pi}/clearances", {"level": 1, "expires_at": in_days(9)}),
            ("delete", f"/api/v1/clearances/{clearance['id']}", None),
            ("post", "/api/v1/institutions",
             {"name": "Shell Co", "country": "IT", "kind": "sme"}),
            ("post", "/api/v1/people", {"name": "Sock Puppet"}),
        ]  # fmt: skip
        for method, path, body in attacks:
            kwargs = {"json": body} if body is not None else {}
            response = client.request(method, path, headers=job, **kwargs)
            assert response.status_code == 403, (method, path, response.text)
            detail = problem(response)["detail"]
            # Actions needing admin are refused sooner: a job's token is read and write only.
            assert JOB_REFUSAL in detail or "needs admin" in detail, (method, path, detail)
        assert identity_snapshot(facility) == before


def test_a_jobs_token_reads_no_higher_than_the_job(client, app, operator, facility, project):
    """A CL-2 person's CL-1 job cannot read a CL-2 dataset of its own project with its
    token, though the person can: the token is capped at the job's level."""
    pi = project.pi["id"]
    granted = client.post(
        f"/api/v1/people/{pi}/clearances",
        json={"level": 2, "expires_at": in_days(30)},
        headers=operator,
    )
    assert granted.status_code == 201, granted.text
    repo = client.post(
        "/api/v1/artifacts/repos",
        json={
            "kind": "dataset",
            "name": "controlled",
            "project": project.name,
            "visibility": "project",
            "level": 2,
        },
        headers=project.pi_auth,
    )
    assert repo.status_code == 201, repo.text
    path = f"/api/v1/artifacts/datasets/{repo.json()['repo_id']}"
    assert client.get(path, headers=project.pi_auth).status_code == 200
    with leaked_job_token(client, app, project) as token:
        assert client.get(path, headers=auth(token)).status_code in (403, 404)
        with facility.db.session() as db:
            acting = service.authenticate(db, token)
        assert acting.clearance.level == Level.CL1 and acting.job_id is not None
        assert acting.projects == {project.name} and acting.roles == frozenset()


def test_the_cap_never_raises_a_clearance(client, operator, facility):
    """A job above its holder's clearance reads at the holder's; none stays none."""
    cleared, _ = person_with_token(client, operator, "Cleared", ["researcher"])
    plain, _ = person_with_token(client, operator, "Plain", ["researcher"])
    client.post(
        f"/api/v1/people/{cleared['id']}/clearances",
        json={"level": 1, "expires_at": in_days(30)},
        headers=operator,
    )
    key = b"k" * 32
    until = datetime.now(UTC) + timedelta(hours=1)
    with facility.db.session() as db, db.begin():
        low = service.job_token(
            db, cleared["id"], job_key="job/7", project="p", level=3, expires_at=until, key=key
        )
        none = service.job_token(
            db, plain["id"], job_key="job/8", project="p", level=3, expires_at=until, key=key
        )
    with facility.db.session() as db:
        assert service.authenticate(db, low).clearance.level == Level.CL1
        assert service.authenticate(db, none).clearance is None
        assert service.authenticate(db, none).job_id == 8


def test_a_token_cannot_issue_a_broader_or_longer_lived_one(client, operator, facility):
    someone, mine = person_with_token(client, operator, "Someone", ["researcher"])
    url = f"/api/v1/people/{someone['id']}/tokens"
    short = client.post(url, json={"scopes": ["read", "write"], "expires_in_days": 2},
                        headers=mine).json()  # fmt: skip
    before = identity_snapshot(facility)
    broader = client.post(url, json={"scopes": ["admin"]}, headers=auth(short["token"]))
    assert broader.status_code == 403
    assert "never issues one broader than itself" in problem(broader)["detail"]
    assert identity_snapshot(facility) == before
    # Asked for a year, a token made by a two-day token lasts no longer than its maker.
    longer = client.post(url, json={"scopes": ["read"], "expires_in_days": 365},
                         headers=auth(short["token"]))  # fmt: skip
    assert longer.status_code == 201, longer.text
    assert longer.json()["expires_at"] <= short["expires_at"]
    with facility.db.session() as db:
        made = db.get_one(ApiToken, longer.json()["id"])
        maker = db.get_one(ApiToken, short["id"])
        assert made.expires_at <= maker.expires_at


def test_an_operator_without_admin_cannot_mint_an_admin_token(client, operator, facility):
    _, op_write = person_with_token(client, operator, "Write-only operator", ["operator"])
    target, _ = person_with_token(client, operator, "Accomplice", ["researcher"])
    before = identity_snapshot(facility)
    response = client.post(
        f"/api/v1/people/{target['id']}/tokens", json={"scopes": ["admin"]}, headers=op_write
    )
    assert response.status_code == 403
    assert "cannot issue scope admin" in problem(response)["detail"]
    assert identity_snapshot(facility) == before


def test_a_deactivated_persons_tokens_stop_working(client, operator):
    someone, mine = person_with_token(client, operator, "Leaver", ["researcher"])
    assert client.get("/api/v1/me", headers=mine).json()["authenticated"] is True
    off = client.patch(f"/api/v1/people/{someone['id']}", json={"active": False}, headers=operator)
    assert off.status_code == 200, off.text
    refused = client.get("/api/v1/me", headers=mine)
    assert refused.status_code == 401
    assert "deactivated" in problem(refused)["detail"]
    on = client.patch(f"/api/v1/people/{someone['id']}", json={"active": True}, headers=operator)
    assert on.status_code == 200
    assert client.get("/api/v1/me", headers=mine).json()["authenticated"] is True


def test_a_token_is_expired_at_exactly_its_expiry(client, operator, facility):
    someone, mine = person_with_token(client, operator, "Someone", ["researcher"])
    bearer = mine["Authorization"].removeprefix("Bearer ")
    with facility.db.session() as db:
        expires_at = db.scalars(
            select(ApiToken.expires_at).where(ApiToken.person_id == someone["id"])
        ).one()
    just_before = expires_at - timedelta(microseconds=1)
    with facility.db.session() as db:
        assert service.authenticate(db, bearer, now=just_before).person_id == someone["id"]
    with facility.db.session() as db, pytest.raises(Unauthenticated, match="expired"):
        service.authenticate(db, bearer, now=expires_at)


READS = {Action.InstitutionRead, Action.PersonRead, Action.ClearanceRead}


@pytest.mark.parametrize("action", [a for a in Action if a.domain == "identity"])
def test_the_policy_refuses_a_job_every_identity_change_on_its_own_person(action):
    """Even with every scope and every office (a job's token has neither), a principal
    acting for a job may only read; the policy fails closed on everything else."""
    job = Principal(
        pseudonym="p-job",
        person_id=7,
        job_id=3,
        roles=frozenset(Role),
        scopes=frozenset(Scope),
    )
    for resource in (
        Resource.person(7),
        Resource.people(),
        Resource.token(7),
        Resource.token(7, 1),
        Resource.clearance(8),
        Resource.institution(),
        Resource.institution(1),
    ):
        decision = decide(job, action, resource)
        if action not in READS:
            assert not decision.allowed, (action, resource)
    if action not in READS:
        assert "job-token-no-identity" in decide(job, action, Resource.person(7)).policy_ids

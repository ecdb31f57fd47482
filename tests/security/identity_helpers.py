"""What the identity attacks share: the token a job really gets, and a snapshot of every
identity row and record entry, so a refused attack can be shown to have changed nothing."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from commonlab.facility import Facility
from commonlab.identity.models import ApiToken, ClearanceGrant, Institution, Person, RoleGrant
from commonlab.record.models import Entry
from tests.compute.helpers import Project, run_until

# The job prints the token it was given, as hostile code would, and stays running.
LEAK = 'echo "token=${COMMONLAB_TOKEN:-$(cat "$COMMONLAB_TOKEN_FILE")}"; sleep 120'


@contextmanager
def leaked_job_token(client: TestClient, app: Any, project: Project) -> Iterator[str]:
    """Run a job of the project's PI that leaks its token to its log; yield the token while
    the job runs (it stops working when the job ends), then cancel the job."""
    jobs = app.state.jobs
    made = client.post(
        "/api/v1/jobs",
        json={
            "name": "leak",
            "project": project.name,
            "command": LEAK,
            "accelerator": "cpu",
            "accelerators": 1,
            "time_limit_minutes": 5,
        },
        headers=project.pi_auth,
    )
    assert made.status_code == 201, made.text
    job_id = made.json()["id"]
    try:
        run_until(jobs, client, job_id, project.pi_auth, {"running"})
        deadline = time.monotonic() + 20
        while not (found := re.search(r"token=(clab_\S+)", _log(client, job_id, project))):
            assert time.monotonic() < deadline, "the job never printed its token"
            time.sleep(0.1)
        yield found.group(1)
    finally:
        client.post(f"/api/v1/jobs/{job_id}/cancel", headers=project.pi_auth)
        run_until(jobs, client, job_id, project.pi_auth, {"cancelled", "failed", "succeeded"})


def _log(client: TestClient, job_id: int, project: Project) -> str:
    return client.get(f"/api/v1/jobs/{job_id}/logs", headers=project.pi_auth).json()["text"]


def identity_snapshot(facility: Facility) -> dict[str, Any]:
    """Every identity row that an attack could change, and how many record entries exist."""
    with facility.db.session() as db:
        return {
            "institutions": db.execute(
                select(Institution.id, Institution.name, Institution.country).order_by(
                    Institution.id
                )
            ).all(),
            "people": db.execute(
                select(
                    Person.id, Person.name, Person.email, Person.institution_id, Person.active
                ).order_by(Person.id)
            ).all(),
            "roles": db.execute(
                select(RoleGrant.person_id, RoleGrant.role).order_by(RoleGrant.id)
            ).all(),
            "tokens": db.execute(
                select(
                    ApiToken.id, ApiToken.scopes, ApiToken.expires_at, ApiToken.revoked_at
                ).order_by(ApiToken.id)
            ).all(),
            "clearances": db.execute(
                select(ClearanceGrant.id, ClearanceGrant.level, ClearanceGrant.revoked_at).order_by(
                    ClearanceGrant.id
                )
            ).all(),
            "entries": db.scalar(select(func.count()).select_from(Entry)),
        }

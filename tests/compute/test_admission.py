"""Group admission: several submissions admitted in one transaction, each in its own
savepoint, so a refusal in the middle takes back only its own job, hold and entries."""

from __future__ import annotations

from decimal import Decimal

from commonlab.compute.admission import Admissions, _Request
from commonlab.compute.schemas import JobCreate
from commonlab.identity.service import authenticate
from tests.compute.helpers import award_project
from tests.helpers import record_entries


def test_a_refusal_in_a_group_takes_back_only_itself(client, app, facility, operator):
    project = award_project(client, operator)
    with facility.db.session() as db:
        pi = authenticate(db, project.pi_auth["Authorization"].split()[1])
        outsider = authenticate(db, project.outsider_auth["Authorization"].split()[1])
    good = JobCreate(project=project.name, command="true", accelerator="cpu")
    too_big = JobCreate(project=project.name, command="true", accelerator="cpu", accelerators=999)
    group = [
        _Request(pi, good, None),
        _Request(outsider, good, None),
        _Request(pi, too_big, None),
        _Request(pi, good, None),
    ]
    before = len(record_entries(client, app))
    Admissions(facility.db, "local").admit_group(group)
    assert all(r.done.is_set() for r in group)
    assert [r.error is None for r in group] == [True, False, False, True]
    assert "members of the project" in str(group[1].error)
    assert "big enough" in str(group[2].error)
    jobs = client.get("/api/v1/jobs", headers=operator).json()["items"]
    assert sorted(j["id"] for j in jobs) == sorted(r.job.id for r in group if r.error is None)
    held = client.get(f"/api/v1/allocations/{project.allocation_id}", headers=operator).json()
    assert Decimal(held["reserved"]["cpu"]) == 2 * Decimal(jobs[0]["reserved_hours"])
    # Two jobs: each an admitted entry and a hold entry; nothing from the refused ones.
    assert len(record_entries(client, app)) == before + 4


def test_the_admission_thread_serves_callers(facility, client, operator):
    project = award_project(client, operator)
    with facility.db.session() as db:
        pi = authenticate(db, project.pi_auth["Authorization"].split()[1])
    admissions = Admissions(facility.db, "local")
    admissions.start()
    try:
        spec = JobCreate(
            project=project.name, command="true", accelerator="cpu", time_limit_minutes=1
        )
        ids = [admissions.admit(pi, spec).id for _ in range(3)]
        assert ids == sorted(ids) and len(set(ids)) == 3
    finally:
        admissions.stop()
    assert not admissions.running

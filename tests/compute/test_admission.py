"""Group admission: several submissions admitted in one transaction, their rows written
together, yet a refusal in the middle takes back only its own job, hold and entries."""

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
        # The answer names the partition from the group's read of the fleet.
        job, partition = admissions.admit_placed(pi, spec)
        assert job.id > ids[-1] and partition == "local"
    finally:
        admissions.stop()
    assert not admissions.running


def _hours_to_hold(client, facility, project, operator) -> Decimal:
    """What the project's allocation may hold today: this quarter's available cpu hours and
    the grace margin the regulation in force allows beyond them."""
    from commonlab.regulation.service import in_force

    tranches = client.get(
        f"/api/v1/allocations/{project.allocation_id}/tranches", headers=operator
    ).json()
    available = next(Decimal(t["available"]) for t in tranches if t.get("available"))
    with facility.db.session() as db, db.begin():
        grace = in_force(db).regulation.allocation.grace_margin_percent
    allocation = client.get(f"/api/v1/allocations/{project.allocation_id}", headers=operator)
    return available + Decimal(allocation.json()["budget"]["cpu"]) * grace / 100


def test_a_group_counts_the_hours_its_earlier_jobs_hold(client, app, facility, operator):
    # Written together, a group's holds are still checked one after the other: a job the
    # budget could take alone is refused when the jobs before it in the group took the hours.
    project = award_project(client, operator)
    with facility.db.session() as db:
        pi = authenticate(db, project.pi_auth["Authorization"].split()[1])
    can_hold = _hours_to_hold(client, facility, project, operator)
    minutes = int(can_hold * 60 * 3 / 4)  # one fits, two do not
    big = JobCreate(
        project=project.name, command="true", accelerator="cpu", time_limit_minutes=minutes
    )
    small = JobCreate(project=project.name, command="true", accelerator="cpu", time_limit_minutes=1)
    group = [_Request(pi, big, None), _Request(pi, big, None), _Request(pi, small, None)]
    before = len(record_entries(client, app))
    Admissions(facility.db, "local").admit_group(group)
    assert [r.error is None for r in group] == [True, False, True]
    assert "hours left this quarter" in str(group[1].error)
    held = client.get(f"/api/v1/allocations/{project.allocation_id}", headers=operator).json()
    assert Decimal(held["reserved"]["cpu"]) == sum(r.job.reserved_hours for r in group if r.job)
    assert len(record_entries(client, app)) == before + 4


def test_a_value_the_database_refuses_fails_only_its_own_job(client, facility, operator):
    # PostgreSQL's text cannot hold NUL: writing the group together fails, so it is admitted
    # again one job at a time, and only that job is refused (SQLite stores it).
    project = award_project(client, operator)
    with facility.db.session() as db:
        pi = authenticate(db, project.pi_auth["Authorization"].split()[1])
    good = JobCreate(project=project.name, command="true", accelerator="cpu", time_limit_minutes=1)
    nul = good.model_copy(update={"command": "echo \x00"})
    group = [_Request(pi, good, None), _Request(pi, nul, None), _Request(pi, good, None)]
    Admissions(facility.db, "local").admit_group(group)
    on_postgres = facility.db.engine.dialect.name == "postgresql"
    assert [r.error is None for r in group] == [True, not on_postgres, True]
    jobs = client.get("/api/v1/jobs", headers=operator).json()["items"]
    assert sorted(j["id"] for j in jobs) == sorted(r.job.id for r in group if r.job)

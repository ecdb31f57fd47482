"""The facility's own workload for what-ifs (`GET /api/v1/reports/workload`, and the fleet as
a document, `GET /api/v1/fleet/document`): every job of a window with its pool and an opaque
tenant, read by the simulator's own loader unchanged; contained work only as its pool; only
for those who attach what-ifs; a window that is not one refused on one line."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from commonlab.compute import workload_export
from commonlab.compute.fleet_spec import FleetSpec
from commonlab.compute.models import Job
from commonlab.compute.workload_export import job_pool
from commonlab.simulator.inputs import pool_of_member
from commonlab.simulator.traces import load_trace
from commonlab.simulator.whatif import own_jobs
from tests.compute.helpers import award_project, finish_a_job, job_row
from tests.helpers import auth, person_with_token, problem

TOMORROW = date.today() + timedelta(days=1)


def _delegate(client, operator, code: str = "DE") -> dict[str, str]:
    """Headers of a new delegate of `code` (the council founded already)."""
    person = client.post(
        "/api/v1/people", json={"name": f"Delegate {code}", "roles": ["delegate"]}, headers=operator
    ).json()
    appointed = client.post(
        f"/api/v1/members/{code}/delegates", json={"person_id": person["id"]}, headers=operator
    )
    assert appointed.status_code == 201, appointed.text
    issued = client.post(
        f"/api/v1/people/{person['id']}/tokens", json={"scopes": ["read"]}, headers=operator
    )
    return auth(issued.json()["token"])


def _contained_job(
    facility, allocation_id: int, project: str, *, hours_ago: float, level: int = 3
) -> int:
    """A finished CL-3 job (or of `level`) written as the job controller leaves one (the
    local partition is certified for open work only, so no contained job could run there)."""
    ended = datetime.now(UTC) - timedelta(hours=hours_ago)
    with facility.db.session() as db, db.begin():
        job = Job(
            **job_row(
                name="secret-run",
                project=project,
                allocation_id=allocation_id,
                submitter_id=1,
                accelerators=2,
                cpus=2,
                level=level,
                state="succeeded",
                reserved_hours=Decimal(2),
                charged_hours=Decimal(1),
                elapsed_seconds=1800,
                submitted_at=ended - timedelta(hours=1),
                started_at=ended - timedelta(minutes=30),
                ended_at=ended,
            )
        )
        db.add(job)
        db.flush()
        return job.id


def test_the_export_holds_each_job_with_its_pool_and_loads_as_a_trace(
    client, app, operator, facility, tmp_path: Path
):
    finished = finish_a_job(client, app, operator)
    delegate = _delegate(client, operator)
    contained = [award_project(client, operator, found=False, level=3) for _ in range(2)]
    hidden = [
        _contained_job(facility, p.allocation_id, p.name, hours_ago=h)
        for p, h in zip(contained, (0.5, 0.2), strict=True)
    ]

    response = client.get("/api/v1/reports/workload", headers=delegate)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["x-workload-jobs"] == "3"
    assert response.headers["x-workload-replayable"] == "3"
    start = datetime.fromisoformat(response.headers["x-workload-from"])
    assert datetime.fromisoformat(response.headers["x-workload-to"]) - start == timedelta(days=92)
    text = response.text
    for project in (finished["project"], *(p.name for p in contained)):
        assert project not in text
    assert "secret-run" not in text and finished["name"] not in text
    rows = {int(r["job_id"]): r for r in csv.DictReader(io.StringIO(text))}
    assert set(rows) == {finished["id"], *hidden}
    ours = rows[finished["id"]]
    assert (ours["pool"], ours["class"], ours["state"]) == ("open_calls", "cpu", "succeeded")
    assert ours["accelerators"] == "1" and float(ours["runtime"]) > 0
    # Two contained projects are one tenant of their pool; the open one has its own.
    assert rows[hidden[0]]["tenant"] == rows[hidden[1]]["tenant"] != ours["tenant"]
    assert {rows[i]["pool"] for i in hidden} == {"open_calls"}
    assert float(rows[hidden[0]]["runtime"]) == 1800
    assert float(rows[hidden[0]]["wait"]) == pytest.approx(1800, abs=1)

    path = tmp_path / "quarter.csv"
    path.write_text(text)
    trace = load_trace(path)
    assert len(trace) == 3 and not trace.set_aside
    assert sorted(trace.accelerators) == [1, 2, 2]
    submitted = datetime.fromisoformat(finished["submitted_at"])
    assert float(ours["submit"]) == pytest.approx((submitted - start).total_seconds(), abs=1)
    assert sorted(trace.submit) == sorted(float(r["submit"]) for r in rows.values())

    body = client.get("/api/v1/reports/workload", params={"format": "json"}, headers=operator)
    document = body.json()
    assert document["jobs"] == 3 and document["replayable"] == 3 and document["left_out"] == {}
    assert finished["project"] not in body.text
    [row] = [r for r in document["rows"] if r["job_id"] == finished["id"]]
    assert row["started_at"] and row["ended_at"] and row["tenant"] == ours["tenant"]


def test_every_form_streams_the_same_jobs_batch_by_batch(
    client, app, operator, facility, monkeypatch
):
    # Batches of two: the jobs of three projects (two open, one contained) come in several,
    # and each batch looks up the pools of allocations it has not seen yet.
    monkeypatch.setattr(workload_export, "BATCH", 2)
    waiting = award_project(client, operator)
    levels = (1, 1, 3)
    projects = [award_project(client, operator, found=False, level=lv) for lv in levels]
    for i in range(7):
        p = projects[i % 3]
        _contained_job(facility, p.allocation_id, p.name, hours_ago=10 - i, level=levels[i % 3])
    made = client.post(
        "/api/v1/jobs",
        json={"name": "waits", "project": waiting.name, "command": "true"}
        | {"accelerator": "cpu", "accelerators": 1, "time_limit_minutes": 5},
        headers=waiting.member_auth,
    )
    assert made.status_code == 201, made.text

    answer = client.get("/api/v1/reports/workload", params={"format": "ndjson"}, headers=operator)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in answer.text.splitlines()]
    assert list(lines[0]) == ["window"] and list(lines[-1]) == ["totals"]
    rows = [line["job"] for line in lines[1:-1]]
    assert lines[-1]["totals"] == {
        "jobs": 8,
        "replayable": 7,
        "left_out": {"still waiting for a start: its runtime is not known yet": 1},
    }
    assert [r["submit"] for r in rows] == sorted(r["submit"] for r in rows)
    tenants = [r["tenant"] for r in rows[:7]]
    assert tenants[:3] == ["t1", "t2", "t3"] and tenants[3:6] == tenants[:3]

    whole = client.get("/api/v1/reports/workload", params={"format": "json"}, headers=operator)
    document = whole.json()
    assert document["rows"] == rows
    assert (document["from"], document["to"]) == (
        lines[0]["window"]["from"],
        lines[0]["window"]["to"],
    )
    assert {k: document[k] for k in ("jobs", "replayable", "left_out")} == lines[-1]["totals"]

    text = client.get("/api/v1/reports/workload", headers=operator)
    replayed = list(csv.DictReader(io.StringIO(text.text)))
    assert [int(r["job_id"]) for r in replayed] == [r["job_id"] for r in rows[:7]]
    assert (text.headers["x-workload-jobs"], text.headers["x-workload-replayable"]) == ("8", "7")
    own = own_jobs(answer.text.splitlines())
    assert (len(own.trace), own.jobs) == (7, 8)


def test_a_job_not_yet_started_is_counted_but_not_replayed(client, app, operator):
    project = award_project(client, operator)
    delegate = _delegate(client, operator, "IT")
    made = client.post(
        "/api/v1/jobs",
        json={
            "name": "waits",
            "project": project.name,
            "command": "true",
            "accelerator": "cpu",
            "accelerators": 1,
            "time_limit_minutes": 5,
        },
        headers=project.member_auth,
    )
    assert made.status_code == 201, made.text  # admitted; no controller ticks it onwards

    document = client.get(
        "/api/v1/reports/workload", params={"format": "json"}, headers=delegate
    ).json()
    assert (document["jobs"], document["replayable"]) == (1, 0)
    assert document["left_out"] == {"still waiting for a start: its runtime is not known yet": 1}
    [row] = document["rows"]
    assert row["runtime"] is None and row["started_at"] is None
    exported = client.get("/api/v1/reports/workload", headers=delegate).text
    header = "job_id,tenant,pool,submit,runtime,accelerators,class,wait,state"
    assert exported.splitlines() == [header]


def test_only_those_who_attach_whatifs_read_the_workload(client, app, operator, facility):
    finish_a_job(client, app, operator)
    secret = award_project(client, operator, found=False, level=3)
    _contained_job(facility, secret.allocation_id, secret.name, hours_ago=1)
    _, researcher = person_with_token(client, operator, "Rea Searcher", ["researcher"])

    for headers in (researcher, secret.pi_auth):
        for fmt in ("csv", "json", "ndjson"):
            refused = client.get(
                "/api/v1/reports/workload", params={"format": fmt}, headers=headers
            )
            assert refused.status_code == 403, refused.text
            assert secret.name not in refused.text and "secret-run" not in refused.text
    anonymous = client.get("/api/v1/reports/workload")
    assert anonymous.status_code in (401, 403)
    assert secret.name not in anonymous.text


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"start": "2026-02-30"}, "start"),
        ({"end": "yesterday"}, "end"),
        ({"start": "2026-01-01", "end": "2026-01-01"}, "must be after start"),
        ({"start": "2026-02-01", "end": "2026-01-01"}, "must be after start"),
        ({"start": "2024-01-01", "end": "2026-01-01"}, "at most 366"),
        ({"format": "xml"}, "format"),
        # The default window of 92 days before this end would fall before year 1.
        ({"end": "0001-01-01"}, "end 0001-01-01 is out of range"),
        ({"start": "9999-12-31", "end": "9999-12-31"}, "start 9999-12-31 is out of range"),
    ],
)
def test_a_window_that_is_not_one_is_refused_on_one_line(client, operator, params, named):
    response = client.get("/api/v1/reports/workload", params=params, headers=operator)
    assert response.status_code == 422, response.text
    detail = problem(response)["detail"]
    assert named in detail and "\n" not in detail


def test_a_window_of_a_year_is_exported(client, operator):
    start = TOMORROW - timedelta(days=366)
    response = client.get(
        "/api/v1/reports/workload",
        params={"start": start.isoformat(), "end": TOMORROW.isoformat(), "format": "json"},
        headers=operator,
    )
    assert response.status_code == 200, response.text
    assert response.json()["jobs"] == 0


def test_the_fleet_document_is_the_fleet_as_it_is(client, app, operator):
    finish_a_job(client, app, operator)  # the local machine is the fleet
    response = client.get("/api/v1/fleet/document")
    assert response.status_code == 200, response.text
    fleet = FleetSpec.model_validate(response.json())
    [partition] = fleet.partitions
    overview = client.get("/api/v1/fleet").json()
    assert partition.name == "local" and partition.accelerator == "cpu"
    assert fleet.accelerators == overview["accelerators"]
    assert partition.domain_size == 1


@pytest.mark.parametrize(
    ("pool", "country", "expected"),
    [
        ("national_pools", "DE", "national:DE"),
        ("national_pools", "KE", "national_pools"),  # not a member state: no state's pool
        ("national_pools", None, "national_pools"),
        ("open_calls", "DE", "open_calls"),
        ("directors_reserve", None, "directors_reserve"),
    ],
)
def test_a_job_draws_on_its_allocations_pool(pool, country, expected):
    assert job_pool(pool, country, {"DE", "FR"}) == expected


def test_a_member_states_pool_is_named_as_the_simulator_names_it():
    assert job_pool("national_pools", "IT", {"IT"}) == pool_of_member("IT")

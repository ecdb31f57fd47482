"""Jobs through the API on the local executor, on SQLite and PostgreSQL: admission and every
refusal (changing nothing), the lifecycle to the end with the charge in the ledger and the
share report, logs while running, cancel, time limits, resubmit."""

from __future__ import annotations

import time
from datetime import date, timedelta
from decimal import Decimal

import pytest

from tests.compute.helpers import award_project, run_until
from tests.helpers import problem, record_entries


@pytest.fixture
def project(client, operator):
    return award_project(client, operator)


@pytest.fixture
def jobs(app):
    return app.state.jobs


def submit(client, headers, proj, **overrides):
    body = {
        "name": "hello",
        "project": proj.name,
        "command": "echo hello from $COMMONLAB_PROJECT; echo oops >&2",
        "accelerator": "cpu",
        "accelerators": 1,
        "time_limit_minutes": 5,
        **overrides,
    }
    return client.post("/api/v1/jobs", json=body, headers=headers)


def ledger(client, operator, allocation_id):
    return client.get(f"/api/v1/allocations/{allocation_id}", headers=operator).json()


def test_a_job_runs_to_the_end_and_is_charged_once(client, app, operator, project, jobs):
    made = submit(client, project.member_auth, project)
    assert made.status_code == 201, made.text
    job = made.json()
    assert job["state"] == "admitted" and job["partition"] == "local"
    assert Decimal(job["reserved_hours"]) == Decimal("0.09")  # 1 cpu x 5 min, rounded up
    held = ledger(client, operator, project.allocation_id)
    assert Decimal(held["reserved"]["cpu"]) == Decimal("0.09")

    done = run_until(jobs, client, job["id"], project.member_auth, {"succeeded", "failed"})
    assert done["state"] == "succeeded", done
    assert done["exit_code"] == 0
    assert [t["state"] for t in done["transitions"]] == [
        "admitted",
        "queued",
        "running",
        "succeeded",
    ]
    assert Decimal(done["charged_hours"]) == Decimal("0.01")  # the least a job that ran pays
    out = client.get(f"/api/v1/jobs/{job['id']}/logs", headers=project.member_auth).json()
    assert out["text"] == f"hello from {project.name}\n" and out["finished"]
    err = client.get(
        f"/api/v1/jobs/{job['id']}/logs?stream=stderr", headers=project.member_auth
    ).json()
    assert err["text"] == "oops\n"

    after = ledger(client, operator, project.allocation_id)
    assert Decimal(after["used"]["cpu"]) == Decimal("0.01")
    assert Decimal(after["reserved"].get("cpu", "0")) == Decimal("0")
    # More ticks change nothing: the hold closed once.
    jobs.tick()
    assert ledger(client, operator, project.allocation_id) == after
    shares = client.get(
        "/api/v1/reports/shares",
        params={
            "start": date.today().isoformat(),
            "end": (date.today() + timedelta(1)).isoformat(),
        },
        headers=operator,
    ).json()
    it = next(line for line in shares["states"] if line["code"] == "IT")
    assert Decimal(it["delivered_hours"]) == Decimal("0.01")

    types = [e["type"] for e in record_entries(client, app, subject=f"job/{job['id']}")]
    assert types == [
        "compute:job:admitted",
        "compute:job:queued",
        "compute:job:running",
        "compute:job:succeeded",
    ]
    admitted = record_entries(client, app, subject=f"job/{job['id']}")[0]
    assert "commitment" in admitted["data"]["command"]  # the command is private


def test_a_failing_job_is_failed_and_still_charged(client, operator, project, jobs):
    job = submit(client, project.pi_auth, project, command="exit 3").json()
    done = run_until(jobs, client, job["id"], project.pi_auth, {"succeeded", "failed"})
    assert done["state"] == "failed" and done["exit_code"] == 3
    assert Decimal(done["charged_hours"]) == Decimal("0.01")


def test_logs_are_readable_while_running_and_cancel_stops_the_job(client, operator, project, jobs):
    job = submit(
        client, project.pi_auth, project, command="echo started; sleep 60; echo never"
    ).json()
    run_until(jobs, client, job["id"], project.pi_auth, {"running"})
    deadline = time.monotonic() + 60
    while True:
        out = client.get(f"/api/v1/jobs/{job['id']}/logs", headers=project.pi_auth).json()
        if out["text"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert out["text"] == "started\n" and not out["finished"]
    follow = client.get(
        f"/api/v1/jobs/{job['id']}/logs?offset={out['offset']}", headers=project.pi_auth
    ).json()
    assert follow["text"] == ""
    cancelled = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=project.pi_auth)
    assert cancelled.status_code == 200 and "cancel requested" in cancelled.json()["reason"]
    done = run_until(jobs, client, job["id"], project.pi_auth, {"cancelled"})
    assert Decimal(done["charged_hours"]) > 0  # it ran for a while: that is charged
    again = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=project.pi_auth)
    assert again.status_code == 409 and "already ended" in problem(again)["detail"]
    final = client.get(f"/api/v1/jobs/{job['id']}/logs", headers=project.pi_auth).json()
    assert "never" not in final["text"]


def test_cancel_before_the_executor_has_it_releases_the_hold(client, operator, project, jobs):
    job = submit(client, project.pi_auth, project).json()
    cancelled = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=project.pi_auth).json()
    assert cancelled["state"] == "cancelled" and Decimal(cancelled["charged_hours"]) == 0
    assert Decimal(ledger(client, operator, project.allocation_id)["used"].get("cpu", 0)) == 0
    jobs.tick()
    assert client.get(f"/api/v1/jobs/{job['id']}", headers=project.pi_auth).json()["state"] == (
        "cancelled"
    )


def test_resubmit_runs_the_same_spec_again(client, project, jobs):
    first = submit(client, project.pi_auth, project, command="echo again").json()
    early = client.post(f"/api/v1/jobs/{first['id']}/resubmit", headers=project.pi_auth)
    assert early.status_code == 409 and "once it has ended" in problem(early)["detail"]
    run_until(jobs, client, first["id"], project.pi_auth, {"succeeded"})
    second = client.post(f"/api/v1/jobs/{first['id']}/resubmit", headers=project.pi_auth)
    assert second.status_code == 201, second.text
    assert second.json()["resubmit_of"] == first["id"]
    assert second.json()["command"] == "echo again"
    run_until(jobs, client, second.json()["id"], project.pi_auth, {"succeeded"})


def test_listing_is_limited_to_ones_projects(client, operator, project, jobs):
    job = submit(client, project.pi_auth, project).json()
    mine = client.get("/api/v1/jobs", headers=project.member_auth).json()
    assert [j["id"] for j in mine["items"]] == [job["id"]]
    theirs = client.get("/api/v1/jobs", headers=project.outsider_auth).json()
    assert theirs["items"] == []
    assert client.get("/api/v1/jobs", headers=operator).json()["items"][0]["id"] == job["id"]
    filtered = client.get(
        "/api/v1/jobs", params={"state": "succeeded"}, headers=project.pi_auth
    ).json()
    assert filtered["items"] == []
    denied = client.get(f"/api/v1/jobs/{job['id']}", headers=project.outsider_auth)
    assert denied.status_code == 403
    assert client.get(f"/api/v1/jobs/{job['id']}").status_code == 404  # the public


@pytest.mark.parametrize(
    ("overrides", "who", "status", "fragment"),
    [
        ({"accelerators": 0}, "pi", 422, "accelerators"),
        ({"accelerators": -1}, "pi", 422, "accelerators"),
        ({"accelerators": 10**9}, "pi", 422, "accelerators"),
        ({"time_limit_minutes": 0}, "pi", 422, "time_limit_minutes"),
        ({"time_limit_minutes": 10**6}, "pi", 422, "time_limit_minutes"),
        ({"memory_gb": -5}, "pi", 422, "memory_gb"),
        ({"command": ""}, "pi", 422, "command"),
        ({"env": {"PATH": "/evil"}}, "pi", 422, "sets PATH itself"),
        ({"env": {"COMMONLAB_TOKEN": "clab_x_y"}}, "pi", 422, "sets COMMONLAB_TOKEN itself"),
        ({"env": {"1BAD": "x"}}, "pi", 422, "env"),
        ({"level": 7}, "pi", 422, "level"),
        ({"bogus": 1}, "pi", 422, "bogus"),
        ({"accelerator": "H100"}, "pi", 409, "no partition has H100"),
        ({"accelerators": 4096}, "pi", 409, "big enough"),
        ({"level": 3}, "pi", 403, "clearance"),
        ({"time_limit_minutes": 43_200, "accelerators": 1}, "pi", 409, "hours left"),
        ({}, "outsider", 403, "members of the project"),
        ({"project": "proj-999999"}, "pi", 403, "members of the project"),
        ({"allocation_id": 999999}, "pi", 422, "has no allocation 999999"),
        ({"inputs": ["not a ref"]}, "pi", 422, "not a version reference"),
        ({"inputs": ["datasets/nobody/nothing@1"]}, "pi", 404, "no dataset repository"),
    ],
)
def test_refusals_change_nothing(client, app, operator, project, overrides, who, status, fragment):
    headers = {"pi": project.pi_auth, "outsider": project.outsider_auth}[who]
    before = ledger(client, operator, project.allocation_id)
    entries = len(record_entries(client, app))
    refused = submit(client, headers, project, **overrides)
    assert refused.status_code == status, refused.text
    assert fragment in problem(refused)["detail"]
    assert client.get("/api/v1/jobs", headers=operator).json()["items"] == []
    assert ledger(client, operator, project.allocation_id) == before
    assert len(record_entries(client, app)) == entries


def test_jobs_need_a_person(client, operator, project):
    anonymous = submit(client, {}, project)
    assert anonymous.status_code == 403


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/jobs/0", 422),
        ("/api/v1/jobs/abc", 422),
        ("/api/v1/jobs/99999999999999999999", 422),
        ("/api/v1/jobs/424242", 404),
        ("/api/v1/jobs/1/logs?stream=passwd", 422),
        ("/api/v1/jobs/1/logs?offset=-1", 422),
        ("/api/v1/jobs?state=exploded", 422),
    ],
)
def test_bad_job_reads(client, operator, path, status):
    assert client.get(path, headers=operator).status_code == status


def test_log_offset_past_the_end(client, project, jobs):
    job = submit(client, project.pi_auth, project, command="echo hi").json()
    run_until(jobs, client, job["id"], project.pi_auth, {"succeeded"})
    past = client.get(f"/api/v1/jobs/{job['id']}/logs?offset=100", headers=project.pi_auth)
    assert past.status_code == 422 and "past the end" in problem(past)["detail"]


def test_a_handover_cut_short_by_a_crash_is_found_again_not_repeated(client, project, jobs):
    """The controller commits `handed_over_at` before asking the executor; if commonlab dies
    after the executor took the job but before its id was saved, the next tick finds the job
    by name instead of starting it a second time."""
    job = submit(client, project.pi_auth, project, command="sleep 1").json()
    real_submit = jobs.executor.submit
    started: list[str] = []

    def submit_then_crash(handoff):
        started.append(real_submit(handoff))
        raise SystemExit("commonlab died here")

    jobs.executor.submit = submit_then_crash
    with pytest.raises(SystemExit):
        jobs.tick()
    jobs.executor.submit = lambda handoff: pytest.fail("submitted twice")
    done = run_until(jobs, client, job["id"], project.pi_auth, {"succeeded"})
    assert done["executor_id"] == started[0]
    assert len(started) == 1


def test_the_project_page_shows_the_hours_drawn(client, project, jobs):
    job = submit(client, project.pi_auth, project, command="true").json()
    run_until(jobs, client, job["id"], project.pi_auth, {"succeeded"})
    page = client.get("/projects")
    assert "cpu: 0.01 of 10 hours drawn" in page.text
    assert '<meter id="drawn-' in page.text

"""Setting up a project that may run jobs: through the real API (an institution in a member
state, a PI with a team, a call, a reviewed proposal, an award), or through the services
alone (`service_lab`: the demo facility), and reading the record entries a use case wrote."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from commonlab.compute import service as compute
from commonlab.compute.job_controller import JobController
from commonlab.db import Database
from commonlab.demo import seed_demo
from commonlab.facility import Facility
from commonlab.identity.service import authenticate, bootstrap_operator
from commonlab.policy.principal import Principal
from commonlab.record.models import Entry
from tests.helpers import person_with_token


@dataclass
class Project:
    name: str
    allocation_id: int
    pi: dict[str, Any]
    pi_auth: dict[str, str]
    member_auth: dict[str, str]
    outsider_auth: dict[str, str]


def award_project(
    client: TestClient,
    operator: dict[str, str],
    *,
    budget: dict[str, str] | None = None,
    country: str = "IT",
    found: bool = True,
    level: int = 1,
) -> Project:
    """An active allocation with `budget` hours (default 10 cpu-hours) for a new project."""
    if found:
        founded = client.post(
            "/api/v1/members",
            json={
                "members": [
                    {"code": code, "name": name, "contribution": "25"}
                    for code, name in [
                        ("IT", "Italy"),
                        ("FR", "France"),
                        ("DE", "Germany"),
                        ("ES", "Spain"),
                    ]
                ]
            },
            headers=operator,
        )
        assert founded.status_code in (200, 201), founded.text
    stamp = time.monotonic_ns()
    inst = client.post(
        "/api/v1/institutions",
        json={"name": f"Institute {stamp}", "country": country, "kind": "university"},
        headers=operator,
    ).json()
    pi, pi_auth = person_with_token(
        client, operator, f"PI {stamp}", ["pi", "researcher"], inst["id"]
    )
    member, member_auth = person_with_token(
        client, operator, f"Member {stamp}", ["researcher"], inst["id"]
    )
    _, outsider_auth = person_with_token(client, operator, f"Outsider {stamp}", ["researcher"])
    reviewer, reviewer_auth = person_with_token(client, operator, f"Reviewer {stamp}", ["reviewer"])
    now = datetime.now(UTC)
    call = client.post(
        "/api/v1/calls",
        json={
            "title": f"Call {stamp}",
            "pool": "open_calls",
            "budget": budget or {"cpu": "10"},
            "opens_at": (now - timedelta(minutes=5)).isoformat(),
            "closes_at": (now + timedelta(days=30)).isoformat(),
            "rubric": [{"criterion": "excellence", "weight": 1}],
        },
        headers=operator,
    )
    assert call.status_code == 201, call.text
    proposal = client.post(
        "/api/v1/proposals",
        json={
            "call_id": call.json()["id"],
            "institution_id": inst["id"],
            "title": "Small models",
            "abstract": "Jobs for tests.",
            "team": [member["id"]],
            "requested": budget or {"cpu": "10"},
            "starts_on": date.today().isoformat(),
            "ends_on": (date.today() + timedelta(days=365)).isoformat(),
            "release_plan": {"weights": True, "data": True, "code": True, "licence": "MIT"},
            "level": level,
        },
        headers=pi_auth,
    )
    assert proposal.status_code == 201, proposal.text
    pid = proposal.json()["id"]
    client.post(
        f"/api/v1/proposals/{pid}/reviewers", json={"reviewer_id": reviewer["id"]}, headers=operator
    )
    client.post(
        f"/api/v1/proposals/{pid}/review", json={"scores": {"excellence": 5}}, headers=reviewer_auth
    )
    decided = client.post(
        f"/api/v1/proposals/{pid}/decision", json={"award": True}, headers=operator
    )
    assert decided.status_code == 200, decided.text
    allocation = decided.json()["allocation"]
    assert allocation["status"] == "active", allocation
    return Project(
        name=allocation["project"],
        allocation_id=allocation["id"],
        pi=pi,
        pi_auth=pi_auth,
        member_auth=member_auth,
        outsider_auth=outsider_auth,
    )


def run_until(
    controller: JobController,
    client: TestClient,
    job_id: int,
    headers: dict[str, str],
    states: set[str],
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Tick the job controller until the job reaches one of `states`."""
    deadline = time.monotonic() + timeout
    while True:
        controller.tick()
        job = client.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
        if job["state"] in states:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['state']} after {timeout}s: {job}")
        time.sleep(0.05)


def finish_a_job(client: TestClient, app: Any, operator: dict[str, str]) -> dict[str, Any]:
    """`echo hello` on one cpu, in a new project, run to success through the API; the job."""
    project = award_project(client, operator)
    made = client.post(
        "/api/v1/jobs",
        json={
            "name": "hello",
            "project": project.name,
            "command": "echo hello",
            "accelerator": "cpu",
            "accelerators": 1,
            "time_limit_minutes": 5,
        },
        headers=project.member_auth,
    )
    assert made.status_code == 201, made.text
    return run_until(app.state.jobs, client, made.json()["id"], project.member_auth, {"succeeded"})


# Through the services, no HTTP -----------------------------------------------------------------


@dataclass
class Lab:
    """The demo facility, seeded through the services: its operator, and Wanjiru Kamau, PI of
    proj-1, which holds 500 cpu-hours; the local machine registered as the fleet."""

    db: Session
    operator: Principal
    pi: Principal
    database: Database  # for sessions of their own, reading what another session committed
    project: str = "proj-1"


@contextmanager
def service_lab(facility: Facility) -> Iterator[Lab]:
    with facility.db.session() as db:
        operator = authenticate(db, bootstrap_operator(db) or "")
        pi_token = seed_demo(db)
        assert pi_token is not None
        pi = authenticate(db, pi_token)
        compute.ensure_local_fleet(db, cpus=4, memory_gb=8)
        yield Lab(db=db, operator=operator, pi=pi, database=facility.db)


def entries(db: Session, prefix: str) -> list[dict[str, Any]]:
    """Record entries written so far whose type starts with `prefix`, oldest first (read from
    the database: sequencing them is the record's business, not the use case's)."""
    with db.begin():
        rows = db.scalars(select(Entry).where(Entry.type.startswith(prefix)).order_by(Entry.id))
        return [json.loads(row.body) for row in rows]


def job_row(**fields: Any) -> dict[str, Any]:
    """The columns of a job written straight to the job table, as the job controller leaves
    one, for states no API call reaches quickly: a running one-CPU job of the local executor
    on the first partition; `fields` replace any (its allocation and submitter must exist)."""
    return {
        "name": "train",
        "project": "proj",
        "command": "true",
        "env": {},
        "inputs": [],
        "accelerator": "cpu",
        "accelerators": 1,
        "cpus": 1,
        "memory_gb": 1,
        "nodes": 1,
        "time_limit_minutes": 60,
        "level": 1,
        "partition_id": 1,
        "executor": "local",
        "state": "running",
        "reserved_hours": Decimal(1),
        **fields,
    }

"""The compute use cases called directly (no HTTP), each with the record entry it writes:
registering the fleet, admitting a job (and refusing one, writing nothing), the transitions
the job controller applies, and both ways of cancelling."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from commonlab.compute import service
from commonlab.compute.executors.base import Observed
from commonlab.compute.fleet_spec import FleetSpec, PartitionSpec, SiteSpec
from commonlab.compute.models import Job
from commonlab.compute.rules import JobState
from commonlab.compute.schemas import JobCreate
from commonlab.errors import AccessDenied, Conflict
from commonlab.facility import Facility
from commonlab.identity.service import authenticate, bootstrap_operator
from tests.compute.helpers import Lab, entries, service_lab


@pytest.fixture
def lab(facility: Facility) -> Iterator[Lab]:
    with service_lab(facility) as lab:
        yield lab


def submit(lab: Lab, **overrides: object) -> Job:
    spec = JobCreate.model_validate(
        {
            "name": "hello",
            "project": lab.project,
            "command": "echo hello",
            "accelerator": "cpu",
            "time_limit_minutes": 5,
            **overrides,
        }
    )
    return service.submit_job(lab.db, lab.pi, spec, executor="local")


def ledger(lab: Lab, kind: str, job: Job) -> list[dict[str, object]]:
    """The data of the job's ledger entries of one kind (the demo wrote others)."""
    return [
        e["data"]
        for e in entries(lab.db, f"allocation:ledger:{kind}")
        if e["data"].get("job") == job.key
    ]


# The fleet -----------------------------------------------------------------------------------


def test_registering_the_fleet_writes_what_it_holds(facility: Facility) -> None:
    with facility.db.session() as db:
        operator = authenticate(db, bootstrap_operator(db) or "")
        spec = FleetSpec(
            sites=[SiteSpec(name="bologna", country="IT")],
            partitions=[
                PartitionSpec(
                    name="gpu", site="bologna", accelerator="H100", nodes=2, accelerators_per_node=4
                )
            ],
        )
        summary = service.apply_fleet(db, operator, spec)
        [applied] = entries(db, "compute:fleet:")
        assert applied["type"] == "compute:fleet:applied" and applied["subject"] == "fleet"
        assert applied["data"] == {
            "sites": 1,
            "partitions": 1,
            "accelerators": 8,
            "nodes_added": 2,
            "nodes_removed": 0,
            "document_sha256": summary["document_sha256"],
            "partition_names": ["gpu"],
        }

        node = service.set_node_state(db, operator, "gpu-1", "drain")
        assert node.state == "drain"
        [drained] = entries(db, "compute:node:")
        assert drained["subject"] == "node/gpu-1"
        assert drained["data"] == {"from": "up", "to": "drain"}


def test_the_local_machine_is_registered_once(facility: Facility) -> None:
    with facility.db.session() as db:
        assert service.ensure_local_fleet(db, cpus=4, memory_gb=8)
        assert not service.ensure_local_fleet(db, cpus=4, memory_gb=8)
        [applied] = entries(db, "compute:fleet:")
        assert applied["actor"] == {"id": "system"}
        assert applied["data"] == {
            "sites": 1,
            "partitions": 1,
            "accelerators": 4,
            "local": True,
            "partition_names": ["local"],
        }


def test_only_operators_register_the_fleet(lab: Lab) -> None:
    spec = FleetSpec(
        sites=[SiteSpec(name="x", country="IT")],
        partitions=[
            PartitionSpec(name="x", site="x", accelerator="cpu", nodes=1, accelerators_per_node=1)
        ],
    )
    with pytest.raises(AccessDenied):
        service.apply_fleet(lab.db, lab.pi, spec)
    assert len(entries(lab.db, "compute:fleet:")) == 1  # the local machine's, nothing more


# Admission -----------------------------------------------------------------------------------


def test_admission_writes_the_job_in_clear_and_its_command_as_a_commitment(lab: Lab) -> None:
    job = submit(lab)
    assert job.state == "admitted" and job.reserved_hours == Decimal("0.09")
    [admitted] = entries(lab.db, "compute:job:")
    assert admitted["type"] == "compute:job:admitted"
    assert admitted["subject"] == job.key
    assert admitted["actor"]["id"] == lab.pi.pseudonym
    data = admitted["data"]
    assert {k: v for k, v in data.items() if k not in {"command", "env"}} == {
        "project": "proj-1",
        "allocation": job.allocation_id,
        "partition": "local",
        "class": "cpu",
        "accelerators": 1,
        "nodes": 1,
        "level": "CL-1",
        "reserved_hours": "0.09",
        "inputs": [],
    }
    assert set(data["command"]) == {"commitment"} and set(data["env"]) == {"commitment"}
    # The hours are held on the ledger in the same transaction.
    [held] = ledger(lab, "reserved", job)
    assert held["ledger"] == job.reservation_id and held["hours"] == "0.09"


def test_a_refused_job_writes_nothing(lab: Lab) -> None:
    before = entries(lab.db, "")
    with pytest.raises(Conflict, match="big enough"):
        submit(lab, accelerators=999)
    assert entries(lab.db, "") == before


# Transitions (as the job controller applies them) --------------------------------------------


def test_each_transition_writes_its_entry_and_the_end_charges_once(lab: Lab) -> None:
    job = submit(lab)
    assert service.enqueue_admitted(lab.db) == 1
    assert service.claim_handover(lab.db, job.id)
    assert not service.claim_handover(lab.db, job.id)  # once
    service.handed_over(lab.db, job.id, "4242")
    started = datetime.now(UTC)
    assert service.apply_observed(
        lab.db, job.id, Observed(state=JobState.RUNNING, started_at=started)
    )
    # Only from the state the controller read: a stale report changes nothing.
    stale = Observed(state=JobState.FAILED, reason="lost")
    assert not service.apply_observed(lab.db, job.id, stale, expected_state="queued")
    done = Observed(
        state=JobState.SUCCEEDED, exit_code=0, elapsed_seconds=60, accelerators=1, ended_at=started
    )
    assert service.apply_observed(lab.db, job.id, done, expected_state="running")
    assert not service.apply_observed(lab.db, job.id, done)  # an ended job stays ended

    states = entries(lab.db, "compute:job:")
    assert [e["type"] for e in states] == [
        "compute:job:admitted",
        "compute:job:queued",
        "compute:job:running",
        "compute:job:succeeded",
    ]
    assert all(e["actor"] == {"id": "system"} for e in states[1:])
    assert states[1]["data"] == {"project": "proj-1"}
    assert states[3]["data"] == {
        "project": "proj-1",
        "charged_hours": "0.02",
        "elapsed_seconds": 60,
        "exit_code": 0,
    }
    assert len(ledger(lab, "settled", job)) == 1
    ended = service.get_job(lab.db, lab.pi, job.id)
    assert ended.executor_id == "4242" and ended.charged_hours == Decimal("0.02")


def test_a_job_waiting_says_why_without_an_entry(lab: Lab) -> None:
    job = submit(lab)
    service.enqueue_admitted(lab.db)
    before = entries(lab.db, "")
    service.note_waiting(lab.db, job.id, "Slurm did not answer")
    assert service.get_job(lab.db, lab.pi, job.id).reason == "Slurm did not answer"
    assert entries(lab.db, "") == before  # no state changed
    service.handed_over(lab.db, job.id, "7")
    service.note_waiting(lab.db, job.id, "too late")  # handed over: it no longer waits
    assert service.get_job(lab.db, lab.pi, job.id).reason == ""


# Cancelling ----------------------------------------------------------------------------------


def test_cancelling_a_job_not_handed_over_ends_it_at_once(lab: Lab) -> None:
    job = submit(lab)
    service.cancel_job(lab.db, lab.pi, job.id)
    [_, cancelled] = entries(lab.db, "compute:job:")
    assert cancelled["type"] == "compute:job:cancelled"
    assert cancelled["data"] == {
        "project": "proj-1",
        "charged_hours": "0",
        "elapsed_seconds": 0,
        "reason": f"cancelled by {lab.pi.pseudonym}",
    }
    assert len(ledger(lab, "released", job)) == 1
    with pytest.raises(Conflict, match="already ended"):
        service.cancel_job(lab.db, lab.pi, job.id)


def test_cancelling_a_handed_over_job_asks_the_controller(lab: Lab) -> None:
    job = submit(lab)
    service.enqueue_admitted(lab.db)
    service.claim_handover(lab.db, job.id)
    service.handed_over(lab.db, job.id, "99")
    service.cancel_job(lab.db, lab.pi, job.id)
    requested = entries(lab.db, "compute:job:")[-1]
    assert requested["type"] == "compute:job:cancel_requested"
    assert requested["data"] == {"project": "proj-1", "state": "queued"}
    assert [j.id for j in service.cancels_to_deliver(lab.db)] == [job.id]
    with pytest.raises(Conflict, match="already requested"):
        service.cancel_job(lab.db, lab.pi, job.id)

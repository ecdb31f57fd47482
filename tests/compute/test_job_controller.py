"""The job controller against the in-package fake executor: what it hands over, how it turns
what the executor reports into transitions and the one charge, and what it does when the
executor refuses a job or does not answer. Nothing runs; the test scripts every state."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from commonlab.compute import service
from commonlab.compute.executors.base import Observed
from commonlab.compute.executors.fake import FakeExecutor
from commonlab.compute.job_controller import HANDOVER_LOOKAHEAD, JobController
from commonlab.compute.models import Job
from commonlab.compute.rules import JobState
from commonlab.compute.schemas import JobCreate
from commonlab.facility import Facility
from tests.compute.helpers import Lab, entries, service_lab


@pytest.fixture
def lab(facility: Facility) -> Iterator[Lab]:
    with service_lab(facility) as lab:
        yield lab


@pytest.fixture
def fake() -> FakeExecutor:
    return FakeExecutor(slots=4)


@pytest.fixture
def controller(facility: Facility, fake: FakeExecutor) -> JobController:
    return JobController(facility.db, facility.settings, fake, tag="test", token_key=b"k" * 32)


def submit(lab: Lab, cpus: int = 1) -> Job:
    spec = JobCreate(
        project=lab.project,
        command="echo hello",
        accelerator="cpu",
        accelerators=cpus,
        time_limit_minutes=5,
    )
    return service.submit_job(lab.db, lab.pi, spec, executor="local")


def job_now(lab: Lab, job: Job) -> Job:
    """The job as the controller (in a session of its own) left it."""
    with lab.database.session() as db:
        return service.get_job(db, lab.pi, job.id)


def states(lab: Lab, job: Job) -> list[str]:
    return [
        e["type"].rsplit(":", 1)[1]
        for e in entries(lab.db, "compute:job:")
        if e["subject"] == job.key
    ]


def test_a_job_is_handed_over_and_charged_once_for_what_the_executor_reports(
    lab: Lab, fake: FakeExecutor, controller: JobController
) -> None:
    job = submit(lab)
    assert controller.tick() == 1  # queued, and handed over in the same tick
    handoff = fake.handoffs[fake.id_of(job.id)]
    assert handoff.name == f"cl-test-{job.id}" and handoff.partition == "local"
    assert handoff.env["COMMONLAB_PROJECT"] == "proj-1" and handoff.env["COMMONLAB_TOKEN"]
    handed = job_now(lab, job)
    assert handed.state == "queued" and handed.executor_id == fake.id_of(job.id)
    assert handed.handed_over_at is not None

    started = datetime.now(UTC)
    fake.report(job.id, Observed(state=JobState.RUNNING, started_at=started))
    assert controller.tick() == 1
    assert controller.tick() == 0  # nothing new to say
    fake.report(
        job.id,
        Observed(
            state=JobState.SUCCEEDED,
            exit_code=0,
            elapsed_seconds=60,
            accelerators=1,
            started_at=started,
            ended_at=started,
        ),
    )
    assert controller.tick() == 1
    assert controller.tick() == 0  # an ended job is not asked about again
    done = job_now(lab, job)
    assert done.state == "succeeded" and done.charged_hours == Decimal("0.02")
    assert states(lab, job) == ["admitted", "queued", "running", "succeeded"]


def test_the_local_slots_are_shared_first_come_first_served(
    lab: Lab, fake: FakeExecutor, controller: JobController
) -> None:
    first, second = submit(lab, cpus=3), submit(lab, cpus=2)
    controller.tick()
    assert [h.job_id for h in fake.handoffs.values()] == [first.id]  # 3 + 2 > 4 slots
    fake.report(first.id, Observed(state=JobState.FAILED, exit_code=1, elapsed_seconds=5))
    controller.tick()
    controller.tick()
    assert [h.job_id for h in fake.handoffs.values()] == [first.id, second.id]


def test_a_tick_reads_only_the_waiting_jobs_that_could_start(
    lab: Lab, fake: FakeExecutor, controller: JobController, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a few slots and a long queue (every submission wakes a tick), a tick reads the
    free slots' worth of the oldest waiting jobs and a few more, not the whole queue; the
    rest start, in order, as slots free up."""
    jobs = [submit(lab) for _ in range(HANDOVER_LOOKAHEAD + 12)]
    read = []
    real = service.waiting_for_handover

    def counted(db, executor, *, limit=None):
        found = real(db, executor, limit=limit)
        read.append(len(found))
        return found

    monkeypatch.setattr(service, "waiting_for_handover", counted)
    controller.tick()
    assert read == [4 + HANDOVER_LOOKAHEAD]  # 4 slots free, of 44 waiting
    assert [h.job_id for h in fake.handoffs.values()] == [j.id for j in jobs[:4]]
    for job in jobs[:4]:
        fake.report(job.id, Observed(state=JobState.SUCCEEDED, exit_code=0, elapsed_seconds=1))
    controller.tick()  # sees them end
    controller.tick()
    assert [h.job_id for h in fake.handoffs.values()] == [j.id for j in jobs[:8]]


def test_a_job_the_executor_refuses_ends_refused_and_releases_its_hours(
    lab: Lab, fake: FakeExecutor, controller: JobController
) -> None:
    fake.refuse_next = "CL-2 work needs an isolated job"
    job = submit(lab)
    controller.tick()
    refused = job_now(lab, job)
    assert refused.state == "refused" and refused.reason == "CL-2 work needs an isolated job"
    assert refused.charged_hours == Decimal(0)
    assert states(lab, job) == ["admitted", "queued", "refused"]


def test_an_executor_that_does_not_answer_leaves_the_job_queued_saying_why(
    lab: Lab, fake: FakeExecutor, controller: JobController
) -> None:
    fake.unavailable = "slurmctld is down"
    job = submit(lab)
    controller.tick()
    waiting = job_now(lab, job)
    assert waiting.state == "queued" and waiting.executor_id is None
    assert waiting.reason == "slurmctld is down; it stays queued and is handed over on recovery"
    assert controller.last_error == "slurmctld is down"
    assert states(lab, job) == ["admitted", "queued"]  # waiting is no transition

    fake.unavailable = None
    controller.tick()
    recovered = job_now(lab, job)
    assert recovered.executor_id == fake.id_of(job.id) and recovered.reason == ""
    assert len(fake.handoffs) == 1 and controller.last_error == ""


def test_a_cancel_is_delivered_and_the_end_the_executor_reports_is_recorded(
    lab: Lab, fake: FakeExecutor, controller: JobController
) -> None:
    job = submit(lab)
    controller.tick()
    with lab.database.session() as db:  # a request of its own, as through the API
        service.cancel_job(db, lab.pi, job.id)
    controller.tick()
    assert fake.cancelled == [fake.id_of(job.id)]
    # The executor lost it while stopping it: a cancelled job, not a failed one.
    fake.report(job.id, Observed(state=JobState.FAILED, reason="lost"))
    controller.tick()
    assert job_now(lab, job).state == "cancelled"
    assert states(lab, job) == ["admitted", "queued", "cancel_requested", "cancelled"]

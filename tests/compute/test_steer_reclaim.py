"""What the share controller's step reads from Slurm's queue before it plans caps and
requeues (compute/accounts.py `_plan_reclaim`, pure): whose jobs are whose, what capacity is
left to the member states, which waiting jobs count as demand. The whole step runs on the
real test Slurm in test_share_recovery_slurm.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from commonlab.allocation.models import Allocation
from commonlab.compute import accounts
from commonlab.compute import service as compute
from commonlab.compute.accounts import PIN_NICE, _plan_reclaim, _to_pin
from commonlab.compute.executors.slurm.accounts import SlurmAccount, SlurmTree
from commonlab.compute.executors.slurm.cli import SlurmJob
from commonlab.compute.models import Job, JobMetric, Partition
from commonlab.compute.rules import CHECKPOINT_METRIC
from commonlab.compute.share_controller import ReclaimSettings
from commonlab.simulator.policies import CommonlabPolicy
from tests.compute.helpers import award_project, job_row

T0 = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
ENTITLED = {"IT": 0.4, "FR": 0.4, "DE": 0.2}  # Germany has no work here
# Room for any one job an hour, whatever the capacity in these small cases.
SETTINGS = ReclaimSettings(budget=1.0)


def _account(name: str, parent: str) -> SlurmAccount:
    return SlurmAccount(name, parent, 1, frozenset(), "", frozenset(), "commonlab")


TREE = SlurmTree(
    accounts={
        a.name: a
        for a in (
            _account("x-ms-it", "root"),
            _account("x-ms-fr", "root"),
            _account("x-p-alpha", "x-ms-it"),
            _account("x-p-beta", "x-ms-fr"),
            _account("x-pool-open-calls", "root"),  # a project from outside the member states
            _account("x-p-gamma", "x-pool-open-calls"),
        )
    },
    qos={},
)


def _running(slurm_id: int, account: str, minutes: int, **tres: int) -> SlurmJob:
    start = T0 + timedelta(minutes=minutes)
    return SlurmJob(slurm_id, "RUNNING", None, 0, tres, start, None, "", account,
                    submitted=start, requested_tres=tres)  # fmt: skip


def _pending(slurm_id: int, account: str, reason: str = "Resources", **tres: int) -> SlurmJob:
    return SlurmJob(slurm_id, "PENDING", None, 0, {}, None, None, reason, account,
                    submitted=T0 + timedelta(minutes=slurm_id), requested_tres=tres)  # fmt: skip


def _plan(
    queue: list[SlurmJob], capacity: dict[str, int], checkpoints: dict[int, datetime] | None = None
):
    return _plan_reclaim(
        TREE,
        {job.slurm_id: job for job in queue},
        prefix="x-",
        entitled=ENTITLED,
        capacity=capacity,
        credit={},
        preempted={},
        settings=SETTINGS,
        now=T0 + timedelta(hours=1),
        checkpoints=checkpoints,
    )


FLOOD = [_running(1, "x-p-alpha", 0, cpu=1), _running(2, "x-p-alpha", 10, cpu=1)]


def test_the_newest_job_of_the_state_above_its_split_is_requeued_for_the_one_below() -> None:
    plans, held, runs = _plan([*FLOOD, _pending(3, "x-p-beta", cpu=1)], {"cpu": 2})

    assert held == {"cpu": {"IT": 2}}
    # Germany, with no work, is not capped at nothing: its first job would wait a step.
    assert plans["cpu"].caps == {"IT": 1, "FR": None, "DE": None}
    assert plans["cpu"].preempt == [2]  # the newest
    assert runs[2].pool == "IT" and runs[2].since_checkpoint == 50 * 60


def test_the_job_that_checkpointed_last_goes_first_and_no_checkpoint_counts_beyond_its_run() -> (
    None
):
    queue = [*FLOOD, _pending(3, "x-p-beta", cpu=1)]
    # Job 1 (started at 0) saved a checkpoint 5 minutes ago: it loses less than job 2
    # (started 10 minutes in, none reported), so it goes instead.
    plans, _, runs = _plan(queue, {"cpu": 2}, {1: T0 + timedelta(minutes=55)})
    assert plans["cpu"].preempt == [1]
    assert (runs[1].since_checkpoint, runs[2].since_checkpoint) == (5 * 60, 50 * 60)

    # A checkpoint of an earlier run (before the job was requeued and started again) saved
    # none of this run's work; a time the job gave from ahead loses nothing, and so makes
    # the job itself the first to go, never another.
    _, _, runs = _plan(queue, {"cpu": 2}, {2: T0, 1: T0 + timedelta(days=1)})
    assert (runs[1].since_checkpoint, runs[2].since_checkpoint) == (0, 50 * 60)


def test_checkpoints_are_read_for_the_facilitys_running_jobs_from_their_latest_metric(
    client, operator, facility
) -> None:
    project = award_project(client, operator)
    now = datetime.now(UTC)
    with facility.db.session() as db:
        compute.ensure_local_fleet(db, cpus=2, memory_gb=4)
        submitter = db.scalar(
            select(Allocation.pi_id).where(Allocation.id == project.allocation_id)
        )
        partition = db.scalar(select(Partition.id))
    with facility.db.session() as db, db.begin():
        ids = {}
        for slurm_id, executor in ((41, "slurm"), (42, "slurm"), (43, "slurm"), (41, "local")):
            row = job_row(
                project=project.name,
                allocation_id=project.allocation_id,
                submitter_id=submitter,
                partition_id=partition,
                executor=executor,
                executor_id=str(slurm_id),
                submitted_at=now - timedelta(hours=1),
                started_at=now - timedelta(minutes=40),
            )
            job = Job(**row)
            db.add(job)
            db.flush()
            ids[(slurm_id, executor)] = job.id
        at = [now - timedelta(minutes=m) for m in (30, 20, 10)]
        db.add_all(
            [
                JobMetric(job_id=ids[(41, "slurm")], name=CHECKPOINT_METRIC, step=1, at=at[0]),
                JobMetric(job_id=ids[(41, "slurm")], name=CHECKPOINT_METRIC, step=2, at=at[1]),
                JobMetric(job_id=ids[(41, "slurm")], name="loss", step=3, value=1.0, at=at[2]),
                JobMetric(job_id=ids[(42, "slurm")], name="loss", step=1, value=1.0, at=at[2]),
                # A local job of the same number is another job: never read for Slurm's 41.
                JobMetric(job_id=ids[(41, "local")], name=CHECKPOINT_METRIC, step=9, at=now),
                JobMetric(job_id=ids[(43, "slurm")], name=CHECKPOINT_METRIC, step=1, at=at[2]),
            ]
        )
    queue = {
        41: _running(41, "x-p-alpha", 0, cpu=1),
        42: _running(42, "x-p-alpha", 0, cpu=1),
        43: _pending(43, "x-p-beta", cpu=1),  # requeued, waiting: no run to lose
    }
    with facility.db.session() as db, db.begin():
        read = accounts._checkpoints(db, "slurm", queue)
    assert read == {41: at[1]}


def test_jobs_outside_the_member_states_take_capacity_but_are_never_requeued() -> None:
    outside = _running(9, "x-p-gamma", 20, cpu=1)
    plans, held, _ = _plan([*FLOOD, outside, _pending(3, "x-p-beta", cpu=1)], {"cpu": 4})

    assert held == {"cpu": {"IT": 2}}
    # Four CPUs, one of them the open pool's: a CPU is free for France, nobody is requeued.
    assert plans["cpu"].preempt == [] and plans["cpu"].caps["IT"] == 1

    plans, _, _ = _plan([*FLOOD, outside, _pending(3, "x-p-beta", cpu=1)], {"cpu": 3})
    assert plans["cpu"].preempt == [2]  # the open pool's job is not a victim


def test_a_job_that_could_not_start_anyway_is_no_demand() -> None:
    spent = _pending(3, "x-p-beta", reason="QOSGrpCPUMinutesLimit", cpu=1)
    plans, _, _ = _plan([*FLOOD, spent], {"cpu": 2})

    assert plans["cpu"].preempt == [] and set(plans["cpu"].caps.values()) == {None}


def test_on_gpus_only_gpu_jobs_are_planned() -> None:
    gpus = [
        _running(1, "x-p-alpha", 0, cpu=8, **{"gres/gpu": 2}),
        _running(2, "x-p-alpha", 10, cpu=8, **{"gres/gpu": 2}),
        _pending(3, "x-p-beta", cpu=8, **{"gres/gpu": 2}),
    ]
    plans, held, _ = _plan([*gpus, _running(5, "x-p-beta", 0, cpu=1)], {"gres/gpu": 4})

    assert held == {"gres/gpu": {"IT": 4}}  # France's CPU job is no GPU
    assert list(plans) == ["gres/gpu"]
    assert plans["gres/gpu"].preempt == [2] and plans["gres/gpu"].caps["IT"] == 2


def _pins(
    queue: list[SlurmJob], capacity: dict[str, int], settings: ReclaimSettings = SETTINGS
) -> list[tuple[int, str, str]]:
    plans, held, _ = _plan(queue, capacity)
    jobs = {j.slurm_id: j for j in queue}
    return _to_pin(TREE, jobs, "x-", ENTITLED, plans, held, capacity, settings)


def test_the_job_slurm_holds_room_for_is_pinned_while_its_state_is_at_or_under_target() -> None:
    # France holds nothing and its job is the one Slurm holds room for: pinned.
    assert _pins([*FLOOD, _pending(3, "x-p-beta", cpu=2)], {"cpu": 2}) == [(3, "FR", "cpu")]
    # Italy, above its target, does not get its next job pinned; nor does a job pending for
    # another reason (Priority: not the one Slurm holds room for), nor the open pool's.
    queue = [
        *FLOOD,
        _pending(3, "x-p-alpha", cpu=1),
        _pending(4, "x-p-beta", reason="Priority", cpu=1),
        _pending(5, "x-p-gamma", cpu=1),
    ]
    assert _pins(queue, {"cpu": 2}) == []


def test_a_job_larger_than_the_hourly_budget_is_not_pinned() -> None:
    """It could not be taken back but by its turn: pinned, its state would hold far above
    its share for its whole run."""
    queue = [*FLOOD, _pending(3, "x-p-beta", cpu=2)]
    assert _pins(queue, {"cpu": 2}, ReclaimSettings(budget=0.5)) == []
    assert _pins(queue, {"cpu": 2}, ReclaimSettings(budget=1.0)) == [(3, "FR", "cpu")]


def test_a_pinned_job_is_not_pinned_again() -> None:
    pinned = replace(_pending(3, "x-p-beta", cpu=2), priority=PIN_NICE + 10_000)
    assert _pins([*FLOOD, pinned], {"cpu": 2}) == []


def test_production_steers_with_the_settings_the_simulator_evaluates() -> None:
    """What the simulated commonlab policy is judged with is what the facility runs."""
    simulated = CommonlabPolicy()
    assert simulated.settings == accounts.STEERING
    assert simulated.reclaim == accounts.RECLAIM
    assert simulated.pin  # production pins as the simulated policy does

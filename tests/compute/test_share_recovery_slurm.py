"""The production share controller holds shares on the real test Slurm (issue 19): one member
state floods the node with long jobs, another's job waits; one step of the controller (the
`steer_shares` the facility runs every `share_steer_minutes`) caps the flooding state at its
fair split with `GrpTRES`, requeues the job that loses least (its newest, or the one that
reported a checkpoint last), pins the waiting state's job to the top of the queue, and that
job starts; the
next step, with nobody below their fair split, lifts the cap; the requeued job runs again in
its folder and finds what its first run left there. Real sbatch jobs, no mocks."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal

import pytest

from commonlab.compute import accounts
from commonlab.compute.accounts import member_account
from commonlab.compute.executors.slurm.accounts import read_tree
from commonlab.compute.executors.slurm.cli import SlurmCli, SlurmJob
from commonlab.compute.rules import CHECKPOINT_METRIC, charge_hours
from commonlab.config import Settings
from commonlab.policy.principal import SYSTEM
from tests.compute.helpers import award_project, run_until
from tests.compute.test_slurm_jobs import SlurmFacility, submit, sync
from tests.helpers import record_entries

pytestmark = pytest.mark.slurm

# The node has two CPUs: a budget of half the capacity an hour lets one step requeue one job
# (production's quarter of the capacity an hour is sized for fleets of many accelerators);
# everything else as production runs it.
ONE_JOB_AN_HOUR = replace(accounts.RECLAIM, budget=0.5)
# Each run notes itself where a workload keeps its checkpoints, then works for a long time.
FLOOD = "mkdir -p checkpoints && echo ran >> checkpoints/runs && sleep 300"


@pytest.fixture
def lab(slurm_cluster, tmp_path, database) -> Iterator[SlurmFacility]:
    # The scenario fills the node: another worker's job there would change who waits.
    with slurm_cluster.alone():
        yield from _lab(slurm_cluster, tmp_path, database)


def _lab(slurm_cluster, tmp_path, database) -> Iterator[SlurmFacility]:
    prefix = f"t{uuid.uuid4().hex[:6]}-"
    settings = Settings(
        home=tmp_path / "home",
        database_url=database,
        executor="slurm",
        job_root=slurm_cluster.job_dir("commonlab"),
        slurm_user="clrunner-{slot}",  # four run-as users: four jobs with Slurm at once
        slurm_user_slots=4,
        slurm_account_prefix=prefix,
        account_sync_minutes=0,  # this test takes every step itself
        share_steer_minutes=0,
    )
    made = SlurmFacility(settings)
    applied = made.client.put("/api/v1/fleet", json=slurm_cluster.fleet(), headers=made.operator)
    assert applied.status_code == 200, applied.text
    yield made
    for account in read_tree(SlurmCli()).accounts:
        if account.startswith(prefix):
            subprocess.run(["scancel", f"--account={account}"], check=False, timeout=30)
    made.close()


def _step(lab: SlurmFacility) -> dict:
    with lab.facility.db.session() as db:
        return accounts.steer_shares(db, SYSTEM, SlurmCli(), lab.settings, reclaim=ONE_JOB_AN_HOUR)


def _slurm_jobs(lab: SlurmFacility, *job_ids: int) -> list[SlurmJob]:
    """The Slurm side of commonlab jobs, in the order given."""
    ids = []
    for job_id in job_ids:
        job = lab.client.get(f"/api/v1/jobs/{job_id}", headers=lab.operator).json()
        ids.append(int(job["executor_id"]))
    seen = SlurmCli().queue()
    return [seen[i] for i in ids]


def _wait_for(what, predicate, seconds: float = 40.0):
    """predicate()'s first answer that is not None, polled every half second."""
    deadline = time.monotonic() + seconds
    while (value := predicate()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"waited for {what} for {seconds:g}s")
        time.sleep(0.5)
    return value


def _lines(path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _started(lab, flood, more, waiting) -> list[SlurmJob] | None:
    """The four jobs once the waiting one runs."""
    jobs = _slurm_jobs(lab, *flood, more["id"], waiting["id"])
    return jobs if jobs[-1].state == "RUNNING" else None


def _running_cpus(jobs: list[SlurmJob], prefix: str) -> dict[str, int]:
    """CPUs running per member state, from the jobs' accounts' parents."""
    tree = read_tree(SlurmCli())
    held: dict[str, int] = {}
    for job in jobs:
        if job.state == "RUNNING":
            state = tree.accounts[job.account].parent.removeprefix(f"{prefix}ms-").upper()
            held[state] = held.get(state, 0) + job.alloc_tres.get("cpu", 0)
    return held


def _overload(lab, slurm_cluster):
    """Italy's two jobs fill the node, its third and France's one job wait: (Italy's
    project, the two running jobs oldest first, Italy's waiting one, France's)."""
    assert slurm_cluster.cpus == 2, "the scenario fills a two-CPU node"
    prefix = lab.settings.slurm_account_prefix
    italy = award_project(lab.client, lab.operator, budget={"cpu": "500"})
    france = award_project(
        lab.client, lab.operator, budget={"cpu": "500"}, country="FR", found=False
    )
    sync(lab)
    flood = []
    for _ in range(2):  # Italy takes the whole node...
        job = submit(lab, italy, command=FLOOD, time_limit_minutes=10).json()
        run_until(lab.jobs, lab.client, job["id"], lab.operator, {"running"}, timeout=40)
        flood.append(job["id"])
        # Slurm keeps start times in whole seconds: the second job must start in a later
        # one to be the newer run (the one a requeue costs least), not a tie.
        time.sleep(1.1)
    # France's one job waits, and Italy asks for more after it: France's is the older, the
    # one Slurm holds room for (Reason=Resources) whatever the fair-share factors say yet.
    waiting = submit(lab, france, command=FLOOD, time_limit_minutes=10).json()
    time.sleep(1.1)  # a later submit second: Italy's is the younger
    more = submit(lab, italy, command=FLOOD, time_limit_minutes=10).json()
    for job in (more, waiting):
        run_until(lab.jobs, lab.client, job["id"], lab.operator, {"queued"}, timeout=40)
    jobs = _slurm_jobs(lab, *flood, more["id"], waiting["id"])
    assert [j.state for j in jobs] == ["RUNNING", "RUNNING", "PENDING", "PENDING"]
    assert _running_cpus(jobs, prefix) == {"IT": 2}  # entitled 25% each, France has nothing
    return italy, flood, more, waiting


def test_the_job_that_reported_a_checkpoint_last_is_the_one_requeued(lab, slurm_cluster):
    """What a requeue loses is the work since the job's last checkpoint: the older of Italy's
    jobs, which has just saved one (the metric its training loop posts), loses less than
    the newer one, which has reported none, so it is the one requeued."""
    italy, flood, _, _ = _overload(lab, slurm_cluster)
    older = flood[0]
    posted = lab.client.post(
        f"/api/v1/jobs/{older}/metrics",
        json={"points": [{"step": 100, CHECKPOINT_METRIC: 100}]},
        headers=italy.pi_auth,
    )
    assert posted.status_code == 200, posted.text

    step = _step(lab)

    assert [(r["job"], r["state"]) for r in step["requeued"]] == [(older, "IT")]
    # Slurm passes it through COMPLETING on its way back to the queue.
    requeued = _wait_for("the requeued job to queue again", lambda: _pending(lab, older))
    assert requeued.restarts == 1


def _capped(lab: SlurmFacility, job: dict) -> SlurmJob | None:
    [seen] = _slurm_jobs(lab, job["id"])
    return seen if seen.reason == "AssocGrpCpuLimit" else None


def _waits_for_resources(lab: SlurmFacility, job: dict) -> SlurmJob | None:
    [seen] = _slurm_jobs(lab, job["id"])
    return seen if seen.reason == "Resources" else None


def _pending(lab: SlurmFacility, job_id: int) -> SlurmJob | None:
    [job] = _slurm_jobs(lab, job_id)
    return job if job.state == "PENDING" else None


def test_an_overload_is_capped_and_requeued_and_the_shares_recover(lab, slurm_cluster):
    prefix = lab.settings.slurm_account_prefix
    _, flood, more, waiting = _overload(lab, slurm_cluster)
    _wait_for("France's job to wait for Resources", lambda: _waits_for_resources(lab, waiting))

    step = _step(lab)

    newest = flood[-1]
    assert [(r["job"], r["state"], r["accelerators"]) for r in step["requeued"]] == [
        (newest, "IT", 1)
    ]
    assert step["caps"]["IT"] == {"from": {}, "to": {"cpu": 1}}  # its fair split of the node
    # France, below its split, is never capped; Germany and Spain, with no work, are not
    # capped at nothing (their first job would wait for the next step).
    assert set(step["caps"]) == {"IT"}
    # France, at nothing of its target, has its job pinned to the top until it starts.
    france = _slurm_jobs(lab, waiting["id"])[0].slurm_id
    assert step["pinned"] == [
        {"job": waiting["id"], "slurm_job": france, "state": "FR", "tres": "cpu"}
    ]
    shown = subprocess.run(
        ["scontrol", "show", "job", str(france)],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    assert f"Nice={-accounts.PIN_NICE}" in shown.split()
    it, fr = member_account("IT", prefix), member_account("FR", prefix)
    tree = read_tree(SlurmCli())
    assert tree.accounts[it].grp_tres == {"cpu": 1} and tree.accounts[fr].grp_tres == {}
    # France's job gets the CPU the requeue freed; Italy's others wait on their cap.
    jobs = _wait_for("France's job to start", lambda: _started(lab, flood, more, waiting))
    assert _running_cpus(jobs, prefix) == {"IT": 1, "FR": 1}  # both at their fair split
    requeued = jobs[1]
    assert requeued.state == "PENDING" and requeued.restarts == 1
    # Slurm gives a waiting job its reason at its next scheduling cycle.
    capped = _wait_for("Italy's waiting job to be held by its cap", lambda: _capped(lab, more))
    assert capped.state == "PENDING"
    # For commonlab the requeued job is still running: it will resume, nothing is charged yet.
    lab.jobs.tick()
    again = lab.client.get(f"/api/v1/jobs/{newest}", headers=lab.operator).json()
    assert again["state"] == "running" and again["charged_hours"] is None, again
    entry = record_entries(lab.client, lab.app, type="compute:shares:reclaimed")[-1]
    assert entry["data"]["requeued"][0]["job"] == newest
    assert entry["data"]["caps"]["IT"]["to"] == {"cpu": 1}
    assert entry["data"]["held"] == {"cpu": {"IT": 2}}
    assert entry["data"]["pinned"] == step["pinned"]

    # Nobody is below their fair split now: the next step lifts the cap (work conservation)
    # and requeues nothing.
    later = _step(lab)

    assert later["requeued"] == [] and later["caps"]["IT"] == {"from": {"cpu": 1}, "to": {}}
    assert later["pinned"] == []  # Italy's waiting jobs: a state above its target
    assert later["held"] == {"cpu": {"FR": 1, "IT": 1}}
    assert read_tree(SlurmCli()).accounts[it].grp_tres == {}

    # The requeued job runs again in its own folder and finds what its first run left there.
    # Slurm holds it a while first (BeginTime): end the jobs ahead of it and lift the hold.
    for job in (jobs[3], jobs[2]):
        SlurmCli().cancel(job.slurm_id)
    subprocess.run(
        ["scontrol", "update", f"jobid={requeued.slurm_id}", "StartTime=now"],
        check=True,
        timeout=30,
    )
    runs = lab.settings.jobs_path / str(newest) / "work" / "checkpoints" / "runs"
    _wait_for("the requeued job to run again", lambda: _lines(runs) == 2 or None)

    # Both runs were delivered to Italy: the job is charged for the time of each (its first
    # run's work is kept by the checkpoint, not lost), up to the hours its admission held.
    time.sleep(2)  # accounting counts whole seconds: let the second run have some
    SlurmCli().cancel(requeued.slurm_id)
    ended = run_until(lab.jobs, lab.client, newest, lab.operator, {"cancelled"}, timeout=40)
    runs_s = _run_seconds(requeued.slurm_id)
    assert len(runs_s) == 2 and all(s > 0 for s in runs_s), runs_s
    assert ended["elapsed_seconds"] == sum(runs_s)
    reserved = Decimal(ended["reserved_hours"])
    assert Decimal(ended["charged_hours"]) == charge_hours(1, sum(runs_s), reserved)


def _run_seconds(slurm_id: int) -> list[int]:
    """Each run's elapsed seconds, as accounting keeps them."""
    out = subprocess.run(
        ["sacct", "-a", "-X", "-D", "-n", "-P", f"-j{slurm_id}", "-o", "ElapsedRaw"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return [int(line) for line in out.split()]

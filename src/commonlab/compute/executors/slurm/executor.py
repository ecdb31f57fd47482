"""The `slurm` executor: jobs go to a real Slurm with `sbatch --parsable` under their project's
account (so Slurm itself enforces budgets and fair share), each run as a Unix user of the
site's that no other running job has (the controller picks it from the project's
`slurm_user` slots; never root, never commonlab's own account: commonlab submits as root with
`--uid`), in a folder only that user may enter until the job ends, and are read back from
Slurm's accounting.

What a job is charged comes from `sacct`: elapsed time times the accelerators Slurm allocated
(GPUs for an accelerator class, CPUs for a CPU partition).
"""

from __future__ import annotations

import os
import pwd
import shlex
from collections.abc import Sequence
from pathlib import Path

from commonlab.compute.executors.base import (
    ExecutorKind,
    ExecutorRefused,
    ExecutorUnavailable,
    Handoff,
    Observed,
    Tracked,
    carry_checkpoints,
)
from commonlab.compute.executors.sandbox import Isolation
from commonlab.compute.executors.slurm.cli import SlurmCli, SlurmJob, SlurmRefused, SlurmUnavailable
from commonlab.compute.rules import JobState
from commonlab.config import Settings

__all__ = ["CPU_CLASSES", "KIND", "SlurmExecutor", "hand_back", "observed_from"]

# Accelerator classes that are CPU cores: charged by allocated CPUs, not GPUs.
CPU_CLASSES = frozenset({"cpu", "CPU"})

_STATES = {
    "PENDING": JobState.QUEUED,
    "REQUEUED": JobState.QUEUED,
    "CONFIGURING": JobState.QUEUED,
    "SUSPENDED": JobState.RUNNING,
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "COMPLETED": JobState.SUCCEEDED,
    "CANCELLED": JobState.CANCELLED,
    "TIMEOUT": JobState.TIMED_OUT,
    "DEADLINE": JobState.TIMED_OUT,
    "FAILED": JobState.FAILED,
    "NODE_FAIL": JobState.FAILED,
    "OUT_OF_MEMORY": JobState.FAILED,
    "BOOT_FAIL": JobState.FAILED,
    "PREEMPTED": JobState.FAILED,
}


def observed_from(job: SlurmJob, accelerator: str | None = None) -> Observed:
    """Slurm's view of a job in commonlab's terms (pure). A job Slurm requeued after it ran
    stays running for commonlab: it has started, holds its hours and will resume (commonlab
    has no way back from running to queued)."""
    state = JobState.RUNNING if job.requeued else _STATES.get(job.state, JobState.QUEUED)
    if accelerator is None or accelerator in CPU_CLASSES:
        used = job.alloc_tres.get("cpu", 0)
    else:
        used = job.alloc_tres.get("gres/gpu", 0)
    reason = job.reason if state == JobState.QUEUED and job.reason not in ("", "None") else ""
    if job.state in ("NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "PREEMPTED"):
        reason = f"Slurm: {job.state.lower().replace('_', ' ')}"
    if job.requeued:
        reason = f"Slurm requeued it (restart {job.restarts}): it resumes from its checkpoint"
    return Observed(
        state=state,
        exit_code=job.exit_code,
        elapsed_seconds=job.elapsed_seconds,
        accelerators=used,
        started_at=job.start,
        ended_at=job.end if state not in (JobState.QUEUED, JobState.RUNNING) else None,
        reason=reason,
    )


class SlurmExecutor:
    name = "slurm"
    slots = None  # Slurm queues and schedules; commonlab hands everything over at once
    run_as_users = True

    def __init__(self, cli: SlurmCli | None = None) -> None:
        self.cli = cli or SlurmCli()

    @property
    def accounts(self) -> SlurmCli:
        """sacctmgr, through the same command line the jobs go through."""
        return self.cli

    def submit(self, handoff: Handoff) -> str:
        if not handoff.run_as:
            raise ExecutorRefused("the site maps no Unix user to run this job as")
        try:
            user = pwd.getpwnam(handoff.run_as)
        except KeyError:
            raise ExecutorRefused(
                f"no Unix user {handoff.run_as!r} to run the job as: the site creates every "
                "user of the settings slurm_user and slurm_user_slots"
            ) from None
        if user.pw_uid == 0:
            raise ExecutorRefused("jobs never run as root: set slurm_user to a service account")
        if os.getuid() != 0:
            # Only root may ask Slurm for another uid: the job would run as commonlab itself.
            raise ExecutorRefused(
                "commonlab does not run as root, so Slurm would run the job as commonlab's own "
                "user, who can read the facility's home: run commonlab as root (it submits "
                f"with --uid of {handoff.run_as})"
            )
        work = handoff.workdir / "work"
        # The job's folder is its run-as user's alone while it runs: no other job (each has a
        # user of its own) can read its files, its logs or what it writes.
        for path in (handoff.workdir, work):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chown(path, user.pw_uid, user.pw_gid)
            os.chmod(path, 0o700)
        carry_checkpoints(handoff, work, uid=user.pw_uid, gid=user.pw_gid)
        script = f"#!/bin/sh\ncd {shlex.quote(str(work))} || exit 1\n{handoff.command}\n"
        gpus = 0 if handoff.accelerator in CPU_CLASSES else handoff.accelerators
        try:
            slurm_id = self.cli.submit(
                script,
                account=handoff.account,
                partition=handoff.partition,
                job_name=handoff.name,
                time_limit_minutes=handoff.time_limit_minutes,
                cpus=handoff.cpus,
                memory_mb=handoff.memory_gb * 1024,
                gpus=gpus,
                nodes=handoff.nodes,
                workdir=handoff.workdir,
                stdout=handoff.workdir / "stdout.log",
                stderr=handoff.workdir / "stderr.log",
                uid=user.pw_uid,
                gid=user.pw_gid,
                comment=handoff.name,
                environment=handoff.env,
            )
        except SlurmUnavailable as exc:
            raise ExecutorUnavailable(exc.message) from None
        except SlurmRefused as exc:
            hand_back(handoff.workdir)
            raise ExecutorRefused(f"Slurm refused it: {exc.slurm_message}") from None
        return str(slurm_id)

    def find(self, handoff: Handoff) -> str | None:
        try:
            found = self.cli.find(handoff.name)
        except SlurmUnavailable as exc:
            raise ExecutorUnavailable(exc.message) from None
        return None if found is None else str(found)

    def observe(self, jobs: Sequence[Tracked]) -> dict[str, Observed]:
        try:
            seen = self.cli.jobs(int(job.executor_id) for job in jobs)
        except SlurmUnavailable as exc:
            raise ExecutorUnavailable(exc.message) from None
        result: dict[str, Observed] = {}
        for job in jobs:
            slurm_job = seen.get(int(job.executor_id))
            if slurm_job is None:
                result[job.executor_id] = Observed(
                    state=JobState.FAILED,
                    reason=f"lost: Slurm has no record of job {job.executor_id}",
                )
                continue
            result[job.executor_id] = observed_from(slurm_job, job.accelerator)
        for job in jobs:
            if result[job.executor_id].state not in (JobState.QUEUED, JobState.RUNNING):
                hand_back(job.workdir)  # before the end is recorded and its user given again
        return result

    def cancel(self, job: Tracked) -> None:
        try:
            self.cli.cancel(int(job.executor_id))
        except SlurmUnavailable as exc:
            raise ExecutorUnavailable(exc.message) from None


def hand_back(workdir: Path) -> None:
    """An ended job's folder becomes the facility's (0700): its run-as user, given to a later
    job, can no longer enter it. What the job wrote stays inside for its logs and outputs."""
    try:
        os.chown(workdir, os.getuid(), os.getgid())
        os.chmod(workdir, 0o700)
    except FileNotFoundError:
        pass


def _describe_isolation(settings: Settings, isolation: Isolation) -> tuple[str, bool]:
    """Said at every start; a warning when a single run-as user makes jobs wait in turn."""
    users = settings.slurm_users("{project}")
    named = users[0] if len(users) == 1 else f"{users[0]} … {users[-1]}"
    line = (
        f"jobs run on Slurm each as a Unix user no other running job has ({named}, which "
        "the site creates), never as this facility's user"
    )
    scope = "per project" if "{project}" in settings.slurm_user else "in the whole facility"
    if len(users) > 1:
        return f"{line}: up to {len(users)} jobs at once {scope}", False
    return (
        f"{line}: one job at a time {scope}, the others wait (more need "
        "{slot} in slurm_user and slurm_user_slots)",
        True,
    )


KIND = ExecutorKind(
    name="slurm",
    make=lambda settings: SlurmExecutor(),
    local_fleet=False,
    # A job runs as its run-as user, on whichever node: it reaches its folder by path.
    reached_by_path=lambda isolation: True,
    describe_isolation=_describe_isolation,
)
